"""Geometry of hand crops: one affine image warp plus the matching camera change.

Every geometric augmentation (crop, scale, translation, in-plane rotation, horizontal flip) is
composed into ONE pair ``(M, R)`` and applied once (one resampling of the image):

* ``M`` (3x3) maps source pixels to crop pixels. Both use the OpenCV / ROS convention of the
  common sample (pixel centres at integer coordinates), so ``joints_2d' = M joints_2d``.
* ``R`` (3x3, orthogonal) acts on the camera frame: ``X' = R X`` for ``joints_cam_m``,
  ``verts_cam_m``. ``R`` is a rotation about the optical axis (z) for in-plane rotation,
  times ``diag(-1, 1, 1)`` for a flip.
* The new intrinsics are ``K' = M K R^T``. Then ``K' X' = M K X``: the 3D still projects
  onto the 2D. The crop always resamples to square pixels (x and y scaled by ``f/fx`` and
  ``f/fy``), which makes ``M K R^T`` a plain pinhole matrix (``fx' = fy'``, no skew) even for a
  rotated crop; the principal point moves wherever the geometry puts it (it may lie outside
  the crop).

Depth values are z in the camera frame; rotations about z, flips and crops keep z, so an aligned
depth map is only resampled (nearest neighbour, like the mask).

MANO parameters follow the 3D (see :func:`apply_geometry`): a flip mirrors the axis-angle pose
(``(x, y, z) -> (x, -y, -z)`` per joint, the right/left MANO mirror) and the translation's x; a
rotation ``R`` left-multiplies the global orientation and sets
``trans' = R w - w + trans`` with ``w`` the wrist (``joints_cam_m[0]``), because MANO rotates
about its root joint, which is the posed wrist minus the translation. This holds when the
sample's wrist is MANO's root joint (FreiHAND, HO3D and the synthetic data are MANO fits).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

_FLIP3 = np.diag([-1.0, 1.0, 1.0])

# 2D keys warped like the image; value = interpolation used.
_MAP_KEYS = {"mask": cv2.INTER_NEAREST, "depth_m": cv2.INTER_NEAREST}


def _rot2(angle_rad: float) -> np.ndarray:
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    return np.array([[c, -s], [s, c]])


def rotvec_to_matrix(rv: np.ndarray) -> np.ndarray:
    """Rodrigues: axis-angle (3,) -> rotation matrix."""
    rv = np.asarray(rv, np.float64)
    theta = float(np.linalg.norm(rv))
    if theta < 1e-12:
        return np.eye(3)
    k = rv / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * kx + (1 - np.cos(theta)) * (kx @ kx)


def matrix_to_rotvec(R: np.ndarray) -> np.ndarray:
    """Rotation matrix -> axis-angle (3,), angle in [0, pi]; stable near 0 and pi."""
    R = np.asarray(R, np.float64)
    w = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])  # 2 sin(theta) k
    sin = np.linalg.norm(w) / 2
    cos = (np.trace(R) - 1) / 2
    theta = float(np.arctan2(sin, cos))
    if theta < 1e-6:
        return w / 2
    if np.pi - theta > 1e-3:
        return w / (2 * sin) * theta
    # near pi: k k^T = (S - cos I) / (1 - cos) with S the symmetric part; sign of k from w
    kk = ((R + R.T) / 2 - cos * np.eye(3)) / (1 - cos)
    i = int(np.argmax(np.diag(kk)))
    axis = kk[:, i] / np.sqrt(kk[i, i])
    if np.dot(axis, w) < 0:
        axis = -axis
    return axis / np.linalg.norm(axis) * theta


def rot_z(angle_rad: float) -> np.ndarray:
    """3x3 rotation about the optical axis with the same sense as :func:`_rot2` in the image."""
    r = np.eye(3)
    r[:2, :2] = _rot2(angle_rad)
    return r


@dataclass
class CropGeometry:
    """Where the crop lies, in the source image's square-pixel frame (see :func:`crop_affine`).

    ``centre_q``: crop centre in q-coordinates (``q = (u - cx, (v - cy) * fx / fy)``);
    ``side_q``: crop side in the same units (x pixels); ``angle_rad``: rotation of the image
    content (positive turns +x towards +y, i.e. clockwise on screen); ``flip``: mirror the crop
    horizontally after rotating.
    """

    centre_q: np.ndarray
    side_q: float
    angle_rad: float = 0.0
    flip: bool = False


def to_q(points_px: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Source pixels -> square-pixel frame centred on the principal point."""
    p = np.asarray(points_px, np.float64)
    K = np.asarray(K, np.float64)
    return np.stack([p[..., 0] - K[0, 2], (p[..., 1] - K[1, 2]) * K[0, 0] / K[1, 1]], -1)


