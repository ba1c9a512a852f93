"""Chumpy-free MANO layer (PyTorch), written from the MANO / SMPL papers.

Romero, Tzionas, Black, "Embodied Hands", SIGGRAPH Asia 2017 (MANO) and Loper et al., "SMPL",
SIGGRAPH Asia 2015 (linear blend skinning with shape and pose corrective blend shapes):

1. shaped template   ``T(b) = v_template + shapedirs . betas``
2. rest joints       ``J = J_regressor @ T(b)``
3. pose correctives  ``T_p = T(b) + posedirs . vec(R_k - I)`` over the 15 non-root joints
4. kinematic chain   ``G_k = G_parent(k) @ [R_k | J_k - J_parent(k)]`` (root: ``[R_0 | J_0]``)
5. skinning          ``v' = sum_k w_vk (G_k @ [T_p(v) - J_k; 1])``

Output is in millimetres (like manopth) with 21 joints in the canonical order
(0 wrist; 1-4 thumb CMC, MCP, IP, tip; 5-8 index; 9-12 middle; 13-16 ring; 17-20 pinky); the
five fingertips are mesh vertices (see :data:`TIP_VERTEX_PRESETS`).
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from hand_pose_core.kinematics.rotations import (
    axis_angle_to_matrix,
    project_to_so3,
    rot6d_to_matrix,
)
from hand_pose_core.mano.io import MANO_PARENTS, load_mano, resolve_mano_path, validate_mano

__all__ = ["ManoLayer", "TIP_VERTEX_PRESETS", "MANO_TO_CANONICAL", "resolve_tip_vertex_ids"]

# Fingertip vertex ids (thumb, index, middle, ring, pinky). They differ between libraries;
# 'manopth' is the default because its users expect identical joints from this layer.
TIP_VERTEX_PRESETS: dict[str, dict[str, tuple[int, ...]]] = {
    "manopth": {"right": (745, 317, 444, 556, 673), "left": (745, 317, 445, 556, 673)},
    "smplx": {"right": (744, 320, 443, 554, 671), "left": (744, 320, 443, 554, 671)},
    "freihand": {"right": (744, 320, 443, 555, 672), "left": (744, 320, 443, 555, 672)},
}

# Index into cat([16 MANO joints, 5 tips (thumb, index, middle, ring, pinky)]) giving the
# canonical 21-joint order.
MANO_TO_CANONICAL = (0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20)

# Joints by depth in the tree; all five fingers have three levels below the wrist.
_LEVELS = ([1, 4, 7, 10, 13], [2, 5, 8, 11, 14], [3, 6, 9, 12, 15])
_LEVEL_ORDER = [0] + [j for level in _LEVELS for j in level]
_LEVEL_INVERSE = [_LEVEL_ORDER.index(j) for j in range(16)]
assert all(MANO_PARENTS[c] == p for a, b in zip(([0] * 5,) + _LEVELS[:-1], _LEVELS)
           for p, c in zip(a, b))

_ROT_MODES = ("axisang", "rotmat", "rot6d")
_ROT_SIZE = {"axisang": 3, "rot6d": 6, "rotmat": 9}


def resolve_tip_vertex_ids(tip_vertex_ids: str | Sequence[int], side: str) -> tuple[int, ...]:
    """Resolve a preset name or an explicit list of 5 vertex ids."""
    if isinstance(tip_vertex_ids, str):
        if tip_vertex_ids not in TIP_VERTEX_PRESETS:
            raise ValueError(
                f"unknown tip_vertex_ids preset {tip_vertex_ids!r}; "
                f"choose one of {sorted(TIP_VERTEX_PRESETS)} or give 5 vertex ids"
            )
        return TIP_VERTEX_PRESETS[tip_vertex_ids][side]
    ids = tuple(int(i) for i in tip_vertex_ids)
    if len(ids) != 5 or min(ids) < 0 or max(ids) >= 778:
        raise ValueError(f"tip_vertex_ids must be 5 vertex ids in [0, 778), got {ids}")
    return ids


class ManoLayer(nn.Module):
    """MANO hand model as a differentiable layer with manopth's interface.

    Args:
        center_idx: if not None and no ``trans`` is given, verts and joints are translated so
            that canonical joint ``center_idx`` is at the origin (manopth's rule: a given
            ``trans`` replaces the centring; see ``forward``).
        flat_hand_mean: if False, MANO's ``hands_mean`` is added to the 45 finger axis-angle
            parameters (so zero input = MANO's mean, slightly curled hand); if True, zero input
            is the flat template. Only applies to axis-angle finger input.
        ncomps: number of PCA components used when ``use_pca``.
        side: 'right' or 'left'.
        mano_root: folder with ``MANO_RIGHT/LEFT.pkl|.npz`` or a model file.
        use_pca: finger pose given as ``ncomps`` PCA coefficients (over ``hands_components``)
            instead of 45 axis-angle values.
        root_rot_mode: 'axisang' (3 values), 'rot6d' (6) or 'rotmat' (9 / 3x3).
        joint_rot_mode: 'axisang' or 'rotmat' (15 matrices; requires ``use_pca=False``).
        robust_rot: project matrix input to the nearest rotation (SVD) before use.
        tip_vertex_ids: 'manopth' (default; right (745, 317, 444, 556, 673), left uses 445 for
            the middle tip), 'smplx' (744, 320, 443, 554, 671), 'freihand'
            (744, 320, 443, 555, 672), or 5 explicit vertex ids (thumb, index, middle, ring,
            pinky).
        model: an already loaded model dict (e.g. :func:`synthetic_mano`); overrides mano_root.
        dtype: dtype of the stored model buffers (float32 like manopth; float64 keeps the
            file's full precision). ``.double()`` on a float32 layer works too but keeps the
            float32-rounded model values (differences ~1e-5 mm).

    ``forward(pose_coeffs, betas=None, trans=None) -> (verts [B,778,3], joints [B,21,3])`` in
    millimetres, with manopth's semantics for ``trans`` and ``center_idx``:

    * ``trans [B, 3]`` is in **metres**; it is added to the hand (in metres, MANO's own frame
      origin, not re-centred) *before* the conversion to millimetres;
    * ``center_idx`` is applied only when no ``trans`` is given. As in manopth, a ``trans`` that
      is all zeros (over the whole batch) counts as "not given", so the centring applies then
      (the zeros are still added, so a zero-initialised ``trans`` gets gradients).

    :meth:`forward_trans_mm` keeps the other convenient convention (centre on ``center_idx`` if
    set, *then* add a translation given in millimetres). ``pose_coeffs`` layouts (B = batch):

    * axisang root + PCA: ``[B, 3 + ncomps]``; axisang root + full pose: ``[B, 48]``;
    * rot6d root: 6 root values instead of 3;
    * rotmat root and joints: ``[B, 16, 3, 3]`` or ``[B, 144]``; rotmat joints with an
      axisang/rot6d root: ``[B, 3|6 + 135]``.

    ``betas [B, 10]`` (default zeros), ``trans [B, 3]`` in metres. The computation
    follows the dtype of ``pose_coeffs`` (float32/float64) and the device of the buffers.
    """

    def __init__(
        self,
        center_idx: int | None = None,
        flat_hand_mean: bool = True,
        ncomps: int = 6,
        side: str = "right",
        mano_root: str | os.PathLike = "mano/models",
        use_pca: bool = True,
        root_rot_mode: str = "axisang",
        joint_rot_mode: str = "axisang",
        robust_rot: bool = False,
        tip_vertex_ids: str | Sequence[int] = "manopth",
        model: dict[str, Any] | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        side = str(side).lower()
        if side not in ("right", "left"):
            raise ValueError(f"side must be 'right' or 'left', got {side!r}")
        if root_rot_mode not in _ROT_MODES:
            raise ValueError(f"root_rot_mode must be one of {_ROT_MODES}, got {root_rot_mode!r}")
        if joint_rot_mode not in ("axisang", "rotmat"):
            raise ValueError(
                f"joint_rot_mode must be 'axisang' or 'rotmat', got {joint_rot_mode!r}"
            )
        if joint_rot_mode == "rotmat" and use_pca:
            raise ValueError("joint_rot_mode='rotmat' needs use_pca=False")
        if use_pca and not 1 <= int(ncomps) <= 45:
            raise ValueError(f"ncomps must be in [1, 45], got {ncomps}")
        if center_idx is not None and not 0 <= int(center_idx) < 21:
            raise ValueError(f"center_idx must be in [0, 21), got {center_idx}")
        if model is None:
            model = load_mano(resolve_mano_path(mano_root, side), side=side)
        else:
            model = validate_mano(model, "model")
            if model.get("side", side) != side:
                raise ValueError(f"model is a {model['side']} hand but side={side!r}")

        self.side = side
        self.center_idx = None if center_idx is None else int(center_idx)
        self.flat_hand_mean = bool(flat_hand_mean)
        self.ncomps = int(ncomps) if use_pca else 45
        self.use_pca = bool(use_pca)
        self.root_rot_mode = root_rot_mode
        self.joint_rot_mode = joint_rot_mode
        self.robust_rot = bool(robust_rot)
        self.tip_ids = resolve_tip_vertex_ids(tip_vertex_ids, side)
        self.parents = MANO_PARENTS

        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        f32 = dtype
        v_template = torch.as_tensor(model["v_template"], dtype=f32)
        shapedirs = torch.as_tensor(model["shapedirs"], dtype=f32)  # [778, 3, 10]
        J_reg = torch.as_tensor(model["J_regressor"], dtype=f32)
        self.register_buffer("v_template", v_template)
        self.register_buffer("shapedirs", shapedirs)
        self.register_buffer("posedirs", torch.as_tensor(model["posedirs"], dtype=f32)
                             .reshape(778 * 3, 135).T.contiguous())  # [135, 2334]
        self.register_buffer("J_regressor", J_reg)
        self.register_buffer("weights", torch.as_tensor(model["weights"], dtype=f32))
        self.register_buffer("faces", torch.as_tensor(model["f"], dtype=torch.long))
        comps = torch.as_tensor(model["hands_components"], dtype=f32)
        self.register_buffer("hands_components", comps[: self.ncomps].contiguous())
        self.register_buffer("hands_mean", torch.as_tensor(model["hands_mean"], dtype=f32))
        # Pre-regressed joints for the joints-only path: J = J_template + J_shapedirs . betas.
        self.register_buffer("J_template", J_reg @ v_template)
        self.register_buffer("J_shapedirs", torch.einsum("jv,vcb->jcb", J_reg, shapedirs))
        tips = list(self.tip_ids)
        self.register_buffer("tip_template", v_template[tips].clone())
        self.register_buffer("tip_shapedirs", shapedirs[tips].clone())
        self.register_buffer("tip_posedirs", torch.as_tensor(model["posedirs"], dtype=f32)[tips]
                             .reshape(15, 135).T.contiguous())  # [135, 15]
        self.register_buffer("tip_weights", torch.as_tensor(model["weights"], dtype=f32)[tips])
        self.register_buffer("canonical_index", torch.as_tensor(MANO_TO_CANONICAL))

    # ----------------------------------------------------------------- input parsing
    def pose_size(self) -> int:
        """Number of values per sample in flat ``pose_coeffs``."""
        root = _ROT_SIZE[self.root_rot_mode]
        if self.joint_rot_mode == "rotmat":
            return root + 135
        return root + (self.ncomps if self.use_pca else 45)

    def _buf(self, name: str, dtype: torch.dtype) -> torch.Tensor:
        b = getattr(self, name)
        return b if b.dtype == dtype else b.to(dtype)

    def pose_to_rotmats(self, pose_coeffs: torch.Tensor) -> torch.Tensor:
        """Parse ``pose_coeffs`` into 16 rotation matrices ``[B, 16, 3, 3]`` (MANO order)."""
        if not torch.is_tensor(pose_coeffs):
            raise TypeError(f"pose_coeffs must be a torch.Tensor, got {type(pose_coeffs).__name__}")
        if not pose_coeffs.is_floating_point():
            raise TypeError(f"pose_coeffs must be floating point, got {pose_coeffs.dtype}")
        p = pose_coeffs
        B = p.shape[0] if p.dim() >= 1 else 0
        if self.root_rot_mode == "rotmat" and self.joint_rot_mode == "rotmat" and p.dim() == 4:
            if p.shape[1:] != (16, 3, 3):
                raise ValueError(f"rotmat pose must be [B, 16, 3, 3], got {tuple(p.shape)}")
            p = p.reshape(B, 144)
        if p.dim() != 2 or p.shape[1] != self.pose_size():
            raise ValueError(
                f"pose_coeffs must have shape [B, {self.pose_size()}] for root_rot_mode="
                f"{self.root_rot_mode!r}, joint_rot_mode={self.joint_rot_mode!r}, "
                f"use_pca={self.use_pca}, ncomps={self.ncomps}; got {tuple(pose_coeffs.shape)}"
            )
        dtype = p.dtype
        nr = _ROT_SIZE[self.root_rot_mode]
        root, rest = p[:, :nr], p[:, nr:]
        if self.root_rot_mode == "axisang":
            R0 = axis_angle_to_matrix(root)
        elif self.root_rot_mode == "rot6d":
            R0 = rot6d_to_matrix(root)
        else:
            R0 = root.reshape(B, 3, 3)
            if self.robust_rot:
                R0 = project_to_so3(R0)
        if self.joint_rot_mode == "rotmat":
            Rj = rest.reshape(B, 15, 3, 3)
            if self.robust_rot:
                Rj = project_to_so3(Rj)
        else:
            if self.use_pca:
                rest = rest @ self._buf("hands_components", dtype)
            if not self.flat_hand_mean:
                rest = rest + self._buf("hands_mean", dtype)
            Rj = axis_angle_to_matrix(rest.reshape(B, 15, 3))
        return torch.cat([R0[:, None], Rj], dim=1)

    def _check_extra(self, x, name: str, B: int, n: int, dtype, device) -> torch.Tensor | None:
        if x is None:
            return None
        if not torch.is_tensor(x):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() == 1 and B == 1:
            x = x[None]
        if x.shape != (B, n):
            raise ValueError(f"{name} must have shape [{B}, {n}], got {tuple(x.shape)}")
        return x.to(dtype=dtype, device=device)

    # ----------------------------------------------------------------- kinematics
    def _chain(self, R: torch.Tensor, J: torch.Tensor) -> torch.Tensor:
        """World transforms ``[B, 16, 3, 4]`` of the joints from local rotations and rest joints.

        ``G_k = G_parent(k) @ [R_k | J_k - J_parent(k)]``, evaluated one tree level at a time
        (MANO's five fingers have the same depth, so three batched steps cover all joints).
        """
        W = R[:, 0]
        t = J[:, 0]
        Ws, ts = [W[:, None]], [t[:, None]]
        Wp, tp, Jp = W[:, None], t[:, None], J[:, :1]
        for level in _LEVELS:
            Jl = J[:, level]
            Wl = Wp @ R[:, level]
            tl = tp + (Wp @ (Jl - Jp)[..., None])[..., 0]
            Ws.append(Wl)
            ts.append(tl)
            Wp, tp, Jp = Wl, tl, Jl
        order = _LEVEL_INVERSE
        G = torch.cat([torch.cat(Ws, 1), torch.cat(ts, 1)[..., None]], -1)
        return G[:, order]

    @staticmethod
    def _skin_transforms(G: torch.Tensor, J: torch.Tensor) -> torch.Tensor:
        """``A_k = G_k @ [I | -J_k]``: maps rest-pose points to posed points per joint."""
        t = G[..., 3] - (G[..., :3] @ J[..., None])[..., 0]
        return torch.cat([G[..., :3], t[..., None]], -1)

    @staticmethod
    def _trans_given(trans: torch.Tensor | None) -> bool:
        """manopth's rule: ``trans`` counts as given unless it is None or all zeros."""
        return trans is not None and bool(torch.any(trans != 0))

    def _place_m(self, verts_m, joints_m, trans_m):
        """manopth semantics, in metres: centre on ``center_idx`` unless ``trans`` is given,
        then add ``trans``. An all-zero ``trans`` counts as not given for the centring (as in
        manopth) but is still added (a no-op on the values) so that it receives gradients when
        an optimiser starts from zero."""
        if self.center_idx is not None and not self._trans_given(trans_m):
            c = joints_m[:, self.center_idx : self.center_idx + 1]
            joints_m = joints_m - c
            if verts_m is not None:
                verts_m = verts_m - c
        if trans_m is not None:
            joints_m = joints_m + trans_m[:, None]
            if verts_m is not None:
                verts_m = verts_m + trans_m[:, None]
        return verts_m, joints_m

    def _posed_m(self, R: torch.Tensor, betas):
        """Posed vertices and canonical joints in metres (MANO frame, no translation)."""
        B, dtype, device = R.shape[0], R.dtype, R.device
        v = self._buf("v_template", dtype).expand(B, 778, 3)
        if betas is not None:
            v = v + torch.einsum("vcb,nb->nvc", self._buf("shapedirs", dtype), betas)
        J = torch.einsum("jv,nvc->njc", self._buf("J_regressor", dtype), v)
        eye = torch.eye(3, dtype=dtype, device=device)
        pose_feat = (R[:, 1:] - eye).reshape(B, 135)
        v_posed = v + (pose_feat @ self._buf("posedirs", dtype)).reshape(B, 778, 3)
        G = self._chain(R, J)
        A = self._skin_transforms(G, J)  # [B, 16, 3, 4]
        T = torch.einsum("vj,njcd->nvcd", self._buf("weights", dtype), A)
        verts = (T[..., :3] @ v_posed[..., None])[..., 0] + T[..., 3]
        tips = verts[:, list(self.tip_ids)]
        joints = torch.cat([G[..., 3], tips], 1)[:, self.canonical_index]
        return verts, joints

    def forward(
        self,
        pose_coeffs: torch.Tensor,
        betas: torch.Tensor | None = None,
        trans: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(verts [B,778,3], joints [B,21,3])`` in millimetres; ``trans`` in **metres**.

        manopth semantics: ``trans`` is added in metres before the conversion to millimetres;
        ``center_idx`` applies only when ``trans`` is None or all zeros.
        """
        R = self.pose_to_rotmats(pose_coeffs)
        B, dtype, device = R.shape[0], R.dtype, R.device
        betas = self._check_extra(betas, "betas", B, 10, dtype, device)
        trans = self._check_extra(trans, "trans", B, 3, dtype, device)
        verts, joints = self._posed_m(R, betas)
        verts, joints = self._place_m(verts, joints, trans)
        return verts * 1000.0, joints * 1000.0

    def forward_trans_mm(
        self,
        pose_coeffs: torch.Tensor,
        betas: torch.Tensor | None = None,
        trans_mm: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Millimetre convenience (not manopth's convention): centre on ``center_idx`` if set,
        then add ``trans_mm [B, 3]`` given in **millimetres**. Returns ``(verts, joints)`` mm."""
        R = self.pose_to_rotmats(pose_coeffs)
        B, dtype, device = R.shape[0], R.dtype, R.device
        betas = self._check_extra(betas, "betas", B, 10, dtype, device)
        trans_mm = self._check_extra(trans_mm, "trans_mm", B, 3, dtype, device)
        verts, joints = self._posed_m(R, betas)
        verts, joints = self._place_m(verts, joints, None)
        verts, joints = verts * 1000.0, joints * 1000.0
        if trans_mm is not None:
            verts = verts + trans_mm[:, None]
            joints = joints + trans_mm[:, None]
        return verts, joints

    def forward_joints(
        self,
        pose_coeffs: torch.Tensor,
        betas: torch.Tensor | None = None,
        trans: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Joints only ``[B, 21, 3]`` mm, identical to ``forward(...)[1]`` but cheap.

        Same ``trans`` (metres) / ``center_idx`` semantics as :meth:`forward`. Uses
        pre-regressed joints (``J_regressor @ shapedirs``) and skins only the 5 fingertip
        vertices, so no 778-vertex work is done.
        """
        R = self.pose_to_rotmats(pose_coeffs)
        return self.joints_from_rotmats(R, betas, trans)

    def joints_from_rotmats(self, R: torch.Tensor, betas=None, trans=None) -> torch.Tensor:
        """Joints ``[B, 21, 3]`` (mm) from rotation matrices ``[B, 16, 3, 3]`` (MANO order);
        ``trans`` in metres with the semantics of :meth:`forward`."""
        if R.dim() != 4 or R.shape[1:] != (16, 3, 3):
            raise ValueError(f"R must be [B, 16, 3, 3], got {tuple(R.shape)}")
        B, dtype, device = R.shape[0], R.dtype, R.device
        betas = self._check_extra(betas, "betas", B, 10, dtype, device)
        trans = self._check_extra(trans, "trans", B, 3, dtype, device)
        J = self._buf("J_template", dtype).expand(B, 16, 3)
        tip = self._buf("tip_template", dtype).expand(B, 5, 3)
        if betas is not None:
            J = J + torch.einsum("jcb,nb->njc", self._buf("J_shapedirs", dtype), betas)
            tip = tip + torch.einsum("vcb,nb->nvc", self._buf("tip_shapedirs", dtype), betas)
        eye = torch.eye(3, dtype=dtype, device=device)
        pose_feat = (R[:, 1:] - eye).reshape(B, 135)
        tip = tip + (pose_feat @ self._buf("tip_posedirs", dtype)).reshape(B, 5, 3)
        G = self._chain(R, J)
        A = self._skin_transforms(G, J)
        T = torch.einsum("vj,njcd->nvcd", self._buf("tip_weights", dtype), A)
        tips = (T[..., :3] @ tip[..., None])[..., 0] + T[..., 3]
        joints = torch.cat([G[..., 3], tips], 1)[:, self.canonical_index]
        return self._place_m(None, joints, trans)[1] * 1000.0

    def extra_repr(self) -> str:
        return (
            f"side={self.side!r}, use_pca={self.use_pca}, ncomps={self.ncomps}, "
            f"flat_hand_mean={self.flat_hand_mean}, center_idx={self.center_idx}, "
            f"root_rot_mode={self.root_rot_mode!r}, joint_rot_mode={self.joint_rot_mode!r}, "
            f"tip_ids={self.tip_ids}"
        )

    @property
    def faces_np(self) -> np.ndarray:
        """Triangles as an int32 numpy array ``[1538, 3]``."""
        return self.faces.detach().cpu().numpy().astype(np.int32)
