"""PalmDetector / HandLandmark as ordinary trainable nn.Modules (no weights needed)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hand_pose_core.models import HandLandmark, LandmarkOutput, PalmDetector
from hand_pose_core.models.layers import SameConv2d, tf_same_padding


def _tf_same_reference(x: np.ndarray, w: np.ndarray, stride: int) -> np.ndarray:
    """Naive single-channel conv with TF 'SAME' semantics (pad_before = total // 2)."""
    h, k = x.shape[0], w.shape[0]
    out = -(-h // stride)
    total = max((out - 1) * stride + k - h, 0)
    xp = np.pad(x, ((total // 2, total - total // 2),) * 2)
    return np.array([[(xp[i * stride:i * stride + k, j * stride:j * stride + k] * w).sum()
                      for j in range(out)] for i in range(out)])


@pytest.mark.parametrize("size,kernel,stride", [(12, 5, 2), (12, 3, 2), (7, 5, 2), (9, 3, 1),
                                                 (8, 2, 2)])
def test_same_conv_matches_tf_padding(size, kernel, stride):
    torch.manual_seed(0)
    conv = SameConv2d(1, 1, kernel, stride, bias=False)
    x = torch.randn(1, 1, size, size)
    with torch.no_grad():
        y = conv(x)[0, 0].numpy()
    ref = _tf_same_reference(x[0, 0].numpy(), conv.weight[0, 0].detach().numpy(), stride)
    np.testing.assert_allclose(y, ref, atol=1e-5)
    # Asymmetric: an even input with stride 2 pads more at the end.
    if size % 2 == 0 and stride == 2 and kernel == 5:
        assert tf_same_padding(size, kernel, stride) == (1, 2)


@pytest.mark.parametrize("variant", ["full", "lite"])
def test_palm_detector_shapes_and_anchor_order(variant):
    torch.manual_seed(0)
    model = PalmDetector(variant).eval()
    with torch.no_grad():
        boxes, scores = model(torch.rand(2, 3, 192, 192))
    assert boxes.shape == (2, 2016, 18) and scores.shape == (2, 2016, 1)
    # Anchor order: the first 1152 come from the 24x24 head (2 per cell, cell-major, NHWC).
    feat = torch.randn(1, 128, 24, 24)
    with torch.no_grad():
        b24, s24 = model.head24(feat)
        raw = model.head24.score(feat)
    assert torch.equal(s24[0, :2, 0], raw[0, :, 0, 0])  # both anchors of cell (0, 0)
    assert torch.equal(s24[0, 2:4, 0], raw[0, :, 0, 1])  # then cell (0, 1)


@pytest.mark.parametrize("variant", ["full", "lite"])
def test_hand_landmark_outputs(variant):
    torch.manual_seed(0)
    model = HandLandmark(variant).eval()
    with torch.no_grad():
        out = model(torch.rand(3, 3, 224, 224))
    assert isinstance(out, LandmarkOutput)
    assert out.landmarks.shape == (3, 21, 3) and out.world_landmarks.shape == (3, 21, 3)
    assert out.presence.shape == (3,) and out.handedness.shape == (3,)
    assert ((out.presence > 0) & (out.presence < 1)).all()


def test_parameter_counts_and_gradients():
    # Fixed by the MediaPipe graphs (every conv/dw/PReLU/linear weight and bias).
    counts = {v: sum(p.numel() for p in PalmDetector(v).parameters()) for v in ("full", "lite")}
    assert counts["full"] > counts["lite"] > 900_000
    model = HandLandmark("lite")
    out = model(torch.rand(1, 3, 224, 224))
    loss = (out.landmarks.square().mean() + out.presence.sum() + out.handedness.sum()
            + out.world_landmarks.abs().sum())
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads)
    assert model.stem.conv.weight.grad.abs().sum() > 0  # gradient reaches the first layer


def test_bad_input_and_variant_raise():
    with pytest.raises(ValueError, match="variant"):
        PalmDetector("huge")
    with pytest.raises(ValueError, match="variant"):
        HandLandmark("tiny")
    with pytest.raises(ValueError, match=r"\[B,3,192,192\]"):
        PalmDetector("lite")(torch.rand(1, 192, 192, 3))  # NHWC by mistake
    with pytest.raises(ValueError, match=r"\[B,3,224,224\]"):
        HandLandmark("lite")(torch.rand(3, 224, 224))


def test_upsampling_is_tf_half_pixel_bilinear():
    # TF resize_bilinear(half_pixel_centers=True) 2x of [a, b]: [a, .75a+.25b, .25a+.75b, b].
    x = torch.tensor([[[[1.0, 5.0]]]])
    y = F.interpolate(x, size=(1, 4), mode="bilinear", align_corners=False)
    np.testing.assert_allclose(y[0, 0, 0].numpy(), [1.0, 2.0, 4.0, 5.0])


@pytest.mark.heavy
@pytest.mark.parametrize("cls,variant,size", [(PalmDetector, "lite", 192),
                                              (HandLandmark, "lite", 224)])
def test_onnx_export_dynamic_batch_random_weights(cls, variant, size, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = cls(variant).eval()
    path = tmp_path / "m.onnx"
    x = torch.rand(2, 3, size, size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), dynamo=False, input_names=["image"],
                          dynamic_axes={"image": {0: "batch"}}, opset_version=17)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x3 = torch.rand(3, 3, size, size)
    got = sess.run(None, {"image": x3.numpy()})
    with torch.no_grad():
        want = model(x3)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == tuple(w.shape)
        np.testing.assert_allclose(g, w.numpy(), atol=1e-4, rtol=1e-4)


def test_export_friendly_prelu_equals_torch_prelu():
    """layers.PReLU must give nn.PReLU's values for any slope (the palm model has slopes up to 12
    and below 0), in float32 and float64, and keep nn.PReLU's parameter name for the converter."""
    from hand_pose_core.models.layers import PReLU

    torch.manual_seed(0)
    act = PReLU(8)
    with torch.no_grad():
        act.weight.copy_(torch.tensor([-4.5, -0.3, 0.0, 0.25, 1.0, 2.0, 7.5, 12.2]))
    assert [n for n, _ in act.named_parameters()] == ["weight"]
    for dtype in (torch.float32, torch.float64):
        x = torch.randn(2, 8, 5, 7, dtype=dtype) * 10
        torch.testing.assert_close(act.to(dtype)(x), F.prelu(x, act.weight.to(dtype)))
