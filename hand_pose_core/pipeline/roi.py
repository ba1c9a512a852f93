"""Regions of interest: palm -> rotated hand ROI, landmarks -> next-frame ROI, and the
affine warps between the image and the network inputs.

Pixel convention (OpenCV): integer image coordinates are pixel centres. Network outputs
are continuous crop coordinates (pixel ``j`` spans [j, j+1)), as the MediaPipe models use.
The pixels of crops and of the palm letterbox are sampled the way MediaPipe samples them
(see :func:`crop_roi`, :func:`letterbox`), because the networks were trained on such inputs.

An ROI is ``(cx_px, cy_px, size_px, rotation_rad)``: a square of side ``size_px`` centred
at (cx, cy) whose "up" axis points from the wrist to the fingers. Rotation 0 means the
fingers point up in the image (-y); positive rotation turns the crop's up axis clockwise
as seen on screen (towards +x).
"""
from __future__ import annotations

import cv2
import numpy as np

LANDMARK_INPUT_SIZE_PX = 224

# MediaPipe palm -> hand ROI parameters
PALM_ROI_SCALE = 2.6
PALM_ROI_SHIFT_Y = -0.5
# landmarks -> tracking ROI parameters
TRACK_ROI_SCALE = 2.0
TRACK_ROI_SHIFT_Y = -0.1
# landmarks used for the tracking ROI (wrist, thumb CMC/MCP/IP, MCP and PIP of the fingers):
# the fingertips move too much to frame the hand steadily
TRACK_ROI_JOINTS = (0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18)

Roi = tuple  # (cx_px, cy_px, size_px, rotation_rad)


def normalize_radians(angle_rad: float) -> float:
    """Wrap an angle to [-pi, pi)."""
    return float((angle_rad + np.pi) % (2 * np.pi) - np.pi)


def rotation_up(from_px: np.ndarray, to_px: np.ndarray) -> float:
    """Rotation (rad) that makes the direction from ``from_px`` to ``to_px`` point up."""
    d = np.asarray(to_px, np.float64) - np.asarray(from_px, np.float64)
    return normalize_radians(np.pi / 2 - np.arctan2(-d[1], d[0]))


def _rot(rotation_rad: float) -> np.ndarray:
    c, s = np.cos(rotation_rad), np.sin(rotation_rad)
    return np.array([[c, -s], [s, c]])


def transform_rect(cx: float, cy: float, w: float, h: float, rotation_rad: float,
                   scale: float, shift_y: float, shift_x: float = 0.0) -> Roi:
    """Shift a rotated rect along its own axes (in units of its width/height), square it
    on its long side and scale it. Returns an ROI."""
    centre = np.array([cx, cy]) + _rot(rotation_rad) @ np.array([w * shift_x, h * shift_y])
    size = max(w, h) * scale
    return (float(centre[0]), float(centre[1]), float(size), float(rotation_rad))


def palm_to_roi(box_px: np.ndarray, keypoints_px: np.ndarray,
                scale: float = PALM_ROI_SCALE, shift_y: float = PALM_ROI_SHIFT_Y) -> Roi:
    """Hand ROI from a palm detection (box x_min, y_min, x_max, y_max; 7 keypoints px)."""
    box = np.asarray(box_px, np.float64)
    kps = np.asarray(keypoints_px, np.float64)
    rotation = rotation_up(kps[0], kps[2])  # wrist -> middle-finger MCP
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return transform_rect(cx, cy, box[2] - box[0], box[3] - box[1], rotation, scale, shift_y)


