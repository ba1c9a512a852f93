"""Fast MANO fit to 21 metric 3D joints (+ optional 2D keypoints), used by the tracker.

Per hand, in numpy float64 on the CPU (a few hundred small array ops, no autograd):

1. analytic initialisation (cold start): global rotation and translation from the palm
   joints by Kabsch/Procrustes, then each finger bone rotated (minimal swing) so its rest
   direction points at the target bone direction, walking the chains from the knuckles;
   warm start: the previous frame's parameters, rigidly re-aligned to the new palm.
2. a few Levenberg-Marquardt (damped Gauss-Newton) steps with an analytic Jacobian of the
   joints-only model (16 joints by forward kinematics, 5 fingertip vertices by linear blend
   skinning of just those vertices, pose correctives included) over local rotation increments
   ``R_k <- R_k exp(d_k)``, betas and translation. Residuals: wrist-relative 3D joints,
   absolute 3D joints (weight ``w_abs``), 2D reprojection through ``K`` (``w_2d`` per pixel),
   and small priors on the finger pose (towards MANO's mean pose) and on betas.
3. one full skinning pass for the 778 vertices.

Units: inputs and outputs in metres (camera frame); residual weights are per millimetre.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy.spatial.transform import Rotation

from hand_pose_core.mano.io import MANO_PARENTS, load_mano, resolve_mano_path, validate_mano
from hand_pose_core.mano.layer import MANO_TO_CANONICAL, resolve_tip_vertex_ids
from hand_pose_core.mano.synthetic import synthetic_mano

__all__ = ["ManoParams", "ManoFitResult", "ManoFitter"]


@dataclass
class ManoParams:
    """MANO parameters of one hand.

    pose: (48,) axis-angle, global rotation first, then the 15 finger joints in MANO order,
        with ``hands_mean`` removed (i.e. for ``ManoLayer(flat_hand_mean=False, use_pca=False)``).
    shape: (10,) betas.
    trans: (3,) metres, camera frame (``ManoLayer`` takes ``trans * 1000``).
    """

    pose: np.ndarray
    shape: np.ndarray
    trans: np.ndarray


@dataclass
class ManoFitResult:
    """Fit of one hand. ``residual_mm``: mean distance between fitted and target joints (mm).

    ``iterations``: LM iterations run; ``reproj_px``: mean 2D error (NaN without uv).
    """

    params: ManoParams
    joints_m: np.ndarray
    vertices_m: np.ndarray | None
    residual_mm: float
    iterations: int = 0
    reproj_px: float = float("nan")
    extras: dict = field(default_factory=dict)


# Joints grouped by depth in the tree (for batched forward kinematics).
_LEVELS = [np.array([1, 4, 7, 10, 13]), np.array([2, 5, 8, 11, 14]), np.array([3, 6, 9, 12, 15])]
_PARENTS = np.array(MANO_PARENTS)
_CANON = np.array(MANO_TO_CANONICAL)
_INV_CANON = np.argsort(_CANON)  # X_canonical[:, _INV_CANON] -> internal point order
# Finger chains in MANO joint ids, ending with the internal tip point (16 + finger).
_CHAINS = np.array([[1, 2, 3, 17], [4, 5, 6, 18], [7, 8, 9, 20], [10, 11, 12, 19],
                    [13, 14, 15, 16]])
_PALM_CANON = np.array([0, 1, 5, 9, 13, 17])  # wrist, thumb CMC, four knuckles
_GEN = np.array([[[0, 0, 0], [0, 0, -1], [0, 1, 0]],  # so(3) generators [e_a]_x
                 [[0, 0, 1], [0, 0, 0], [-1, 0, 0]],
                 [[0, -1, 0], [1, 0, 0], [0, 0, 0]]], dtype=np.float64)


def _subtree_matrix() -> np.ndarray:
    D = np.eye(16)
    for j in range(1, 16):
        k = _PARENTS[j]
        while k >= 0:
            D[k, j] = 1.0
            k = _PARENTS[k]
    return D


def _skew(v: np.ndarray) -> np.ndarray:
    o = np.zeros(v.shape[:-1])
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    return np.stack([o, -z, y, z, o, -x, -y, x, o], -1).reshape(v.shape[:-1] + (3, 3))


def _exp(aa: np.ndarray) -> np.ndarray:
    """Rodrigues for ``[..., 3]`` -> ``[..., 3, 3]`` (series near zero)."""
    th2 = (aa * aa).sum(-1)
    small = th2 < 1e-10
    th = np.sqrt(np.where(small, 1.0, th2))
    a = np.where(small, 1.0 - th2 / 6.0, np.sin(th) / th)
    b = np.where(small, 0.5 - th2 / 24.0, (1.0 - np.cos(th)) / np.where(small, 1.0, th2))
    K = _skew(aa)
    return np.eye(3) + a[..., None, None] * K + b[..., None, None] * (K @ K)


def _log(R: np.ndarray) -> np.ndarray:
    """Axis-angle of rotations ``[..., 3, 3]``; scipy only for angles near pi."""
    shp = R.shape[:-2]
    tr = R[..., 0, 0] + R[..., 1, 1] + R[..., 2, 2]
    cos = np.clip((tr - 1.0) * 0.5, -1.0, 1.0)
    th = np.arccos(cos)
    vee = np.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0],
                    R[..., 1, 0] - R[..., 0, 1]], -1) * 0.5
    small = th < 1e-4
    f = np.where(small, 1.0 + th * th / 6.0, th / np.sin(np.where(small, 1.0, th)))
    aa = vee * f[..., None]
    near_pi = th > 3.0
    if near_pi.any():
        aa[near_pi] = Rotation.from_matrix(R[near_pi].reshape(-1, 3, 3)).as_rotvec()
    return aa.reshape(shp + (3,))


def _rot_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Minimal rotations taking directions ``a`` to ``b`` (``[..., 3]``)."""
    a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    v = np.cross(a, b)
    c = (a * b).sum(-1)
    K = _skew(v)
    f = 1.0 / np.maximum(1.0 + c, 1e-6)  # opposite directions: degenerate but bounded
    return np.eye(3) + K + (K @ K) * f[..., None, None]


