"""Parity of our PyTorch palm detector / hand landmark modules with the TFLite reference kernels,
on real hand images (../shared/data/real). Also checks the documented output conventions."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hand_pose_core.weights import load_hand_landmark, load_palm_detector

cv2 = pytest.importorskip("cv2")
litert = pytest.importorskip("ai_edge_litert.interpreter",
                             reason="ai-edge-litert (test-only dependency) is not installed")

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
needs_real = pytest.mark.skipif(
    not (REAL / "hands.jpg").is_file(),
    reason=f"real hand footage not found at {REAL} (../shared/data/real); parity tests skipped")

ATOL = 1e-3  # every output, absolute (pixel outputs included; see report for measured values)


def _interpreter(path: Path):
    kwargs = {}
    resolver = getattr(litert, "OpResolverType", None)
    if resolver is not None and hasattr(resolver, "BUILTIN_REF"):
        kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_REF  # reference kernels
    it = litert.Interpreter(model_path=str(path), **kwargs)
    it.allocate_tensors()
    return it


def _run_tflite(path: Path, batch_nhwc: np.ndarray) -> dict[str, np.ndarray]:
    it = _interpreter(path)
    inp = it.get_input_details()[0]
    outs: dict[str, list] = {}
    for x in batch_nhwc:  # the TFLite models have a fixed batch of 1
        it.set_tensor(inp["index"], x[None].astype(np.float32))
        it.invoke()
        for d in it.get_output_details():
            outs.setdefault(d["name"], []).append(it.get_tensor(d["index"])[0].copy())
    return {k: np.stack(v) for k, v in outs.items()}


def _square_crop(img_rgb: np.ndarray, cx: float, cy: float, size: float, out: int,
                 rotate_180: bool = False) -> np.ndarray:
    """Axis-aligned square crop of side ``size`` px centred at (cx, cy), resized to out x out."""
    s = out / size
    a = np.array([[s, 0, out / 2 - s * cx], [0, s, out / 2 - s * cy]], np.float64)
    if rotate_180:
        a = np.array([[-1, 0, out], [0, -1, out]], np.float64) @ np.vstack([a, [0, 0, 1]])
    return cv2.warpAffine(img_rgb, a, (out, out), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT)


def _hands_jpg() -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(REAL / "hands.jpg")), cv2.COLOR_BGR2RGB)


def _hand_boxes(img_rgb: np.ndarray) -> list[tuple[int, int, int, int]]:
    """The two hands of hands.jpg (skin on a white background) as (x, y, w, h)."""
    hsv = cv2.cvtColor(img_rgb, cv2.COLOR_RGB2HSV)
    mask = ((hsv[..., 1] > 40) | (hsv[..., 2] < 150)).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    _, _, stats, _ = cv2.connectedComponentsWithStats(mask)
    largest = stats[1:][np.argsort(-stats[1:, 4])[:2]]
    return sorted(tuple(int(v) for v in s[:4]) for s in largest)


def _letterbox(img_rgb: np.ndarray, size: int) -> np.ndarray:
    h, w = img_rgb.shape[:2]
    scale = size / max(h, w)
    nh, nw = round(h * scale), round(w * scale)
    out = np.zeros((size, size, 3), np.uint8)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[top:top + nh, left:left + nw] = cv2.resize(img_rgb, (nw, nh), interpolation=cv2.INTER_AREA)
    return out


def _video_crops(n_frames: int = 4, out: int = 224) -> tuple[np.ndarray, list]:
    """Square crops around the hand in a few frames of asl_hand.25fps.mp4 (boxes from the JSON)."""
    ref = json.loads((REAL / "asl_hand.full.json").read_text())
    wanted = set(np.linspace(0, len(ref) - 1, n_frames).astype(int).tolist())
    cap = cv2.VideoCapture(str(REAL / "asl_hand.25fps.mp4"))
    crops, meta = [], []
    i = 0
    while len(crops) < len(wanted):
        ok, frame = cap.read()
        if not ok:
            break
        if i in wanted:
            uv = np.asarray(ref[i], np.float64)[:, :2]
            lo, hi = uv.min(0), uv.max(0)
            c, size = (lo + hi) / 2, float((hi - lo).max()) * 1.6
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            crops.append(_square_crop(rgb, c[0], c[1], size, out))
            meta.append((i, c, size, uv))
        i += 1
    cap.release()
    assert len(crops) == len(wanted), "could not decode the requested video frames"
    return np.stack(crops), meta


def _landmark_inputs() -> tuple[np.ndarray, list]:
    img = _hands_jpg()
    crops = []
    for k, (x, y, w, h) in enumerate(_hand_boxes(img)):
        size = max(w, h) * 1.15
        # The right hand of hands.jpg points down: turn it upright like the pipeline's ROI would.
        crops.append(_square_crop(img, x + w / 2, y + h / 2, size, 224, rotate_180=(k == 1)))
    video, meta = _video_crops()
    return np.concatenate([np.stack(crops), video]), meta


def _to_torch(batch_nhwc_u8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(batch_nhwc_u8.astype(np.float32) / 255.0).permute(0, 3, 1, 2)


def _max_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())


@needs_real
@pytest.mark.parametrize("variant", ["full", "lite"])
def test_palm_detector_matches_tflite(variant, tflite_paths):
    img = _letterbox(_hands_jpg(), 192)
    x = img[None].astype(np.float32) / 255.0
    ref = _run_tflite(tflite_paths[f"palm_detection_{variant}"], x)
    model = load_palm_detector(variant)
    with torch.no_grad():
        boxes, scores = model(_to_torch(img[None]))
    err_box = _max_err(boxes.numpy(), ref["Identity"])
    err_score = _max_err(scores.numpy(), ref["Identity_1"])
    print(f"palm_{variant}: max|d box_regressors|={err_box:.2e} "
          f"(|ref|max {np.abs(ref['Identity']).max():.1f}) max|d score_logits|={err_score:.2e}")
    assert boxes.shape == (1, 2016, 18) and scores.shape == (1, 2016, 1)
    assert err_box <= ATOL and err_score <= ATOL
    # Two real hands: both models must be confident about some anchor.
    assert torch.sigmoid(scores).max() > 0.5


@needs_real
@pytest.mark.parametrize("variant", ["full", "lite"])
def test_hand_landmark_matches_tflite(variant, tflite_paths):
    crops, meta = _landmark_inputs()
    ref = _run_tflite(tflite_paths[f"hand_landmark_{variant}"], crops.astype(np.float32) / 255.0)
    model = load_hand_landmark(variant)
    with torch.no_grad():
        out = model(_to_torch(crops))
    b = len(crops)
    pairs = {
        "landmarks": (out.landmarks.numpy().reshape(b, 63), ref["Identity"]),
        "presence": (out.presence.numpy(), ref["Identity_1"].reshape(b)),
        "handedness": (out.handedness.numpy(), ref["Identity_2"].reshape(b)),
        "world_landmarks": (out.world_landmarks.numpy().reshape(b, 63), ref["Identity_3"]),
    }
    errs = {k: _max_err(a, r) for k, (a, r) in pairs.items()}
    print(f"landmark_{variant} ({b} real crops): "
          + ", ".join(f"{k} {v:.2e}" for k, v in errs.items()))
    for k, e in errs.items():
        assert e <= ATOL, f"{k}: max abs diff {e:.3e} > {ATOL}"
    # Conventions: probabilities in [0, 1]; real hand crops -> hand present.
    assert ((out.presence >= 0) & (out.presence <= 1)).all()
    assert (out.presence > 0.5).all(), out.presence
    # Handedness convention (documented in hand_landmark.py): 1 = right hand in the non-mirrored
    # image. hands.jpg shows two left hands (backs of the hands), the video a right hand.
    assert (out.handedness[:2] < 0.5).all() and (out.handedness[2:] > 0.5).all(), out.handedness
    # Landmarks are crop pixels: they map back onto the reference 2D points of the video frames.
    if variant == "full":
        for j, (_, centre, size, uv_ref) in enumerate(meta):
            uv = out.landmarks[2 + j, :, :2].numpy() * (size / 224) + centre - size / 2
            assert np.median(np.linalg.norm(uv - uv_ref, axis=1)) < 0.05 * size
