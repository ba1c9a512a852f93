"""Landmark network output (crop pixels) -> image pixels."""
from __future__ import annotations

import numpy as np

from .roi import LANDMARK_INPUT_SIZE_PX, Roi, apply_affine, roi_to_crop_affine


def crop_to_image_landmarks(landmarks_crop: np.ndarray, roi: Roi,
                            crop_size_px: int = LANDMARK_INPUT_SIZE_PX) -> np.ndarray:
    """Map landmarks [21, 3] from continuous crop pixels to image pixels (pixel-centre
    convention). x, y go through the crop's inverse affine; z (relative depth, crop pixels)
    is scaled by the same factor as x so it stays in image pixels."""
    lm = np.asarray(landmarks_crop, np.float64)
    if lm.ndim != 2 or lm.shape[1] != 3:
        raise ValueError(f"landmarks must be [N, 3] crop pixels, got {lm.shape}")
    a = roi_to_crop_affine(roi, crop_size_px)
    out = np.empty_like(lm)
    out[:, :2] = apply_affine(a, lm[:, :2])
    out[:, 2] = lm[:, 2] * roi[2] / crop_size_px
    return out


def rotate_world_to_image(world_m: np.ndarray, roi: Roi) -> np.ndarray:
    """World landmarks come out aligned with the (rotated) crop; rotate x, y by the ROI
    rotation so their axes match the image (x right, y down, z away from the camera)."""
    w = np.asarray(world_m, np.float64)
    c, s = np.cos(roi[3]), np.sin(roi[3])
    out = w.copy()
    out[:, 0] = c * w[:, 0] - s * w[:, 1]
    out[:, 1] = s * w[:, 0] + c * w[:, 1]
    return out


def is_present(presence: float, min_presence_score: float) -> bool:
    """True when the crop holds a hand according to the presence head."""
    return bool(np.isfinite(presence) and presence >= min_presence_score)
