"""Benchmark inputs from real footage: the shared real video (or a user's video / image folder).

* ``letterbox_to``: a frame scaled to fit 640x480 (aspect kept, INTER_AREA) and centred on black,
  the way a landscape camera would frame the portrait 620x1080 shared video.
* ``square_crop``: a ``size`` x ``size`` image of the hand (square around the reference landmarks
  when given, else the centre), like the small single images of datasets and grasp snapshots.
* ``landmark_crops``: the landmark network's real inputs (224x224 crops on the hand).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np

REAL_VIDEO_NAME = "asl_hand.25fps.mp4"
REAL_REFERENCE_NAME = "asl_hand.full.json"


def real_data_dir() -> Path:
    """``$HAND_POSE_REAL_DATA`` or ``<repo>/../shared/data/real`` (may not exist)."""
    env = os.environ.get("HAND_POSE_REAL_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"


def letterbox_to(frame: np.ndarray, width: int = 640, height: int = 480) -> np.ndarray:
    """Scale to fit inside width x height (aspect kept, INTER_AREA) and centre on black."""
    h, w = frame.shape[:2]
    s = min(width / w, height / h)
    nw, nh = max(1, int(round(w * s))), max(1, int(round(h * s)))
    small = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA)
    out = np.zeros((height, width, 3), np.uint8)
    y0, x0 = (height - nh) // 2, (width - nw) // 2
    out[y0:y0 + nh, x0:x0 + nw] = small
    return out


def square_crop(frame: np.ndarray, size: int = 256, joints_px: np.ndarray | None = None) -> np.ndarray:
    """A square crop of the frame's short side (centred on the joints' centre when given,
    clamped to the image), resized to ``size`` x ``size``."""
    h, w = frame.shape[:2]
    side = min(h, w)
    if joints_px is not None:
        cx, cy = np.asarray(joints_px, np.float64)[:, :2].mean(0)
    else:
        cx, cy = w / 2, h / 2
    x0 = int(np.clip(round(cx - side / 2), 0, w - side))
    y0 = int(np.clip(round(cy - side / 2), 0, h - side))
    crop = frame[y0:y0 + side, x0:x0 + side]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def load_reference(path: Path) -> np.ndarray | None:
    """MediaPipe reference landmarks (N, 21, 2), pixel-centre convention, or None if absent."""
    if not path.is_file():
        return None
    return np.array(json.loads(path.read_text()), np.float64)[..., :2] - 0.5


def load_native(source: Path | None = None, limit: int | None = None) -> tuple[list[np.ndarray], np.ndarray | None, Path]:
    """Frames of ``source`` (video file or image folder; default: the shared real video) with
    its reference landmarks when it is the shared video."""
    from hand_pose_core.frames import iter_frames

    src = Path(source) if source is not None else real_data_dir() / REAL_VIDEO_NAME
    if not src.exists():
        raise FileNotFoundError(
            f"benchmark footage not found: {src} (give --video, or put the shared real data at "
            f"{real_data_dir()} or set HAND_POSE_REAL_DATA)")
    frames_iter, _count, _rate = iter_frames(src)
    frames = []
    for f in frames_iter:
        frames.append(f)
        if limit is not None and len(frames) >= limit:
            break
    if not frames:
        raise ValueError(f"{src} gave no frames")
    ref = load_reference(src.with_name(REAL_REFERENCE_NAME)) if src.name == REAL_VIDEO_NAME else None
    return frames, ref, src


def frame_sets(native: list[np.ndarray], ref: np.ndarray | None, n: int) -> dict[str, list[np.ndarray]]:
    """{'640x480': letterboxed frames, '256x256': square crops}, ``n`` consecutive frames each."""
    sel = native[:n]
    return {
        "640x480": [letterbox_to(f) for f in sel],
        "256x256": [square_crop(f, 256, None if ref is None else ref[i]) for i, f in enumerate(sel)],
    }


def palm_inputs(frames: list[np.ndarray]) -> np.ndarray:
    """Palm detector inputs [N, 3, 192, 192] float32 (letterboxed as the estimator does)."""
    from hand_pose_core.pipeline.estimator import _to_batch
    from hand_pose_core.pipeline.roi import letterbox

    return _to_batch([letterbox(f, 192)[0] for f in frames])


def landmark_inputs(frames: list[np.ndarray], ref: np.ndarray | None) -> np.ndarray:
    """Landmark network inputs [N, 3, 224, 224]: tracking-ROI crops on the reference hand when
    known, else the centre square of each frame."""
    from hand_pose_core.pipeline.estimator import _to_batch
    from hand_pose_core.pipeline.roi import crop_roi, landmarks_to_roi

    crops = []
    for i, f in enumerate(frames):
        if ref is not None and i < len(ref):
            roi = landmarks_to_roi(ref[i])
        else:
            h, w = f.shape[:2]
            roi = (w / 2, h / 2, float(min(h, w)), 0.0)
        crops.append(crop_roi(f, roi)[0])
    return _to_batch(crops)
