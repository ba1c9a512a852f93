"""The common sample every dataset reader yields, and its validation.

One sample is a dict (numpy arrays, no torch) describing ONE hand in one image:

| key | type / shape | meaning |
|---|---|---|
| ``image`` | (H, W, 3) uint8 | RGB |
| ``K`` | (3, 3) float32 | intrinsics in pixels (OpenCV / ROS convention: pixel centres at integers) |
| ``joints_cam_m`` | (21, 3) float32 | metres, camera optical frame (x right, y down, z forward), canonical order |
| ``joints_2d`` | (21, 2) float32 | pixels (u, v) in ``image`` |
| ``visible`` | (21,) bool | joint is visible / annotated |
| ``side`` | str | ``'left'`` or ``'right'`` |
| ``id`` | str | unique, stable id (dataset, split, index) |
| ``mask`` | (H, W) uint8, optional | 1 = this hand, 0 = not this hand |
| ``mano_pose`` | (48,) float32, optional | MANO axis-angle, global first, MANO joint order, ``flat_hand_mean=False`` |
| ``mano_shape`` | (10,) float32, optional | MANO betas |
| ``mano_trans`` | (3,) float32, optional | MANO translation, metres, camera frame |
| ``verts_cam_m`` | (778, 3) float32, optional | MANO vertices, metres, camera frame |
| ``joints_conf`` | (21,) float32, optional | label confidence 0..1 (pseudo-labels) |
| ``depth_m`` | (H, W) float32, optional | aligned depth, metres, 0 = no reading |

Where a dataset has no 3D (e.g. pseudo-labelled footage without a trusted 3D), it sets
``joints_cam_m`` to NaN and the losses skip it; ``has_3d`` says so after collation.
"""
from __future__ import annotations

import numpy as np

REQUIRED_KEYS = ("image", "K", "joints_cam_m", "joints_2d", "visible", "side", "id")
OPTIONAL_SHAPES = {
    "mano_pose": (48,),
    "mano_shape": (10,),
    "mano_trans": (3,),
    "verts_cam_m": (778, 3),
    "joints_conf": (21,),
}


class SampleError(ValueError):
    """A sample that does not follow the common format (names the sample and the field)."""


def validate_sample(sample: dict, *, allow_nan_3d: bool = True) -> dict:
    """Check the common-sample contract; return the sample unchanged or raise :class:`SampleError`.

    Training must never silently train on garbage: every reader calls this on what it yields.
    """
    sid = sample.get("id", "<no id>")

    def fail(msg):
        raise SampleError(f"sample {sid}: {msg}")

    for key in REQUIRED_KEYS:
        if key not in sample:
            fail(f"missing key {key!r}")
    img = sample["image"]
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        fail(f"image must be (H, W, 3) uint8 RGB, got {getattr(img, 'dtype', type(img))} {getattr(img, 'shape', '')}")
    h, w = img.shape[:2]
    K = np.asarray(sample["K"])
    if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
        fail(f"K must be a finite 3x3 matrix with positive focal lengths, got {K.tolist()}")
    j3 = np.asarray(sample["joints_cam_m"])
    if j3.shape != (21, 3):
        fail(f"joints_cam_m must be (21, 3), got {j3.shape}")
    if not allow_nan_3d and not np.all(np.isfinite(j3)):
        fail("joints_cam_m has NaN/inf")
    if np.any(np.isinf(j3)):
        fail("joints_cam_m has inf")
    j2 = np.asarray(sample["joints_2d"])
    if j2.shape != (21, 2) or not np.all(np.isfinite(j2)):
        fail(f"joints_2d must be finite (21, 2), got shape {j2.shape}")
    vis = np.asarray(sample["visible"])
    if vis.shape != (21,) or vis.dtype != bool:
        fail(f"visible must be (21,) bool, got {vis.dtype} {vis.shape}")
    if sample["side"] not in ("left", "right"):
        fail(f"side must be 'left' or 'right', got {sample['side']!r}")
    if "mask" in sample and sample["mask"] is not None:
        m = np.asarray(sample["mask"])
        if m.shape != (h, w):
            fail(f"mask must be (H, W) = {(h, w)}, got {m.shape}")
    for key, shape in OPTIONAL_SHAPES.items():
        if key in sample and sample[key] is not None:
            a = np.asarray(sample[key])
            if a.shape != shape or not np.all(np.isfinite(a)):
                fail(f"{key} must be finite {shape}, got shape {a.shape}")
    return sample