def landmarks_to_roi(joints_px: np.ndarray, scale: float = TRACK_ROI_SCALE,
                     shift_y: float = TRACK_ROI_SHIFT_Y) -> Roi:
    """Next-frame hand ROI from 21 image landmarks (tracking).

    Rotation: wrist -> weighted MCP centre (middle 1/2, index and ring 1/4 each), which is
    steadier than a single joint. Box: tight box of the palm-and-base joints in the rotated
    frame, then shifted, squared and scaled.
    """
    j = np.asarray(joints_px, np.float64)[:, :2]
    mcp = 0.5 * j[9] + 0.25 * (j[5] + j[13])
    rotation = rotation_up(j[0], mcp)
    pts = j[list(TRACK_ROI_JOINTS)]
    centre0 = (pts.min(0) + pts.max(0)) / 2
    r = _rot(rotation)
    local = (pts - centre0) @ r  # rotate by -rotation into the ROI frame
    lo, hi = local.min(0), local.max(0)
    centre = centre0 + r @ ((lo + hi) / 2)
    w, h = hi - lo
    return transform_rect(centre[0], centre[1], w, h, rotation, scale, shift_y)


def roi_to_crop_affine(roi: Roi, crop_size_px: int = LANDMARK_INPUT_SIZE_PX) -> np.ndarray:
    """2x3 affine mapping continuous crop coordinates to image pixels (pixel-centre)."""
    cx, cy, size, rotation = roi
    k = size / crop_size_px
    r = _rot(rotation) * k
    t = np.array([cx, cy]) - r @ np.array([crop_size_px / 2, crop_size_px / 2])
    return np.concatenate([r, t[:, None]], axis=1)


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine."""
    a = np.linalg.inv(np.asarray(m, np.float64)[:, :2])
    return np.concatenate([a, -a @ m[:, 2:3]], axis=1)


def apply_affine(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine to points [..., 2]."""
    pts = np.asarray(pts, np.float64)
    return pts @ np.asarray(m)[:, :2].T + np.asarray(m)[:, 2]


def crop_roi(image: np.ndarray, roi: Roi, crop_size_px: int = LANDMARK_INPUT_SIZE_PX,
             border: int = cv2.BORDER_REPLICATE) -> tuple[np.ndarray, np.ndarray]:
    """Warp the ROI of ``image`` (HxWxC) into a crop_size x crop_size crop (bilinear).

    Returns (crop, crop_to_image affine 2x3 for continuous crop coords). Border pixels are
    replicated so hands at the image edge keep context.

    Sampling follows MediaPipe's own crop (what the landmark network was trained with):
    destination pixel j is read at image index ``a(j) + 0.5``, i.e. integer crop indices
    are mapped as continuous coordinates and the result is used as an image index. Measured
    on the shared video: given MediaPipe's ROI, this reproduces MediaPipe's landmarks to
    0.04 px (median); the geometrically centred sampling (``a(j + 0.5)``) is 1.0 px off.
    """
    a = roi_to_crop_affine(roi, crop_size_px)
    dst_idx_to_img = a.copy()
    dst_idx_to_img[:, 2] += 0.5
    crop = cv2.warpAffine(image, dst_idx_to_img, (crop_size_px, crop_size_px),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=border)
    return crop, a


def letterbox_transform(width: int, height: int, size_px: int) -> np.ndarray:
    """2x3 affine ``[[s, 0, pad_x], [0, s, pad_y]]``: scale the long side to ``size_px`` and
    centre with equal padding. Geometrically it maps continuous image coordinates to
    continuous input coordinates; :func:`letterbox` samples with it index-to-index, as
    MediaPipe does (input pixel j reads image index ``(j - pad) / s``)."""
    s = size_px / max(width, height)
    pad = np.array([(size_px - width * s) / 2, (size_px - height * s) / 2])
    return np.array([[s, 0.0, pad[0]], [0.0, s, pad[1]]])


def letterbox(image: np.ndarray, size_px: int) -> tuple[np.ndarray, np.ndarray]:
    """Letterbox ``image`` into size_px x size_px (zero padding, bilinear). Returns (input,
    :func:`letterbox_transform` affine).

    Sampled the way MediaPipe samples its palm-detector input (bilinear straight from the
    full image, index-to-index). Measured on the shared video with the same networks: this
    reproduces MediaPipe's static-image landmarks to 0.16 px (median); area-averaged
    downscaling with pixel-centred sampling was 1.9 px off.
    """
    m = letterbox_transform(image.shape[1], image.shape[0], size_px)
    out = cv2.warpAffine(image, m, (size_px, size_px), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out, m
