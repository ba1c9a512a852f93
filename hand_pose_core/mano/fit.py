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
from scipy.linalg.lapack import dposv as _posv
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
    trans: (3,) metres, camera frame: exactly ``ManoLayer``'s ``trans`` (metres, manopth semantics).
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
_PALM_INT = _CANON[_PALM_CANON]  # the same points in internal order
_GEN = np.array([[[0, 0, 0], [0, 0, -1], [0, 1, 0]],  # so(3) generators [e_a]_x
                 [[0, 0, 1], [0, 0, 0], [-1, 0, 0]],
                 [[0, -1, 0], [1, 0, 0], [0, 0, 0]]], dtype=np.float64)


def _subtree_matrix() -> np.ndarray:
    """``D[k, j] = 1`` when joint ``k`` is ``j`` or one of its ancestors."""
    D = np.eye(16)
    for j in range(1, 16):
        k = _PARENTS[j]
        while k >= 0:
            D[k, j] = 1.0
            k = _PARENTS[k]
    return D


_GEN93 = _GEN.reshape(9, 3)  # rows (a, c): [e_a]_x, for batched [e_a]_x @ M products
_SKEW_MAP = _GEN.reshape(3, 9)  # v @ _SKEW_MAP = [v]_x flattened
_I3 = np.eye(3)
_I3_FLAT15 = np.tile(np.eye(3).reshape(9), 15)  # (R_1..15 - I) pose feature offset
# Flattened 3x3 indices: trace (0, 4, 8); vee: (R21 - R12, R02 - R20, R10 - R01).
_VEE_P = np.array([7, 2, 3])
_VEE_M = np.array([5, 6, 1])


def _skew(v: np.ndarray) -> np.ndarray:
    return (v @ _SKEW_MAP).reshape(v.shape[:-1] + (3, 3))


def _exp(aa: np.ndarray) -> np.ndarray:
    """Rodrigues for ``[..., 3]`` -> ``[..., 3, 3]`` (series near zero)."""
    th2 = (aa * aa).sum(-1)
    small = th2 < 1e-10
    if small.any():
        th = np.sqrt(np.where(small, 1.0, th2))
        a = np.where(small, 1.0 - th2 / 6.0, np.sin(th) / th)
        b = np.where(small, 0.5 - th2 / 24.0, (1.0 - np.cos(th)) / np.where(small, 1.0, th2))
    else:
        th = np.sqrt(th2)
        a = np.sin(th) / th
        b = (1.0 - np.cos(th)) / th2
    K = _skew(aa)
    return _I3 + a[..., None, None] * K + b[..., None, None] * (K @ K)


def _log(R: np.ndarray) -> np.ndarray:
    """Axis-angle of rotations ``[..., 3, 3]``; scipy only for angles near pi."""
    shp = R.shape[:-2]
    Rf = R.reshape(shp + (9,))
    tr = Rf[..., 0] + Rf[..., 4] + Rf[..., 8]
    cos = np.clip((tr - 1.0) * 0.5, -1.0, 1.0)
    th = np.arccos(cos)
    vee = (Rf[..., _VEE_P] - Rf[..., _VEE_M]) * 0.5
    small = th < 1e-4
    if small.any():
        f = np.where(small, 1.0 + th * th / 6.0, th / np.sin(np.where(small, 1.0, th)))
    else:
        f = th / np.sin(th)
    aa = vee * f[..., None]
    near_pi = th > 3.0
    if near_pi.any():
        aa[near_pi] = Rotation.from_matrix(R[near_pi].reshape(-1, 3, 3)).as_rotvec()
    return aa


def _rot_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Minimal rotations taking directions ``a`` to ``b`` (``[..., 3]``)."""
    a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    v = np.cross(a, b)
    c = (a * b).sum(-1)
    K = _skew(v)
    f = 1.0 / np.maximum(1.0 + c, 1e-6)  # opposite directions: degenerate but bounded
    return _I3 + K + (K @ K) * f[..., None, None]


def _kabsch(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Rotations ``[H, 3, 3]`` minimising ``|R src_i - dst_i|`` for centred ``[H, N, 3]``."""
    M = np.einsum("hni,hnj->hij", dst, src)
    U, _, Vt = np.linalg.svd(M)
    d = np.sign(np.linalg.det(U @ Vt))
    D = np.ones(U.shape[:-1])
    D[:, 2] = d
    return (U * D[:, None, :]) @ Vt


