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
    # both quantise positions to 1/32 px and round to uint8: a grey level here and there
    assert diff.mean() < 0.25, diff.mean()
    assert diff.max() <= 1.0 + 1e-3, diff.max()


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


@pytest.mark.heavy
@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_estimator_with_torch_preprocessing_matches_numpy(backend):
    """The GPU path's pre-processing wired into the estimator (run on the CPU device): same
    hands as the OpenCV path on real frames, median joint within 0.5 px (2D) and 1 mm (3D)."""
    from hand_pose_core.bench import data
    from hand_pose_core.pipeline.estimator import HandPoseEstimator

    try:
        native, _, _ = data.load_native(limit=8)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    frames = native[::2]
    kw = dict(max_hands=1, backend=backend, tracking=True)
    ref = HandPoseEstimator(preprocess="numpy", **kw)
    ours = HandPoseEstimator(preprocess="torch", **kw)
    assert ours.preprocess == "torch" and ref.preprocess == "numpy"
    e2d, e3d = [], []
    for i, f in enumerate(frames):
        a, b = ref(f, timestamp_s=i / 25), ours(f, timestamp_s=i / 25)
        assert len(a) == len(b) == 1
        e2d.append(np.linalg.norm(a[0].joints_2d - b[0].joints_2d, axis=1))
        e3d.append(np.linalg.norm(a[0].joints_3d - b[0].joints_3d, axis=1))
    # a grey level at a few crop pixels moves ambiguous joints (a fingertip) by up to a few
    # px on single frames (measured); the typical joint must stay put
    assert np.median(np.concatenate(e2d)) < 0.5
    assert np.median(np.concatenate(e3d)) < 1e-3


def test_bad_preprocess_and_cpu_cuda_graphs_are_refused():
    from hand_pose_core.backends import create_runner
    from hand_pose_core.pipeline.estimator import HandPoseEstimator

    with pytest.raises(ValueError, match="preprocess"):
        HandPoseEstimator(preprocess="gpu", fit_mano=False, with_mesh=False)
    with pytest.raises(ValueError, match="CUDA graphs"):
        create_runner("landmark", backend="torch", device="cpu", cuda_graphs=True)