def hand_box_q(joints_2d: np.ndarray, visible: np.ndarray, K: np.ndarray,
               angle_rad: float = 0.0) -> tuple[np.ndarray, float]:
    """Centre and longest side (q units) of the joints' box, measured in the rotated frame.

    Uses the visible joints when at least two are visible, else all joints.
    """
    vis = np.asarray(visible, bool)
    pts = np.asarray(joints_2d, np.float64)
    if vis.sum() >= 2:
        pts = pts[vis]
    q = to_q(pts, K)
    r = _rot2(angle_rad)
    local = q @ r.T  # rotated frame
    lo, hi = local.min(0), local.max(0)
    centre = r.T @ ((lo + hi) / 2)
    return centre, float(max(hi - lo))


def upright_angle(joints_2d: np.ndarray, K: np.ndarray) -> float:
    """Rotation that makes the wrist -> middle-MCP direction point up (-v) in the crop, like
    the estimator's hand ROIs (:mod:`hand_pose_core.pipeline.roi`)."""
    q = to_q(np.asarray(joints_2d)[[0, 9]], K)
    d = q[1] - q[0]
    if not np.any(d):
        return 0.0
    return float(-np.pi / 2 - np.arctan2(d[1], d[0]))


def crop_affine(geom: CropGeometry, K: np.ndarray, size_px: int) -> tuple[np.ndarray, np.ndarray]:
    """``(M, R)`` for a ``size_px`` square crop: source pixels -> crop pixels, and the camera
    rotation (see the module docstring)."""
    K = np.asarray(K, np.float64)
    s = size_px / geom.side_q
    # source px -> q: D (u - c0)
    D = np.diag([1.0, K[0, 0] / K[1, 1]])
    to_q3 = np.eye(3)
    to_q3[:2, :2] = D
    to_q3[:2, 2] = -D @ K[:2, 2]
    # q -> crop corner coordinates (pixel j spans [j, j+1)), then -> pixel-centre convention.
    rq = np.eye(3)
    rq[:2, :2] = s * _rot2(geom.angle_rad)
    rq[:2, 2] = -s * _rot2(geom.angle_rad) @ np.asarray(geom.centre_q, np.float64) + size_px / 2 - 0.5
    M = rq @ to_q3
    R = rot_z(geom.angle_rad)
    if geom.flip:
        fl = np.array([[-1.0, 0.0, size_px - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        M = fl @ M
        R = _FLIP3 @ R
    return M, R


def rotate_mano(pose, trans, wrist, rot: np.ndarray):
    """MANO parameters of the hand after the proper rotation ``X' = rot X`` of the camera frame.

    ``pose`` (48,) axis-angle (global first) or None; ``trans`` (3,) or None; ``wrist`` (3,) the
    posed wrist (MANO root joint + trans) before the rotation. Returns (pose', trans'), where
    ``trans' = rot w - w + trans`` (MANO rotates about its root joint). ``trans'`` is None when
    it cannot be computed (no finite wrist).
    """
    rot = np.asarray(rot, np.float64)
    out_pose = out_trans = None
    if pose is not None:
        p = np.asarray(pose, np.float64).reshape(16, 3).copy()
        p[0] = matrix_to_rotvec(rot @ rotvec_to_matrix(p[0]))
        out_pose = p.reshape(48).astype(np.float32)
    if trans is not None:
        t = np.asarray(trans, np.float64)
        w = np.asarray(wrist, np.float64)
        if np.abs(rot - np.eye(3)).max() < 1e-12:
            out_trans = t.astype(np.float32)
        elif np.all(np.isfinite(w)):
            out_trans = (rot @ w - w + t).astype(np.float32)
    return out_pose, out_trans


def mirror_mano(pose, trans):
    """MANO parameters of the mirrored hand (x -> -x; the other side's MANO model):
    axis-angles ``(x, y, z) -> (x, -y, -z)`` for every joint, ``trans`` x negated."""
    p = None if pose is None else (np.asarray(pose, np.float64).reshape(16, 3) * [1.0, -1.0, -1.0]).reshape(48)
    t = None if trans is None else np.asarray(trans, np.float64) * [-1.0, 1.0, 1.0]
    return p, t


def _transform_mano(out: dict, sample: dict, R: np.ndarray, flipped: bool) -> None:
    pose, trans = sample.get("mano_pose"), sample.get("mano_trans")
    wrist = np.asarray(sample["joints_cam_m"], np.float64)[0]
    rot = R
    if flipped:
        # R = FLIP @ Rz = (FLIP Rz FLIP) @ FLIP: mirror first, then the rotation R @ FLIP.
        pose, trans = mirror_mano(pose, trans)
        wrist = wrist * np.array([-1.0, 1.0, 1.0])
        rot = R @ _FLIP3
    pose, trans = rotate_mano(pose, trans, wrist, rot)
    if sample.get("mano_pose") is not None:
        out["mano_pose"] = pose
    if sample.get("mano_trans") is not None:
        out["mano_trans"] = trans  # None: no 3D wrist, the translation cannot follow a rotation


def _snap_intrinsics(K: np.ndarray) -> np.ndarray:
    """``M K R^T`` of a crop and a rotation about the optical axis is upper triangular with last
    row (0, 0, 1) in exact arithmetic; in floating point its zeros come out as ~1e-14. Those
    entries are set back to exact zeros (the skew too): :func:`hand_pose_core.camera.validate_intrinsics`
    refuses a K that is not exactly upper triangular, and the metric placement from K with it."""
    K = np.array(K, np.float64)
    tol = 1e-9 * max(abs(K[0, 0]), abs(K[1, 1]), 1.0)
    for r, c in ((0, 1), (1, 0), (2, 0), (2, 1)):
        if abs(K[r, c]) < tol:
            K[r, c] = 0.0
    if abs(K[2, 2] - 1.0) < 1e-9:
        K[2, 2] = 1.0
    return K.astype(np.float32)


def apply_geometry(sample: dict, M: np.ndarray, R: np.ndarray, size_px: int, *,
                   image_border: int = cv2.BORDER_REPLICATE) -> dict:
    """Warp a common sample by ``(M, R)`` into a ``size_px`` square (returns a new dict)."""
    M = np.asarray(M, np.float64)
    R = np.asarray(R, np.float64)
    flipped = np.linalg.det(R) < 0
    out = dict(sample)
    dsize = (size_px, size_px)
    out["image"] = cv2.warpAffine(sample["image"], M[:2], dsize, flags=cv2.INTER_LINEAR,
                                  borderMode=image_border)
    for key, interp in _MAP_KEYS.items():
        if sample.get(key) is not None:
            out[key] = cv2.warpAffine(np.ascontiguousarray(sample[key]), M[:2], dsize, flags=interp,
                                      borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    out["K"] = _snap_intrinsics(M @ np.asarray(sample["K"], np.float64) @ R.T)
    j2 = np.asarray(sample["joints_2d"], np.float64)
    out["joints_2d"] = (j2 @ M[:2, :2].T + M[:2, 2]).astype(np.float32)
    out["joints_cam_m"] = (np.asarray(sample["joints_cam_m"], np.float64) @ R.T).astype(np.float32)
    if sample.get("verts_cam_m") is not None:
        out["verts_cam_m"] = (np.asarray(sample["verts_cam_m"], np.float64) @ R.T).astype(np.float32)
    if sample.get("mano_pose") is not None or sample.get("mano_trans") is not None:
        _transform_mano(out, sample, R, flipped)
    if flipped:
        out["side"] = "left" if sample["side"] == "right" else "right"
    return out
