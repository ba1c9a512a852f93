"""RGB-D fusion: an aligned depth image sets each hand's distance, instead of the assumed hand size.

From RGB alone a hand is placed by matching the landmark network's metric, hand-centred joints
to the 2D joints through K (:mod:`.metric3d`). The 2D joints fix the ray of every joint exactly;
what RGB cannot fix is how far along those rays the hand is, because the network's joints carry
an *average* hand size: a hand 15 % larger than average is placed 15 % too close. Scaling the
placed joints about the camera centre, ``P(s) = s * P_rgb``, leaves every projection unchanged,
so the whole RGB ambiguity is this one factor ``s`` (plus the network's small per-joint depth
errors). The depth image measures it.

Method, per hand (all in metres, camera optical frame):

1. **Readings under the hand.** Small windows around every joint (radius ~ the finger's radius in
   pixels at the RGB distance) and points along the 20 bones of the 2D skeleton (the hand's
   silhouette) collect depth readings; 0 / NaN / negative readings are holes and ignored.
2. **The hand's surface in each window**: the nearest dense cluster of readings (everything more
   than ``cluster_band_m`` behind the window's 20th percentile is background or a finger-edge
   mixed pixel, which lie between the finger and the background), reduced to its median. A
   window needs ``min_readings`` readings.
3. **Skin in front of the joint centres.** A camera sees the skin, the joints are inside the hand:
   the surface under a joint is in front of its centre by about the local half-thickness of the
   hand, :data:`SURFACE_OFFSET_M` (anatomical half-thicknesses: ~12 mm at the knuckles, 9 / 7 mm
   at the middle / last finger joints, ~3 mm at the fingertip points, which lie on the skin).
   So each reading predicts the joint's depth as ``z_surface + offset``. Offsets scale with ``s``.
4. **Robust scale.** Every window gives a ratio ``q = (z_surface + offset) / z_rgb``. ``s`` is the
   median of the ratios, then re-estimated by least squares over the inliers (readings within
   ``3 sigma(z) + model_slack_m`` of ``s * z_rgb``; ``sigma(z)`` is the depth noise model of a
   structured-light / stereo camera, growing with z squared). Occluding fingers, background
   and holes are outliers; they do not move a median.
5. **Joint refinement with the 2D reprojection.** Every joint is placed on the camera ray of its
   detected 2D joint (the landmark network's 2D is more precise than the lateral position of its
   3D joints), at a depth that is the inverse-variance average of the scaled RGB depth (the
   network's relative depth, ``prior_sigma_m``) and, where its own window agrees within
   ``joint_gate_m``, the measured depth. So the fused joints reproject exactly onto the 2D joints
   and the depth residuals are minimised under that constraint.
6. **Fallback.** Too few readings, a scale outside ``scale_range`` (depth disagrees with the
   image: a wrong or unaligned depth image, or a hand in front of a glass pane), or fewer than
   ``min_inlier_fraction`` of the windows within ``joint_gate_m`` of the scaled hand (occlusion):
   the RGB placement is kept and the result says why (``Hand.depth_used`` False).

Depth images follow REP 118: float32 metres or uint16 millimetres, 0 or NaN = no reading.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hand_pose_core.camera import unproject
from hand_pose_core.skeleton import BONES

# Distance from each joint centre to the skin that faces the camera (canonical joint order),
# metres: half-thickness of an adult hand at that joint (wrist ~36 mm thick, palm at the
# knuckles ~25 mm, proximal / middle finger segments ~18 / 14 mm; thumb similar). The tip
# "joints" are points on the skin of the fingertip, so their offset is small.
SURFACE_OFFSET_M = np.array([
    0.016,                          # 0 wrist
    0.013, 0.011, 0.008, 0.003,     # thumb CMC, MCP, IP, tip
    0.012, 0.009, 0.007, 0.003,     # index MCP, PIP, DIP, tip
    0.012, 0.009, 0.007, 0.003,     # middle
    0.012, 0.009, 0.007, 0.003,     # ring
    0.011, 0.008, 0.006, 0.003,     # pinky
])


def depth_noise_sigma_m(z_m):
    """Standard deviation of a depth reading at distance ``z_m`` (metres), a structured-light /
    active-stereo model: ~2 mm at 0.3 m, ~5 mm at 1 m (noise grows with z squared)."""
    z = np.asarray(z_m, dtype=np.float64)
    return 0.002 + 0.003 * z * z


@dataclass
class DepthFusionResult:
    """Outcome for one hand.

    joints_cam_m: (21, 3) fused joints (or the RGB ones when ``used`` is False).
    used: the depth set the hand's distance. reason: why not, when ``used`` is False.
    scale: factor applied to the RGB placement (1.0 when not used).
    surface_z_m: (21,) surface depth measured under each joint (NaN: no usable window).
    n_windows / n_inliers: windows with readings (joints + bone points) / ones that agree with the
    scaled hand within the per-joint gate.
    """

    joints_cam_m: np.ndarray
    used: bool
    reason: str = ""
    scale: float = 1.0
    surface_z_m: np.ndarray = field(default_factory=lambda: np.full(21, np.nan))
    n_windows: int = 0
    n_inliers: int = 0


def depth_to_metres(depth, image_shape: tuple[int, int] | None = None) -> np.ndarray:
    """A depth image as float32 metres with NaN for "no reading" (REP 118 input conventions:
    uint16 millimetres or float metres, 0 or NaN = no reading; negative and inf are no reading).

    Raises ValueError naming the problem: not a 2D array, a size other than the image's, or
    another dtype.
    """
    if not isinstance(depth, np.ndarray):
        raise ValueError(f"depth must be a numpy array (H, W): float32 metres or uint16 millimetres, "
                         f"got {type(depth).__name__}")
    if depth.ndim == 3 and depth.shape[2] == 1:
        depth = depth[:, :, 0]
    if depth.ndim != 2:
        raise ValueError(f"depth must be a 2D (H, W) image, got shape {depth.shape}")
    if image_shape is not None and depth.shape != tuple(image_shape):
        raise ValueError(f"depth is {depth.shape[1]}x{depth.shape[0]} but the image is "
                         f"{image_shape[1]}x{image_shape[0]}: the depth must be aligned to the colour "
                         "image (registered to its pixels, same size)")
    if depth.dtype == np.uint16:
        out = depth.astype(np.float32) * np.float32(0.001)
        out[depth == 0] = np.nan
        return out
    if depth.dtype in (np.float32, np.float64):
        out = depth.astype(np.float32, copy=True)
        with np.errstate(invalid="ignore"):
            out[~(np.isfinite(out) & (out > 0))] = np.nan
        return out
    raise ValueError(f"depth dtype must be float32 (metres) or uint16 (millimetres), got {depth.dtype}")


def surface_depths(depth_m: np.ndarray, uv_px: np.ndarray, radius_px: np.ndarray, band_m: float,
                   min_readings: int) -> np.ndarray:
    """Depth of the nearest surface in a square window around each of the points ``uv_px (N, 2)``
    (half-size ``radius_px (N,)``): the median of the readings within ``band_m`` of the window's
    20th percentile (farther readings are background, and mixed pixels at finger edges lie between
    finger and background). NaN where fewer than ``min_readings`` such readings exist.
    Vectorised over the points (one gather, two sorts)."""
    h, w = depth_m.shape
    uv = np.rint(np.asarray(uv_px, np.float64)).astype(np.int64)
    radius = np.asarray(radius_px, np.int64)
    n = len(uv)
    R = int(radius.max()) if n else 0
    d = np.arange(-R, R + 1)
    dy, dx = np.meshgrid(d, d, indexing="ij")
    dy, dx = dy.reshape(-1), dx.reshape(-1)
    inside = np.maximum(np.abs(dy), np.abs(dx))[None, :] <= radius[:, None]  # (N, M)
    rows = uv[:, 1, None] + dy[None, :]
    cols = uv[:, 0, None] + dx[None, :]
    valid = inside & (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    vals = np.full(valid.shape, np.nan, dtype=np.float64)
    vals[valid] = depth_m[rows[valid], cols[valid]]
    vals.sort(axis=1)  # NaN last
    cnt = np.isfinite(vals).sum(axis=1)
    out = np.full(n, np.nan)
    ok = cnt >= max(min_readings, 1)
    if not ok.any():
        return out
    idx = np.arange(n)
    near = vals[idx, np.floor(0.2 * np.maximum(cnt - 1, 0)).astype(np.int64)]
    with np.errstate(invalid="ignore"):
        keep = np.abs(vals - near[:, None]) <= band_m  # NaN compares False
    k = keep.sum(axis=1)
    ok &= k >= min_readings
    # the kept readings are contiguous in each sorted row: their median is at the middle
    first = np.argmax(keep, axis=1)
    lo = np.take_along_axis(vals, (first + (k - 1) // 2)[:, None].clip(0, vals.shape[1] - 1), 1)[:, 0]
    hi = np.take_along_axis(vals, (first + k // 2)[:, None].clip(0, vals.shape[1] - 1), 1)[:, 0]
    out[ok] = 0.5 * (lo[ok] + hi[ok])
    return out


@dataclass
class DepthFusionConfig:
    """Tuning of :func:`fuse_hand_depth` (defaults measured on rendered RGB-D, see docs/benchmarks.md)."""

    window_factor: float = 0.7   # window radius = factor * offset (finger radius) in pixels
    max_window_px: int = 12
    cluster_band_m: float = 0.015
    min_readings: int = 3
    bone_points: int = 3         # points per bone sampled along the 2D skeleton
    model_slack_m: float = 0.012  # offset-model and network errors on top of the sensor noise
    prior_sigma_m: float = 0.015  # the network's per-joint relative depth error
    joint_gate_m: float = 0.035   # a joint's own reading is used within this of the scaled RGB depth
    neighbour_readings: bool = True  # joints without a reading use the bone points next to them
    neighbour_sigma_m: float = 0.006  # extra uncertainty of a reading moved from a bone point
    scale_range: tuple[float, float] = (0.5, 2.0)
    min_inliers: int = 6
    min_inlier_fraction: float = 0.4


def fuse_hand_depth(joints_cam_m, uv_px, depth_m: np.ndarray, K,
                    config: DepthFusionConfig | None = None) -> DepthFusionResult:
    """Fuse one hand's RGB placement with an aligned depth image (see the module docstring).

    joints_cam_m: (21, 3) RGB placement (camera frame, metres, all z > 0); uv_px: (21, 2) its 2D
    joints; depth_m: (H, W) float metres with NaN holes (:func:`depth_to_metres`); K: 3x3.
    """
    cfg = config or DepthFusionConfig()
    P = np.asarray(joints_cam_m, dtype=np.float64).reshape(21, 3)
    uv = np.asarray(uv_px, dtype=np.float64).reshape(21, 2)
    K = np.asarray(K, dtype=np.float64)
    fx = float(K[0, 0])
    z_rgb = P[:, 2]

    # sample points: the 21 joints, then points along the bones (the 2D silhouette of the skeleton)
    bones = np.asarray(BONES, dtype=np.int64).reshape(-1, 2)
    ts = (np.arange(cfg.bone_points) + 1.0) / (cfg.bone_points + 1.0)
    a, b = bones[:, 0], bones[:, 1]
    uv_s = np.concatenate([uv, (uv[a, None] * (1 - ts)[None, :, None] + uv[b, None] * ts[None, :, None]).reshape(-1, 2)])
    z_s = np.concatenate([z_rgb, (z_rgb[a, None] * (1 - ts) + z_rgb[b, None] * ts).reshape(-1)])
    off_s = np.concatenate([SURFACE_OFFSET_M, (SURFACE_OFFSET_M[a, None] * (1 - ts) + SURFACE_OFFSET_M[b, None] * ts).reshape(-1)])
    radius = np.clip(np.rint(cfg.window_factor * off_s * fx / z_s), 1, cfg.max_window_px).astype(int)
    surf = surface_depths(depth_m, uv_s, radius, cfg.cluster_band_m, cfg.min_readings)
    ok = np.isfinite(surf)
    result = DepthFusionResult(P.copy(), False, surface_z_m=surf[:21].copy(), n_windows=int(ok.sum()))
    if ok.sum() < cfg.min_inliers:
        result.reason = f"no depth under the hand ({int(ok.sum())} usable windows of {len(ok)})"
        return result

    # robust scale: median of the ratios, then least squares over the inliers (twice)
    z_meas = surf + off_s  # offsets are for an average hand; refined with s below
    s = float(np.median(z_meas[ok] / z_s[ok]))
    inl = ok
    for _ in range(2):
        z_meas = surf + off_s * s
        tol = 3.0 * depth_noise_sigma_m(z_s * s) + cfg.model_slack_m
        inl = ok & (np.abs(z_meas - s * z_s) <= tol)
        if inl.sum() < cfg.min_inliers:
            break
        s = float((z_s[inl] @ z_meas[inl]) / (z_s[inl] @ z_s[inl]))
    lo, hi = cfg.scale_range
    if not lo <= s <= hi:
        result.reason = (f"depth disagrees with the image: it puts the hand {s:.2f}x as far as the RGB "
                         f"placement (allowed {lo}..{hi}); is the depth aligned to the colour image?")
        return result
    # consistency: most windows must agree with the scaled hand within the per-joint gate (the
    # network's relative depths may be off by a couple of centimetres; occluders, background and
    # an unaligned depth image are off by more)
    z_meas = surf + off_s * s
    agree = ok & (np.abs(z_meas - s * z_s) <= 3.0 * depth_noise_sigma_m(z_s * s) + cfg.joint_gate_m)
    result.n_inliers = int(agree.sum())
    if agree.sum() < cfg.min_inliers or agree.sum() < cfg.min_inlier_fraction * ok.sum():
        result.reason = (f"depth readings under the hand are inconsistent ({int(agree.sum())} of "
                         f"{int(ok.sum())} windows agree)")
        return result

    # per joint: inverse-variance depth, then along the ray of its 2D joint
    z_prior = s * z_rgb
    w_prior = 1.0 / cfg.prior_sigma_m ** 2
    sig_m = np.sqrt(depth_noise_sigma_m(z_prior) ** 2 + (0.25 * SURFACE_OFFSET_M * s) ** 2)
    # a joint's own reading counts when it is within joint_gate_m of the scaled RGB depth: wider
    # than the scale's inlier test, because the network's relative depths are what it corrects
    # (farther: background behind a joint off the silhouette; nearer: a finger in front of it)
    with np.errstate(invalid="ignore"):
        joint_ok = ok[:21] & (np.abs(z_meas[:21] - z_prior) <= cfg.joint_gate_m)
    z_obs = np.where(joint_ok, z_meas[:21], np.nan)
    sig_obs = sig_m.copy()
    if cfg.neighbour_readings:
        # a joint without its own reading (its 2D point just off the finger, a hole) takes the
        # readings of the bone points next to it, moved to the joint by the scaled RGB depth
        # difference between point and joint
        with np.errstate(invalid="ignore"):
            near_ok = ok & (np.abs(z_meas - s * z_s) <= cfg.joint_gate_m)
        nb = cfg.bone_points
        for j in np.flatnonzero(~joint_ok):
            est = []
            # on each bone at the joint, the agreeing point nearest to the joint
            runs = [[21 + b * nb + k for k in range(nb - 1, -1, -1)] for b in np.flatnonzero(bones[:, 1] == j)]
            runs += [[21 + b * nb + k for k in range(nb)] for b in np.flatnonzero(bones[:, 0] == j)]
            for run in runs:
                i = next((i for i in run if near_ok[i]), None)
                if i is not None:
                    est.append(z_meas[i] - s * (z_s[i] - z_rgb[j]))
            if est:
                z_obs[j] = float(np.median(est))
                sig_obs[j] = np.hypot(sig_m[j], cfg.neighbour_sigma_m)
    has_obs = np.isfinite(z_obs)
    w_meas = np.where(has_obs, 1.0 / sig_obs ** 2, 0.0)
    z_j = (w_prior * z_prior + w_meas * np.nan_to_num(z_obs)) / (w_prior + w_meas)
    # on the rays of the detected 2D joints: the landmark network's 2D is more precise than the
    # lateral position of its 3D joints, so the fused joints reproject exactly onto uv_px
    result.joints_cam_m = unproject(uv, z_j, K)
    result.used, result.scale = True, s
    return result


__all__ = ["SURFACE_OFFSET_M", "DepthFusionConfig", "DepthFusionResult", "depth_noise_sigma_m",
           "depth_to_metres", "surface_depths", "fuse_hand_depth"]
