"""Pinhole camera intrinsics: validation, the documented default K, projection.

``K`` is the 3x3 intrinsic matrix in pixels::

    [[fx, s,  cx],
     [0,  fy, cy],
     [0,  0,  1 ]]

Camera optical frame: x right, y down, z forward (metres). Pixel (u, v): u right, v down, with
the centre of the top-left pixel at (0, 0) - the ROS ``CameraInfo`` convention.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

# fx = fy = DEFAULT_FOCAL_FACTOR * max(width, height): a ~45 degree horizontal field of view for
# landscape images, close to typical webcams/phone cameras (~50-70 degrees) but on the narrow
# side, so that a guessed depth errs towards "farther" rather than inside the camera.
DEFAULT_FOCAL_FACTOR = 1.2

# Plausible focal lengths relative to the image size: fx / max(width, height) (and fy) in
# [MIN_FOCAL_FACTOR, MAX_FOCAL_FACTOR]. 0.05 is a ~168 degree field of view across the long side
# (beyond a fisheye's pinhole approximation), 100 a ~0.6 degree telephoto: a K outside this range
# is a unit or scaling mistake (focal length in metres, a K for another resolution), and the depth
# it gives is off by orders of magnitude.
MIN_FOCAL_FACTOR = 0.05
MAX_FOCAL_FACTOR = 100.0


class InvalidIntrinsicsError(ValueError):
    """Camera intrinsics that cannot describe a real pinhole camera."""


def default_intrinsics(width: int, height: int) -> np.ndarray:
    """The fallback K used when no calibration is given.

    fx = fy = 1.2 * max(width, height) pixels, principal point at the image centre
    ((width - 1) / 2, (height - 1) / 2), no skew. This is a guess: hand *shape* and 2D joints
    are unaffected, but the metric depth (z) of anything placed with it is only as good as the
    guess (depth scales linearly with the focal length). Results computed with it are flagged
    ``calibrated=False``.
    """
    w, h = _check_size(width, height)
    f = DEFAULT_FOCAL_FACTOR * max(w, h)
    return K_from_fxfycxcy(f, f, (w - 1) / 2.0, (h - 1) / 2.0)


def _check_size(width, height) -> tuple[int, int]:
    try:
        w, h = int(width), int(height)
    except (TypeError, ValueError) as e:
        raise InvalidIntrinsicsError(
            f"image size must be integers, got {width!r} x {height!r}"
        ) from e
    if w <= 0 or h <= 0 or w != width or h != height:
        raise InvalidIntrinsicsError(
            f"image size must be positive integers, got {width!r} x {height!r}"
        )
    return w, h


def K_from_fxfycxcy(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """Build a float64 3x3 K (no skew). Not validated: pass it to :func:`validate_intrinsics`."""
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float64)


def K_from_camera_info_k(k9: Sequence[float], width: int | None = None,
                         height: int | None = None) -> np.ndarray:
    """K from a ROS ``sensor_msgs/CameraInfo.k`` (9 numbers, row-major), validated by
    :func:`validate_intrinsics` (against the image size when it is given: the same check the
    estimator applies, so a K accepted here is never refused there).

    An all-zero ``k`` (what an uncalibrated driver publishes) raises InvalidIntrinsicsError.
    """
    arr = np.asarray(k9, dtype=np.float64).reshape(-1)
    if arr.size != 9:
        raise InvalidIntrinsicsError(
            f"CameraInfo.k must have 9 numbers (row-major 3x3), got {arr.size}"
        )
    if not np.any(arr):
        raise InvalidIntrinsicsError("CameraInfo.k is all zeros: the camera is not calibrated")
    return validate_intrinsics(arr.reshape(3, 3), width, height)


def validate_intrinsics(K, width: int | None = None, height: int | None = None) -> np.ndarray:
    """Check K and return it as a float64 (3, 3) array (a copy).

    Raises InvalidIntrinsicsError naming the problem: wrong shape, non-finite entries,
    zero/negative focal lengths, a bottom row other than [0, 0, 1], a non-zero K[1, 0],
    and (when the image size is given) a principal point far outside the image (more than one
    image size beyond its border) or a focal length implausible for the image size
    (fx or fy outside [MIN_FOCAL_FACTOR, MAX_FOCAL_FACTOR] * max(width, height)).

    This is the one intrinsics check of the package: the estimator, the CLI and the ROS node
    all call it (the node with the image size, before handing K to the estimator).
    """
    try:
        arr = np.array(K, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InvalidIntrinsicsError(f"K is not numeric: {e}") from e
    if arr.shape == (9,):
        arr = arr.reshape(3, 3)
    if arr.shape != (3, 3):
        raise InvalidIntrinsicsError(
            f"K must be 3x3 (or 9 row-major numbers), got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise InvalidIntrinsicsError(f"K contains NaN or inf: {arr.tolist()}")
    fx, fy = arr[0, 0], arr[1, 1]
    if fx <= 0 or fy <= 0:
        raise InvalidIntrinsicsError(f"focal lengths must be positive, got fx={fx}, fy={fy}")
    if arr[2, 0] != 0.0 or arr[2, 1] != 0.0 or abs(arr[2, 2] - 1.0) > 1e-9 or arr[1, 0] != 0.0:
        raise InvalidIntrinsicsError(
            f"K must be upper triangular with last row [0, 0, 1], got {arr.tolist()}"
        )
    ratio = fx / fy
    if not 0.1 < ratio < 10.0:
        raise InvalidIntrinsicsError(f"fx/fy = {ratio:.3g} is implausible (fx={fx}, fy={fy})")
    if width is not None or height is not None:
        if width is None or height is None:
            raise InvalidIntrinsicsError("give both width and height, or neither")
        w, h = _check_size(width, height)
        cx, cy = arr[0, 2], arr[1, 2]
        if not (-w <= cx <= 2 * w and -h <= cy <= 2 * h):
            raise InvalidIntrinsicsError(
                f"principal point ({cx:.1f}, {cy:.1f}) px is far outside the {w}x{h} image"
            )
        lo, hi = MIN_FOCAL_FACTOR * max(w, h), MAX_FOCAL_FACTOR * max(w, h)
        if not (lo <= fx <= hi and lo <= fy <= hi):
            raise InvalidIntrinsicsError(
                f"focal length fx={fx:.4g}, fy={fy:.4g} px is implausible for a {w}x{h} image "
                f"(expected {lo:.4g}..{hi:.4g} px: {MIN_FOCAL_FACTOR}..{MAX_FOCAL_FACTOR} x the "
                "long side); is K for another resolution or in other units?"
            )
    return arr


def resolve_intrinsics(K, width: int, height: int) -> tuple[np.ndarray, bool]:
    """Return ``(K, calibrated)``: the validated K, or the default K when ``K`` is None.

    ``calibrated`` is False only for the default. An invalid K raises (never silently falls back
    to the default: a wrong calibration should be fixed, not hidden).
    """
    if K is None:
        return default_intrinsics(width, height), False
    return validate_intrinsics(K, width, height), True


def scale_intrinsics(K, sx: float, sy: float) -> np.ndarray:
    """K for the same camera after resizing the image by ``sx`` horizontally, ``sy`` vertically.

    Uses the pixel-centre convention: u' + 0.5 = sx * (u + 0.5), so cx' = sx*(cx + 0.5) - 0.5.
    """
    if not (np.isfinite(sx) and np.isfinite(sy) and sx > 0 and sy > 0):
        raise ValueError(f"scale factors must be positive and finite, got sx={sx}, sy={sy}")
    arr = validate_intrinsics(K)
    S = np.diag([sx, sy, 1.0])
    out = S @ arr
    out[0, 2] = sx * (arr[0, 2] + 0.5) - 0.5
    out[1, 2] = sy * (arr[1, 2] + 0.5) - 0.5
    return out


def project(points_cam_m, K) -> np.ndarray:
    """Project camera-frame points ``[..., 3]`` (metres) to pixels ``[..., 2]``.

    Points with z <= 0 (behind the camera) project to NaN rather than to a mirrored location.
    """
    p = np.asarray(points_cam_m, dtype=np.float64)
    if p.shape[-1:] != (3,):
        raise ValueError(f"points must have shape [..., 3], got {p.shape}")
    K = np.asarray(K, dtype=np.float64)
    z = p[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        x = p[..., 0] / z
        y = p[..., 1] / z
    u = K[0, 0] * x + K[0, 1] * y + K[0, 2]
    v = K[1, 1] * y + K[1, 2]
    uv = np.stack([u, v], axis=-1)
    uv[z <= 0] = np.nan
    return uv


def unproject(uv_px, depth_m, K) -> np.ndarray:
    """Back-project pixels ``[..., 2]`` at depths ``[...]`` (z, metres) to camera points
    ``[..., 3]``."""
    uv = np.asarray(uv_px, dtype=np.float64)
    if uv.shape[-1:] != (2,):
        raise ValueError(f"uv_px must have shape [..., 2], got {uv.shape}")
    z = np.broadcast_to(np.asarray(depth_m, dtype=np.float64), uv.shape[:-1])
    K = np.asarray(K, dtype=np.float64)
    y = (uv[..., 1] - K[1, 2]) / K[1, 1]
    x = (uv[..., 0] - K[0, 2] - K[0, 1] * y) / K[0, 0]
    return np.stack([x * z, y * z, z], axis=-1)


__all__ = [
    "DEFAULT_FOCAL_FACTOR", "MIN_FOCAL_FACTOR", "MAX_FOCAL_FACTOR", "InvalidIntrinsicsError", "default_intrinsics", "validate_intrinsics",
    "resolve_intrinsics", "K_from_fxfycxcy", "K_from_camera_info_k", "project", "unproject",
    "scale_intrinsics",
]