def _kabsch(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Rotations ``[H, 3, 3]`` minimising ``|R src_i - dst_i|`` for centred ``[H, N, 3]``."""
    M = np.einsum("hni,hnj->hij", dst, src)
    U, _, Vt = np.linalg.svd(M)
    d = np.sign(np.linalg.det(U @ Vt))
    D = np.ones(U.shape[:-1])
    D[:, 2] = d
    return (U * D[:, None, :]) @ Vt


class _Model:
    """Numpy arrays of one side's model, prepared for the joints-only path."""

    def __init__(self, model: dict, tip_vertex_ids="manopth"):
        m = validate_mano(model, "model")
        self.side = m.get("side", "right")
        tips = list(resolve_tip_vertex_ids(tip_vertex_ids, self.side))
        Jreg = m["J_regressor"]
        self.J_template = Jreg @ m["v_template"]
        self.J_shapedirs = np.einsum("jv,vcb->jcb", Jreg, m["shapedirs"])
        self.J_shapedirs_T = np.ascontiguousarray(self.J_shapedirs.reshape(48, 10).T)
        self.tip_template = m["v_template"][tips]
        self.tip_shapedirs = m["shapedirs"][tips]
        self.tip_posedirs = m["posedirs"][tips]  # (5, 3, 135)
        self.tip_weights = m["weights"][tips]  # (5, 16)
        self.tip_shapedirs_T = np.ascontiguousarray(self.tip_shapedirs.reshape(15, 10).T)
        self.tip_posedirs_T = np.ascontiguousarray(self.tip_posedirs.reshape(15, 135).T)
        # [k, (t c), e]: the tip correctives of joint k+1's 9 matrix elements
        self.tip_posedirs_k = np.ascontiguousarray(
            self.tip_posedirs.reshape(15, 15, 9).transpose(1, 0, 2))
        self.v_template = m["v_template"]
        self.shapedirs_T = np.ascontiguousarray(m["shapedirs"].reshape(778 * 3, 10).T)
        self.posedirs_T = np.ascontiguousarray(m["posedirs"].reshape(778 * 3, 135).T)
        self.weights = m["weights"]
        self.faces = m["f"].astype(np.int32)
        self.hands_mean = m["hands_mean"].reshape(15, 3)
        self.D = _subtree_matrix()
        # For each of the 21 internal points (16 joints + 5 tips) and each joint k: weight of
        # point's blend that moves with k (joints: subtree indicator; tips: skinning weights).
        self.tip_sub = self.tip_weights @ self.D.T  # (5, 16): sum_{j in sub(k)} w_tj
        self.Dw = self.D[None] * self.tip_weights[:, None, :]  # (5, 16k, 16j)
        self.tip_dx = self.tip_shapedirs[:, None] - self.J_shapedirs[None]  # (5, 16, 3, 10)

    # --------------------------------------------------------------- forward
    def forward(self, R: np.ndarray, beta: np.ndarray, need_jac: bool = False):
        """Points ``[H, 21, 3]`` (16 joints then 5 tips; metres, before trans).

        With ``need_jac`` also the Jacobian ``[H, 21, 3, 58]`` w.r.t. (16 local rotation
        increments, 10 betas) and the world rotations.
        """
        H = R.shape[0]
        Jr = self.J_template + (beta @ self.J_shapedirs_T).reshape(H, 16, 3)
        W = np.empty((H, 16, 3, 3))
        P = np.empty((H, 16, 3))
        W[:, 0] = R[:, 0]
        P[:, 0] = Jr[:, 0]
        if need_jac:
            dP = np.empty((H, 16, 3, 10))
            dP[:, 0] = self.J_shapedirs[0]
        for lv in _LEVELS:
            par = _PARENTS[lv]
            Wp = W[:, par]
            W[:, lv] = Wp @ R[:, lv]
            bone = Jr[:, lv] - Jr[:, par]
            P[:, lv] = P[:, par] + (Wp @ bone[..., None])[..., 0]
            if need_jac:
                dbone = self.J_shapedirs[lv] - self.J_shapedirs[par]  # (5, 3, 10)
                dP[:, lv] = dP[:, par] + Wp @ dbone
        feat = (R[:, 1:] - np.eye(3)).reshape(H, 135)
        x = (self.tip_template + (beta @ self.tip_shapedirs_T).reshape(H, 5, 3)
             + (feat @ self.tip_posedirs_T).reshape(H, 5, 3))  # tip rest positions
        rel = x[:, :, None, :] - Jr[:, None, :, :]  # (H, 5, 16, 3)
        Y = (W[:, None] @ rel[..., None])[..., 0] + P[:, None]
        tips = (self.tip_weights[None, :, :, None] * Y).sum(2)
        pts = np.concatenate([P, tips], 1)
        if not need_jac:
            return pts, W
        # Rotation part: d pts_i / d delta_k = -[S_ik]_x W_k with S_ik the part of point i
        # that rotates about joint k, relative to P_k.
        S = np.empty((H, 21, 16, 3))
        S[:, :16] = self.D.T[None, :, :, None] * (P[:, :, None, :] - P[:, None, :, :])
        Z = self.Dw[None] @ Y
        S[:, 16:] = Z - self.tip_sub[None, :, :, None] * P[:, None, :, :]
        Jrot = -_skew(S) @ W[:, None]  # (H, 21, 16, 3, 3)
        # Pose correctives of the tips: d R_k / d delta_a = R_k [e_a]_x changes the tip rest
        # positions, which move with the blend of the world rotations.
        dR = (R[:, 1:, None] @ _GEN).reshape(H, 15, 3, 9)  # [h, k, a, e]
        dx = self.tip_posedirs_k @ dR.transpose(1, 3, 0, 2).reshape(15, 9, H * 3)
        dx = dx.reshape(15, 5, 3, H, 3).transpose(3, 1, 0, 2, 4)  # [h, t, k, c, a]
        Wblend = (self.tip_weights[None, :, :, None, None] * W[:, None]).sum(2)  # (H, 5, 3, 3)
        Jrot[:, 16:, 1:] += Wblend[:, :, None] @ dx
        # Shape part (rotation fixed): d Y_tj = W_j (dx_t - dJr_j) + dP_j.
        dY = W[:, None] @ self.tip_dx[None] + dP[:, None]  # (H, 5, 16, 3, 10)
        dtips = (self.tip_weights[None, :, :, None, None] * dY).sum(2)
        Jshape = np.concatenate([dP, dtips], 1)  # (H, 21, 3, 10)
        Jac = np.concatenate([Jrot.transpose(0, 1, 3, 2, 4).reshape(H, 21, 3, 48), Jshape], -1)
        return pts, W, Jac

    def vertices(self, R: np.ndarray, beta: np.ndarray) -> np.ndarray:
        """Full LBS ``[H, 778, 3]`` metres (before trans)."""
        H = R.shape[0]
        v = self.v_template + (beta @ self.shapedirs_T).reshape(H, 778, 3)
        Jr = self.J_template + (beta @ self.J_shapedirs_T).reshape(H, 16, 3)
        feat = (R[:, 1:] - np.eye(3)).reshape(H, 135)
        v = v + (feat @ self.posedirs_T).reshape(H, 778, 3)
        W = np.empty((H, 16, 3, 3))
        P = np.empty((H, 16, 3))
        W[:, 0], P[:, 0] = R[:, 0], Jr[:, 0]
        for lv in _LEVELS:
            par = _PARENTS[lv]
            W[:, lv] = W[:, par] @ R[:, lv]
            P[:, lv] = P[:, par] + (W[:, par] @ (Jr[:, lv] - Jr[:, par])[..., None])[..., 0]
        t = P - (W @ Jr[..., None])[..., 0]
        A = np.concatenate([W.reshape(H, 16, 9), t], -1)  # (H, 16, 12)
        T = self.weights @ A
        Rv = T[..., :9].reshape(H, 778, 3, 3)
        return np.einsum("hvab,hvb->hva", Rv, v) + T[..., 9:]


class ManoFitter:
    """Fit MANO to metric 3D joints (and optional 2D keypoints) of several hands at once.

    Args:
        model: a model dict, or a ``{'right': dict, 'left': dict}`` mapping; default: the
            official files from ``mano_root`` if given, else :func:`synthetic_mano`.
        mano_root: folder/file with ``MANO_RIGHT/LEFT.pkl|.npz`` (used when ``model`` is None).
        device: kept for interface compatibility; the fit runs in numpy on the CPU because
            tiny per-hand problems are faster there than on any accelerator.
        iters_cold / iters_warm: maximum LM iterations without / with an initial guess.
        w_rel, w_abs: weights of the wrist-relative and absolute 3D joint residuals (per mm).
        w_2d: weight per pixel of the reprojection residual (needs ``uv_px`` and ``K``).
        w_pose, w_shape: prior weights on (finger pose - mean) in rad and betas.
        tip_vertex_ids: fingertip vertices (see :class:`~hand_pose_core.mano.ManoLayer`).
        tol: stop a hand's iterations once an accepted step lowers its cost by less than this
            fraction.
        reinit_mm: a warm start whose mean joint error exceeds this also tries the analytic
            initialisation (keeping the previous shape) and keeps the better one.
    """

    def __init__(self, model: dict | None = None, mano_root: str | os.PathLike | None = None,
                 device: str = "cpu", iters_cold: int = 8, iters_warm: int = 3,
                 w_rel: float = 1.0, w_abs: float = 0.3, w_2d: float = 0.5,
                 w_pose: float = 3.0, w_shape: float = 1.0, tip_vertex_ids="manopth",
                 tol: float = 1e-3, reinit_mm: float = 5.0):
        self.device = device
        self.iters_cold, self.iters_warm = int(iters_cold), int(iters_warm)
        self.w_rel, self.w_abs, self.w_2d = float(w_rel), float(w_abs), float(w_2d)
        self.w_pose, self.w_shape = float(w_pose), float(w_shape)
        self.tol = float(tol)
        self.reinit_mm = float(reinit_mm)
        self._tip_vertex_ids = tip_vertex_ids
        self._source = model, mano_root
        self._models: dict[str, _Model] = {}

    def model(self, side: str) -> _Model:
        side = str(side).lower()
        if side not in ("right", "left"):
            raise ValueError(f"side must be 'right' or 'left', got {side!r}")
        if side not in self._models:
            model, root = self._source
            if isinstance(model, dict) and side in model and isinstance(model[side], dict):
                m = model[side]
            elif isinstance(model, dict) and "v_template" in model:
                if model.get("side", side) != side:
                    raise ValueError(
                        f"only a {model['side']} hand model was given; cannot fit a {side} hand"
                    )
                m = model
            elif root is not None:
                m = load_mano(resolve_mano_path(root, side), side=side)
            else:
                m = synthetic_mano(side)
            self._models[side] = _Model(dict(m, side=side), self._tip_vertex_ids)
        return self._models[side]

    def faces(self, side: str) -> np.ndarray:
        """Triangles ``int32 [1538, 3]`` of ``side``'s mesh."""
        return self.model(side).faces

    # ----------------------------------------------------------------- public fit
    def fit(self, joints_cam_m: np.ndarray, uv_px: np.ndarray | None, K: np.ndarray | None,
            sides: Sequence[str], init: Sequence[ManoParams | None] | None = None,
            with_vertices: bool = True) -> list[ManoFitResult]:
        """Fit each hand; hands of the same side are solved as one batch.

        Args:
            joints_cam_m: ``[H, 21, 3]`` metres, camera frame, canonical joint order.
            uv_px: ``[H, 21, 2]`` pixels or None (no 2D term).
            K: ``[3, 3]`` intrinsics (needed with ``uv_px``).
            sides: H entries 'right'/'left'.
            init: H previous-frame parameters (or None entries) for warm starts.
            with_vertices: also return the 778 vertices (one full skinning pass).
        """
        X = np.asarray(joints_cam_m, dtype=np.float64)
        if X.ndim != 3 or X.shape[1:] != (21, 3):
            raise ValueError(f"joints_cam_m must be [H, 21, 3] metres, got {X.shape}")
        H = X.shape[0]
        if not np.isfinite(X).all():
            raise ValueError("joints_cam_m contains NaN or Inf")
        uv = None
        if uv_px is not None:
            uv = np.asarray(uv_px, dtype=np.float64)
            if uv.shape != (H, 21, 2):
                raise ValueError(f"uv_px must be [{H}, 21, 2] pixels, got {uv.shape}")
            if not np.isfinite(uv).all():
                raise ValueError("uv_px contains NaN or Inf")
            if K is None:
                raise ValueError("K is required when uv_px is given")
        if K is not None:
            K = np.asarray(K, dtype=np.float64)
            if K.shape != (3, 3) or not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
                raise ValueError(f"K must be a finite 3x3 intrinsics matrix, got {K!r}")
        if len(sides) != H:
            raise ValueError(f"sides has {len(sides)} entries for {H} hands")
        init = list(init) if init is not None else [None] * H
        if len(init) != H:
            raise ValueError(f"init has {len(init)} entries for {H} hands")
        results: list[ManoFitResult | None] = [None] * H
        for side in sorted(set(str(s).lower() for s in sides)):
            idx = [i for i in range(H) if str(sides[i]).lower() == side]
            out = self._fit_side(self.model(side), X[idx], None if uv is None else uv[idx], K,
                                 [init[i] for i in idx], with_vertices)
            for i, r in zip(idx, out):
                results[i] = r
        return results  # type: ignore[return-value]

    # ----------------------------------------------------------------- internals
    def _init_cold(self, m: _Model, T: np.ndarray, beta: np.ndarray | None = None):
        """Analytic pose from targets ``T`` [H, 21, 3] given in internal point order."""
        H = T.shape[0]
        beta = np.zeros((H, 10)) if beta is None else beta
        Jr = m.J_template + (beta @ m.J_shapedirs_T).reshape(H, 16, 3)
        tips = m.tip_template + (beta @ m.tip_shapedirs_T).reshape(H, 5, 3)
        rest = np.concatenate([Jr, tips], 1)
        palm = _CANON[_PALM_CANON]
        src = rest[:, palm] - rest[:, palm].mean(1, keepdims=True)
        dst = T[:, palm] - T[:, palm].mean(1, keepdims=True)
        R = np.tile(np.eye(3), (H, 16, 1, 1))
        R[:, 0] = _kabsch(src, dst)
        W = np.tile(R[:, :1], (1, 16, 1, 1))  # world rotations so far
        for level in range(3):
            k, child = _CHAINS[:, level], _CHAINS[:, level + 1]
            par = _PARENTS[k]
            d_rest = rest[:, child] - rest[:, k]
            Wp = W[:, par]
            cur = np.einsum("hjab,hjb->hja", Wp, d_rest)
            tgt = T[:, child] - T[:, k]
            Wk = _rot_between(cur, tgt) @ Wp
            R[:, k] = np.swapaxes(Wp, -1, -2) @ Wk
            W[:, k] = Wk
        pts, _ = m.forward(R, beta)
        trans = (T - pts)[:, palm].mean(1)
        return R, beta, trans

    def _init_warm(self, m: _Model, T: np.ndarray, init: Sequence[ManoParams]):
        H = T.shape[0]
        pose = np.stack([np.asarray(p.pose, np.float64).reshape(48) for p in init])
        beta = np.stack([np.asarray(p.shape, np.float64).reshape(10) for p in init])
        trans = np.stack([np.asarray(p.trans, np.float64).reshape(3) for p in init])
        aa = pose.reshape(H, 16, 3).copy()
        aa[:, 1:] += m.hands_mean
        R = _exp(aa)
        pts, _ = m.forward(R, beta)
        # Rigidly move the previous hand onto the new palm (handles fast global motion).
        palm = _CANON[_PALM_CANON]
        prev = pts[:, palm] + trans[:, None]
        pc, tc = prev.mean(1, keepdims=True), T[:, palm].mean(1, keepdims=True)
        dR = _kabsch(prev - pc, T[:, palm] - tc)
        R[:, 0] = dR @ R[:, 0]
        # The root rotates the hand about the rest wrist P_0: no second forward pass needed.
        pts = pts[:, :1] + (pts - pts[:, :1]) @ np.swapaxes(dR, -1, -2)
        trans = (T - pts)[:, palm].mean(1)
        return R, beta, trans

    def _residuals(self, m, R, beta, trans, T, uv, K, need_jac):
        """Stacked weighted residuals [H, N] (mm-like units) and Jacobian [H, N, 61]."""
        H = R.shape[0]
        if need_jac:
            pts, W, Jac = m.forward(R, beta, need_jac=True)
        else:
            pts, W = m.forward(R, beta)
        cam = pts + trans[:, None]
        res = []
        jac = []
        # wrist-relative 3D (mm)
        rel = (cam - cam[:, :1]) - (T - T[:, :1])
        res.append(self.w_rel * 1000.0 * rel[:, 1:].reshape(H, -1))
        # absolute 3D (mm)
        res.append(self.w_abs * 1000.0 * (cam - T).reshape(H, -1))
        if need_jac:
            Jfull = np.concatenate([Jac, np.broadcast_to(np.eye(3), (H, 21, 3, 3))], -1)
            Jrel = Jfull[:, 1:] - Jfull[:, :1]
            Jrel[..., 58:] = 0.0
            jac.append(self.w_rel * 1000.0 * Jrel.reshape(H, 60, 61))
            jac.append(self.w_abs * 1000.0 * Jfull.reshape(H, 63, 61))
        if uv is not None and self.w_2d > 0:
            h = cam @ K.T
            z = np.maximum(h[..., 2:], 1e-3)
            proj = h[..., :2] / z
            res.append(self.w_2d * (proj - uv).reshape(H, -1))
            if need_jac:
                # d(u, v)/d cam = (K[:2] - (u, v) K[2]) / z
                dproj = (K[:2] - proj[..., None] * K[2]) / z[..., None]
                J2 = dproj @ Jfull
                jac.append(self.w_2d * J2.reshape(H, 42, 61))
        # priors: finger pose towards the mean (rad), betas towards 0
        aa = _log(R[:, 1:]) - m.hands_mean
        res.append(self.w_pose * aa.reshape(H, 45))
        res.append(self.w_shape * beta)
        if need_jac:
            Jp = np.zeros((H, 45, 61))
            Jp[:, :, 3:48] = self.w_pose * np.eye(45)
            Js = np.zeros((H, 10, 61))
            Js[:, :, 48:58] = self.w_shape * np.eye(10)
            jac += [Jp, Js]
        r = np.concatenate(res, 1)
        return (r, np.concatenate(jac, 1), pts) if need_jac else (r, None, pts)

    def _fit_side(self, m: _Model, X, uv, K, init, with_vertices):
        H = X.shape[0]
        T = X[:, _INV_CANON]  # canonical -> internal order (16 MANO joints, 5 tips)
        uv_int = None if uv is None else uv[:, _INV_CANON]
        warm = np.array([p is not None for p in init])
        R = np.empty((H, 16, 3, 3))
        beta = np.empty((H, 10))
        trans = np.empty((H, 3))
        if (~warm).any():
            c = np.flatnonzero(~warm)
            R[c], beta[c], trans[c] = self._init_cold(m, T[c])
        if warm.any():
            w = np.flatnonzero(warm)
            R[w], beta[w], trans[w] = self._init_warm(m, T[w], [init[i] for i in w])
        max_it = np.where(warm, self.iters_warm, self.iters_cold)
        iters = np.zeros(H, dtype=int)
        lam = np.full(H, 1e-3)
        active = max_it > 0
        r, Jm, pts = self._residuals(m, R, beta, trans, T, uv_int, K, True)
        cost = (r * r).sum(1)
        if warm.any():
            # After fast motion the previous pose can be a worse start than the analytic one
            # (with the previous shape): try that when the warm start is far off.
            err0 = np.linalg.norm(pts + trans[:, None] - T, axis=-1).mean(1) * 1000.0
            w = np.flatnonzero(warm & (err0 > self.reinit_mm))
            if w.size:
                Rc, bc, tc = self._init_cold(m, T[w], beta[w].copy())
                rc, Jc, pc = self._residuals(m, Rc, bc, tc, T[w],
                                             None if uv_int is None else uv_int[w], K, True)
                cc = (rc * rc).sum(1)
                sel = cc < cost[w]
                sw = w[sel]
                R[sw], beta[sw], trans[sw] = Rc[sel], bc[sel], tc[sel]
                r[sw], Jm[sw], pts[sw], cost[sw] = rc[sel], Jc[sel], pc[sel], cc[sel]
                max_it[sw] = self.iters_cold
        for _ in range(int(max_it.max(initial=0))):
            a = np.flatnonzero(active)
            if a.size == 0:
                break
            Ja = Jm[a]
            JaT = Ja.transpose(0, 2, 1)
            JtJ = JaT @ Ja
            g = (JaT @ r[a][..., None])[..., 0]
            diag = np.einsum("hpp->hp", JtJ)
            A = JtJ + (lam[a, None] * (diag + 1e-6))[..., None] * np.eye(61)
            step = -np.linalg.solve(A, g[..., None])[..., 0]
            Rn = R[a].copy()
            Rn = Rn @ _exp(step[:, :48].reshape(-1, 16, 3))
            bn = beta[a] + step[:, 48:58]
            tn = trans[a] + step[:, 58:]
            rn, Jn, pn = self._residuals(m, Rn, bn, tn, T[a],
                                         None if uv_int is None else uv_int[a], K, True)
            cn = (rn * rn).sum(1)
            cost_prev = cost[a].copy()
            better = cn < cost_prev
            ok = a[better]
            R[ok], beta[ok], trans[ok] = Rn[better], bn[better], tn[better]
            r[ok], Jm[ok], cost[ok], pts[ok] = rn[better], Jn[better], cn[better], pn[better]
            lam[ok] = np.maximum(lam[ok] / 3.0, 1e-7)
            lam[a[~better]] *= 10.0
            iters[a] += 1
            # Converged: the accepted step changed the cost by < tol (relative) or the
            # damping has grown so large that no progress is possible.
            gain = np.where(better, (cost_prev - cn) / np.maximum(cost_prev, 1e-12), 1.0)
            done = np.zeros(H, bool)
            done[a] = (better & (gain < self.tol)) | (~better & (lam[a] > 1e4))
            active &= ~done & (iters < max_it)
        cam = pts + trans[:, None]
        verts = m.vertices(R, beta) + trans[:, None] if with_vertices else None
        aa = _log(R)
        aa[:, 1:] -= m.hands_mean
        joints = cam[:, _CANON]
        err = np.linalg.norm(joints - X, axis=-1).mean(1) * 1000.0
        reproj = np.full(H, np.nan)
        if uv is not None:
            h = np.einsum("ab,hnb->hna", K, joints)
            reproj = np.linalg.norm(h[..., :2] / h[..., 2:] - uv, axis=-1).mean(1)
        out = []
        for i in range(H):
            params = ManoParams(pose=aa[i].reshape(48).astype(np.float32),
                                shape=beta[i].astype(np.float32), trans=trans[i].astype(np.float32))
            vi = None if verts is None else verts[i].astype(np.float32)
            out.append(ManoFitResult(params=params, joints_m=joints[i].astype(np.float32),
                                     vertices_m=vi,
                                     residual_mm=float(err[i]), iterations=int(iters[i]),
                                     reproj_px=float(reproj[i]),
                                     extras={"warm_start": bool(warm[i])}))
        return out

