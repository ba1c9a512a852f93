"""The torch pre-processing (the GPU path's letterbox and ROI crops) against the numpy/OpenCV
path, on the CPU device (the same code runs on CUDA; tests/test_gpu.py covers that)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hand_pose_core.pipeline.estimator import _to_batch
from hand_pose_core.pipeline.roi import crop_roi, letterbox
from hand_pose_core.pipeline.torch_preprocess import PinnedUploader, crop_rois_torch, letterbox_torch


def _image(h=240, w=320, seed=0):
    rng = np.random.default_rng(seed)
    # smooth texture + noise: bilinear differences show up, quantisation does not dominate
    yy, xx = np.mgrid[0:h, 0:w]
    base = 127 + 60 * np.sin(xx / 7.0)[..., None] * np.cos(yy / 11.0)[..., None] * np.array([1, 0.5, -0.7])
    return np.clip(base + rng.normal(0, 10, (h, w, 3)), 0, 255).astype(np.uint8)


def _compare(ours: torch.Tensor, ref_uint8_batch: list[np.ndarray]):
    ref = _to_batch(ref_uint8_batch)
    diff = np.abs(ours.numpy() - ref) * 255.0
    # OpenCV: 1/32-px weights, uint8 rounding -> about one grey level
    assert diff.mean() < 0.6, diff.mean()
    assert diff.max() <= 3.0, diff.max()


@pytest.mark.parametrize("shape", [(240, 320), (480, 640), (300, 200)])
def test_letterbox_matches_opencv(shape):
    img = _image(*shape)
    ref, m_ref = letterbox(img, 192)
    x, m = letterbox_torch(PinnedUploader("cpu").upload(img), 192)
    assert x.shape == (1, 3, 192, 192) and x.dtype == torch.float32
    np.testing.assert_allclose(m, m_ref)
    _compare(x, [ref])


def test_crops_match_opencv_including_rotation_and_borders():
    img = _image()
    rois = [(160.0, 120.0, 150.0, 0.0), (60.0, 40.0, 200.0, 0.7), (300.0, 230.0, 90.0, -2.5),
            (161.3, 119.6, 80.4, 3.1)]
    x = crop_rois_torch(PinnedUploader("cpu").upload(img), rois)
    assert x.shape == (4, 3, 224, 224)
    _compare(x, [crop_roi(img, r)[0] for r in rois])


def test_cpu_upload_is_scaled_and_channels_first():
    img = _image(10, 12)
    t = PinnedUploader("cpu").upload(img)
    assert t.shape == (3, 10, 12)
    np.testing.assert_allclose(t.numpy(), img.transpose(2, 0, 1) / 255.0, atol=1e-7)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_pinned_upload_on_cuda_matches_cpu():
    img = _image()
    up = PinnedUploader("cuda")
    for _ in range(2):  # second call reuses the pinned buffer
        t = up.upload(img)
    np.testing.assert_allclose(t.cpu().numpy(), PinnedUploader("cpu").upload(img).numpy(), atol=1e-7)