class _FK:
    """Forward-kinematics state of a batch of hands (what the Jacobian needs)."""

    __slots__ = ("R", "Jr", "W", "P", "Y", "pts")

    def __init__(self, R, Jr, W, P, Y, pts):
        self.R, self.Jr, self.W, self.P, self.Y, self.pts = R, Jr, W, P, Y, pts

    def take(self, idx) -> "_FK":
        return _FK(self.R[idx], self.Jr[idx], self.W[idx], self.P[idx], self.Y[idx],
                   self.pts[idx])

    def put(self, idx, other: "_FK") -> None:
        """Write ``other``'s hands into rows ``idx`` of this state, in place."""
        for f in self.__slots__:
            getattr(self, f)[idx] = getattr(other, f)


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
        # Rest tips as one product: [beta, vec(R_1..15)] @ tip_lin + tip_offset, with the
        # "- I" of the pose feature folded into the offset.
        self.tip_lin = np.concatenate([self.tip_shapedirs_T, self.tip_posedirs_T], 0)
        self.tip_offset = (self.tip_template.reshape(15)
                           - _I3_FLAT15 @ self.tip_posedirs_T).reshape(5, 3)
        self.v_template = m["v_template"]
        self.shapedirs_T = np.ascontiguousarray(m["shapedirs"].reshape(778 * 3, 10).T)
        self.posedirs_T = np.ascontiguousarray(m["posedirs"].reshape(778 * 3, 135).T)
        self.posedirs_T32 = self.posedirs_T.astype(np.float32)
        self.weights = m["weights"]
        self.faces = m["f"].astype(np.int32)
        self.hands_mean = m["hands_mean"].reshape(15, 3)
        self.D = _subtree_matrix()
        # Bones j = 1..15: P_i = P_0 + sum_j D[j, i] W_parent(j) bone_j.
        self.par1 = _PARENTS[1:].copy()
        self.D1T = np.ascontiguousarray(self.D[1:].T)  # (16 i, 15 j)
        self.dbone = self.J_shapedirs[1:] - self.J_shapedirs[self.par1]  # (15, 3, 10)
        # For each of the 21 internal points (16 joints + 5 tips) and each joint k: weight of
        # point's blend that moves with k (joints: subtree indicator; tips: skinning weights).
        self.tip_sub = self.tip_weights @ self.D.T  # (5, 16): sum_{j in sub(k)} w_tj
        self.Dw = self.D[None] * self.tip_weights[:, None, :]  # (5, 16k, 16j)
        self.negGEN93 = -_GEN93
        self.tip_w_row = self.tip_weights[:, None, :]  # (5, 1, 16)

    # --------------------------------------------------------------- forward
    def fk(self, R: np.ndarray, beta: np.ndarray) -> _FK:
        """Points (16 joints then 5 tips; metres, before trans) and the state they came from."""
        H = R.shape[0]
        Jr = (beta @ self.J_shapedirs_T).reshape(H, 16, 3)
        Jr += self.J_template
        W = np.empty((H, 16, 3, 3))
        W[:, 0] = R[:, 0]
        for lv in _LEVELS:
            W[:, lv] = W[:, _PARENTS[lv]] @ R[:, lv]
        Wp = W[:, self.par1]  # (H, 15, 3, 3)
        wb = (Wp @ (Jr[:, 1:] - Jr[:, self.par1])[..., None])[..., 0]  # world bones
        P = self.D1T @ wb
        P += Jr[:, :1]
        lin = np.concatenate([beta, R[:, 1:].reshape(H, 135)], 1)
        x = (lin @ self.tip_lin).reshape(H, 5, 3) + self.tip_offset  # tip rest positions
        rel = x[:, :, None, :] - Jr[:, None, :, :]  # (H, 5, 16, 3)
        Y = (W[:, None] @ rel[..., None])[..., 0] + P[:, None]  # tip t carried by joint j
        pts = np.empty((H, 21, 3))
        pts[:, :16] = P
        pts[:, 16:] = (self.tip_w_row @ Y)[:, :, 0]  # blend of the 16 carried copies
        return _FK(R, Jr, W, P, Y, pts)

    def jacobian(self, st: _FK) -> np.ndarray:
        """``[H, 21, 3, 61]``: d points / d (16 local rotation increments, 10 betas, trans)."""
        R, W, P, Y = st.R, st.W, st.P, st.Y
        H = R.shape[0]
        J = np.empty((H, 21, 3, 61))
        J[..., 58:] = _I3
        # Rotation part: d pts_i / d delta_k = -[S_ik]_x W_k with S_ik the part of point i
        # that rotates about joint k, relative to P_k; laid out [k, i] for one batched product.
        S = np.empty((H, 16, 21, 3))
        S[:, :, :16] = self.D[None, :, :, None] * (P[:, None, :, :] - P[:, :, None, :])
        Z = self.Dw @ Y[:, :, :, :]  # (H, 5, 16k, 3)
        Z -= self.tip_sub[:, :, None] * P[:, None]
        S[:, :, 16:] = Z.transpose(0, 2, 1, 3)
        GW = (self.negGEN93 @ W).reshape(H, 16, 3, 9)  # [k, a, (c, b)]: -[e_a]_x W_k
        Jr_ = (S @ GW).reshape(H, 16, 21, 3, 3)  # [k, i, c, b]
        J[..., :48] = Jr_.transpose(0, 2, 3, 1, 4).reshape(H, 21, 3, 48)
        # Pose correctives of the tips: d R_k / d delta_a = R_k [e_a]_x changes the tip rest
        # positions, which move with the blend of the world rotations.
        Wblend = (self.tip_weights @ W.reshape(H, 16, 9)).reshape(H, 5, 3, 3)
        Q = (Wblend @ self.tip_posedirs).reshape(H, 15, 15, 9)  # [(t c'), k, e]
        dR = (R[:, 1:, None] @ _GEN).reshape(H, 15, 3, 9)  # [k, a, e]
        corr = Q.transpose(0, 2, 1, 3) @ dR.transpose(0, 1, 3, 2)  # [k, (t c'), a]
        J[:, 16:, :, 3:48] += corr.transpose(0, 2, 1, 3).reshape(H, 5, 3, 45)
        # Shape part (rotation fixed): dP_i = dJr_0 + sum_j D[j, i] W_par(j) dbone_j and
        # dtip_t = sum_j w_tj (W_j (dx_t - dJr_j) + dP_j).
        dwb = (W[:, self.par1] @ self.dbone).reshape(H, 15, 30)
        dP = (self.D1T @ dwb).reshape(H, 16, 3, 10)
        dP += self.J_shapedirs[0]
        J[:, :16, :, 48:58] = dP
        WdJ = (W @ self.J_shapedirs).reshape(H, 16, 30)
        J[:, 16:, :, 48:58] = (Wblend @ self.tip_shapedirs
                               + (self.tip_weights @ (dP.reshape(H, 16, 30) - WdJ)
                                  ).reshape(H, 5, 3, 10))
        return J

    def forward(self, R: np.ndarray, beta: np.ndarray, need_jac: bool = False):
        """Points ``[H, 21, 3]`` (16 joints then 5 tips; metres, before trans).

        With ``need_jac`` also the Jacobian ``[H, 21, 3, 58]`` w.r.t. (16 local rotation
        increments, 10 betas) and the world rotations.
        """
        st = self.fk(R, beta)
        if not need_jac:
            return st.pts, st.W
        return st.pts, st.W, self.jacobian(st)[..., :58]

    def vertices(self, R: np.ndarray, beta: np.ndarray, st: _FK | None = None) -> np.ndarray:
        """Full LBS ``[H, 778, 3]`` metres (before trans); ``st``: ``fk(R, beta)`` if known."""
        H = R.shape[0]
        st = self.fk(R, beta) if st is None else st
        v = (beta @ self.shapedirs_T).reshape(H, 778, 3)
        v += self.v_template
        # Pose correctives (a few mm) in float32: half the memory traffic of the largest
        # product, ~1e-9 m error, far below the float32 vertices handed out.
        feat = (R[:, 1:] - _I3).reshape(H, 135).astype(np.float32)
        v += (feat @ self.posedirs_T32).reshape(H, 778, 3)
        W = st.W
        A = np.empty((H, 16, 12))
        A[..., :9] = W.reshape(H, 16, 9)
        A[..., 9:] = st.P - (W @ st.Jr[..., None])[..., 0]
        T = self.weights @ A
        out = np.einsum("hvab,hvb->hva", T[..., :9].reshape(H, 778, 3, 3), v)
        out += T[..., 9:]
        return out


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
        self._prior_diag = np.zeros(61)
        self._prior_diag[3:48] = self.w_pose ** 2
        self._prior_diag[48:58] = self.w_shape ** 2

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
        """Analytic pose from targets ``T`` [H, 21, 3] given in internal point order.

        Returns ``R, beta, trans`` and the forward-kinematics state at ``R, beta``.
        """
        H = T.shape[0]
        beta = np.zeros((H, 10)) if beta is None else beta
        Jr = m.J_template + (beta @ m.J_shapedirs_T).reshape(H, 16, 3)
        tips = m.tip_template + (beta @ m.tip_shapedirs_T).reshape(H, 5, 3)
        rest = np.concatenate([Jr, tips], 1)
        palm = _PALM_INT
        src = rest[:, palm] - rest[:, palm].mean(1, keepdims=True)
        dst = T[:, palm] - T[:, palm].mean(1, keepdims=True)
        R = np.tile(_I3, (H, 16, 1, 1))
        R[:, 0] = _kabsch(src, dst)
        W = np.tile(R[:, :1], (1, 16, 1, 1))  # world rotations so far
        for level in range(3):
            k, child = _CHAINS[:, level], _CHAINS[:, level + 1]
            par = _PARENTS[k]
            d_rest = rest[:, child] - rest[:, k]
            Wp = W[:, par]
            cur = (Wp @ d_rest[..., None])[..., 0]
            tgt = T[:, child] - T[:, k]
            Wk = _rot_between(cur, tgt) @ Wp
            R[:, k] = np.swapaxes(Wp, -1, -2) @ Wk
            W[:, k] = Wk
        st = m.fk(R, beta)
        trans = (T - st.pts)[:, palm].mean(1)
        return R, beta, trans, st

    def _init_warm(self, m: _Model, T: np.ndarray, init: Sequence[ManoParams]):
        H = T.shape[0]
        pose = np.stack([np.asarray(p.pose, np.float64).reshape(48) for p in init])
        beta = np.stack([np.asarray(p.shape, np.float64).reshape(10) for p in init])
        trans = np.stack([np.asarray(p.trans, np.float64).reshape(3) for p in init])
        aa = pose.reshape(H, 16, 3).copy()
        aa[:, 1:] += m.hands_mean
        R = _exp(aa)
        st = m.fk(R, beta)
        # Rigidly move the previous hand onto the new palm (handles fast global motion).
        palm = _PALM_INT
        prev = st.pts[:, palm] + trans[:, None]
        pc, tc = prev.mean(1, keepdims=True), T[:, palm].mean(1, keepdims=True)
        dR = _kabsch(prev - pc, T[:, palm] - tc)
        R[:, 0] = dR @ R[:, 0]
        # The root rotates the whole hand about the rest wrist P_0, so the forward state
        # follows without a second pass: W <- dR W, points <- P_0 + dR (p - P_0).
        dRT = np.swapaxes(dR, -1, -2)
        P0 = st.P[:, :1]
        W = dR[:, None] @ st.W
        P = P0 + (st.P - P0) @ dRT
        Y = P0[:, None] + (st.Y - P0[:, None]) @ dRT[:, None]
        pts = P0 + (st.pts - P0) @ dRT
        trans = (T - pts)[:, palm].mean(1)
        return R, beta, trans, _FK(R, st.Jr, W, P, Y, pts)

    def _eval(self, m: _Model, st: _FK, beta, trans, T, uv, K):
        """Stacked weighted residuals [H, N] (mm-like units) at the state ``st``.

        Rows: wrist-relative 3D (60), absolute 3D (63), 2D (42, with ``uv``), finger pose
        prior (45), betas prior (10).
        """
        H = T.shape[0]
        nd = 165 if uv is not None else 123
        r = np.empty((H, nd + 55))
        d = st.pts + trans[:, None] - T
        # wrist-relative 3D (mm): (cam_i - cam_0) - (T_i - T_0)
        np.multiply(d[:, 1:] - d[:, :1], self.w_rel * 1000.0, out=r[:, :60].reshape(H, 20, 3))
        # absolute 3D (mm)
        np.multiply(d, self.w_abs * 1000.0, out=r[:, 60:123].reshape(H, 21, 3))
        if uv is not None:
            h = (st.pts + trans[:, None]) @ K.T
            z = np.maximum(h[..., 2:], 1e-3)
            proj = h[..., :2] / z
            np.multiply(proj - uv, self.w_2d, out=r[:, 123:165].reshape(H, 21, 2))
        # priors: finger pose towards the mean (rad), betas towards 0
        aa = _log(st.R[:, 1:])
        aa -= m.hands_mean
        np.multiply(aa, self.w_pose, out=r[:, nd:nd + 45].reshape(H, 15, 3))
        np.multiply(beta, self.w_shape, out=r[:, nd + 45:])
        return r

    def _normal(self, m: _Model, st: _FK, trans, r, uv, K):
        """Gauss-Newton normal equations ``J^T J`` [H, 61, 61] and ``J^T r`` [H, 61]."""
        H = r.shape[0]
        nd = r.shape[1] - 55
        Jf = m.jacobian(st)  # (H, 21, 3, 61)
        Jd = np.empty((H, nd, 61))
        Jrel = Jd[:, :60].reshape(H, 20, 3, 61)
        np.subtract(Jf[:, 1:], Jf[:, :1], out=Jrel)
        Jrel *= self.w_rel * 1000.0
        Jd[:, :60, 58:] = 0.0
        np.multiply(Jf.reshape(H, 63, 61), self.w_abs * 1000.0, out=Jd[:, 60:123])
        if uv is not None:
            # d(u, v)/d cam = (K[:2] - (u, v) K[2]) / z
            h = (st.pts + trans[:, None]) @ K.T
            z = np.maximum(h[..., 2:], 1e-3)
            proj = h[..., :2] / z
            dproj = (K[:2] - proj[..., None] * K[2]) * (self.w_2d / z[..., None])
            np.matmul(dproj, Jf, out=Jd[:, 123:165].reshape(H, 21, 2, 61))
        JdT = Jd.transpose(0, 2, 1)
        JtJ = JdT @ Jd
        # The priors' Jacobian is a constant diagonal (pose increments, betas).
        JtJ.reshape(H, 61 * 61)[:, ::62] += self._prior_diag
        g = (JdT @ r[:, :nd, None])[..., 0]
        g[:, 3:48] += self.w_pose * r[:, nd:nd + 45]
        g[:, 48:58] += self.w_shape * r[:, nd + 45:]
        return JtJ, g

    @staticmethod
    def _solve(A: np.ndarray, g: np.ndarray) -> np.ndarray:
        """Solve the damped (symmetric positive definite) systems ``A x = g`` per hand."""
        out = np.empty_like(g)
        for i in range(A.shape[0]):
            _, x, info = _posv(A[i], g[i], lower=0, overwrite_a=1, overwrite_b=0)
            if info != 0:  # not numerically positive definite: general LU
                x = np.linalg.solve(A[i], g[i])
            out[i] = x
        return out

    def _fit_side(self, m: _Model, X, uv, K, init, with_vertices):
        H = X.shape[0]
        T = X[:, _INV_CANON]  # canonical -> internal order (16 MANO joints, 5 tips)
        uv_int = None if uv is None or self.w_2d <= 0 else uv[:, _INV_CANON]
        warm = np.array([p is not None for p in init])
        if warm.all():
            R, beta, trans, st = self._init_warm(m, T, init)
        elif not warm.any():
            R, beta, trans, st = self._init_cold(m, T)
        else:
            c, w = np.flatnonzero(~warm), np.flatnonzero(warm)
            Rc, bc, tc, sc = self._init_cold(m, T[c])
            Rw, bw, tw, sw = self._init_warm(m, T[w], [init[i] for i in w])
            order = np.argsort(np.concatenate([c, w]))
            R, beta, trans = (np.concatenate([Rc, Rw])[order], np.concatenate([bc, bw])[order],
                              np.concatenate([tc, tw])[order])
            st = _FK(*(np.concatenate([getattr(sc, f), getattr(sw, f)])[order]
                       for f in _FK.__slots__))
            st.R = R
        max_it = np.where(warm, self.iters_warm, self.iters_cold)
        iters = np.zeros(H, dtype=int)
        lam = np.full(H, 1e-3)
        r = self._eval(m, st, beta, trans, T, uv_int, K)
        cost = (r * r).sum(1)
        if warm.any():
            # After fast motion the previous pose can be a worse start than the analytic one
            # (with the previous shape): try that when the warm start is far off.
            err0 = np.linalg.norm(st.pts + trans[:, None] - T, axis=-1).mean(1) * 1000.0
            w = np.flatnonzero(warm & (err0 > self.reinit_mm))
            if w.size:
                Rc, bc, tc, sc = self._init_cold(m, T[w], beta[w].copy())
                rc = self._eval(m, sc, bc, tc, T[w], None if uv_int is None else uv_int[w], K)
                cc = (rc * rc).sum(1)
                sel = cc < cost[w]
                if sel.any():
                    sw = w[sel]
                    R[sw], beta[sw], trans[sw] = Rc[sel], bc[sel], tc[sel]
                    r[sw], cost[sw] = rc[sel], cc[sel]
                    st.put(sw, sc.take(sel))
                    st.R = R
                    max_it[sw] = self.iters_cold
        active = max_it > 0
        if active.any():
            JtJ, g = self._normal(m, st, trans, r, uv_int, K)
        for _ in range(int(max_it.max(initial=0))):
            a = np.flatnonzero(active)
            if a.size == 0:
                break
            full = a.size == H
            sub = slice(None) if full else a  # views while every hand is active
            A = JtJ[sub].copy()
            Ad = A.reshape(a.size, 61 * 61)[:, ::62]  # view of the diagonal
            Ad += lam[sub, None] * (Ad + 1e-6)
            step = self._solve(A, -g[sub])
            Rn = R[sub] @ _exp(step[:, :48].reshape(-1, 16, 3))
            bn = beta[sub] + step[:, 48:58]
            tn = trans[sub] + step[:, 58:]
            Ta, uva = T[sub], None if uv_int is None else uv_int[sub]
            stn = m.fk(Rn, bn)
            rn = self._eval(m, stn, bn, tn, Ta, uva, K)
            cn = np.einsum("hn,hn->h", rn, rn)
            cost_prev = cost[sub]
            better = cn < cost_prev
            iters[sub] += 1
            # Converged: the accepted step changed the cost by < tol (relative) or the
            # damping has grown so large that no progress is possible.
            if full and better.all():  # the common case: take the new state as a whole
                gain = (cost_prev - cn) / np.maximum(cost_prev, 1e-12)
                R, beta, trans, r, cost, st = Rn, bn, tn, rn, cn, stn
                lam = np.maximum(lam / 3.0, 1e-7)
                active = (gain >= self.tol) & (iters < max_it)
            else:
                gain = np.where(better, (cost_prev - cn) / np.maximum(cost_prev, 1e-12), 1.0)
                ok = a[better]
                R[ok], beta[ok], trans[ok] = Rn[better], bn[better], tn[better]
                r[ok], cost[ok] = rn[better], cn[better]
                st.put(ok, stn.take(better))
                st.R = R
                lam[ok] = np.maximum(lam[ok] / 3.0, 1e-7)
                lam[a[~better]] *= 10.0
                done = np.zeros(H, bool)
                done[a] = (better & (gain < self.tol)) | (~better & (lam[a] > 1e4))
                active &= ~done & (iters < max_it)
            # Linearise again only where another step follows an accepted one.
            nxt = better & active[a]
            if nxt.all():
                JtJ[sub], g[sub] = self._normal(m, stn, tn, rn, uva, K)
            elif nxt.any():
                i = a[nxt]
                JtJ[i], g[i] = self._normal(m, stn.take(nxt), tn[nxt], rn[nxt],
                                            None if uva is None else uva[nxt], K)
        pts = st.pts
        cam = pts + trans[:, None]
        verts = m.vertices(R, beta, st) + trans[:, None] if with_vertices else None
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
