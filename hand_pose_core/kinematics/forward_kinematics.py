"""Differentiable forward kinematics over the canonical 21-joint hand skeleton.

The parameterisation follows the bone-length + per-joint rotation layer used for hand-pose
diffusion (arXiv 2308.09523): a hand is ``(bone_lengths[20], local_rot[21], root_pos[3])``.

Convention (documented so that rotations from different code agree):
    * Rest pose: ``rest_dirs[20, 3]`` are unit bone directions, bone ``k`` going from
      ``PARENTS_21[k+1]`` to joint ``k+1``, all expressed in the root (wrist) frame. They come
      from a template hand given to the constructor; the default is :data:`TEMPLATE_JOINTS_M`,
      a flat open right hand in the x-y plane with the fingers along +y and the thumb towards +x.
    * ``local_rot[..., j]`` is the rotation of joint ``j``'s frame relative to its parent's
      frame (joint 0: the global orientation of the wrist). Global frames compose down the tree:
      ``G[0] = local_rot[0]``, ``G[j] = G[parent(j)] @ local_rot[j]``.
    * The bone ending at joint ``j`` points along ``G[j] @ rest_dirs[j-1]``:
      ``joints[j] = joints[parent(j)] + bone_lengths[j-1] * G[j] @ rest_dirs[j-1]``,
      ``joints[0] = root_pos``. With all rotations = I the output is the template rescaled to the
      given bone lengths.
    * Rotations act on column vectors; 6D rotations are the first two columns (see
      :mod:`hand_pose_core.kinematics.rotations`).

:meth:`ForwardKinematics21.inverse_kinematics` is the analytic inverse: the root rotation is the
best rigid alignment (Kabsch) of the 5 template palm bones to the observed ones, and every other
joint gets the *swing* (minimal) rotation taking its rest direction to the observed bone
direction (no twist), so ``FK(IK(joints)) == joints`` up to float rounding.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hand_pose_core.kinematics.rotations import (
    project_to_so3,
    rot6d_to_matrix,
    rotation_between_vectors,
)
from hand_pose_core.skeleton import NUM_BONES, NUM_JOINTS, PARENTS_21

# A flat open right hand (metres), canonical joint order, wrist at the origin, palm in the x-y
# plane, fingers along +y, thumb towards +x. Sizes are those of an average adult hand; only the
# bone directions are used by the FK layer.
TEMPLATE_JOINTS_M = np.array(
    [
        [0.000, 0.000, 0.0],
        [0.025, 0.025, 0.0], [0.045, 0.050, 0.0], [0.060, 0.075, 0.0], [0.072, 0.097, 0.0],
        [0.022, 0.090, 0.0], [0.025, 0.130, 0.0], [0.027, 0.155, 0.0], [0.028, 0.178, 0.0],
        [0.000, 0.092, 0.0], [0.000, 0.136, 0.0], [0.000, 0.163, 0.0], [0.000, 0.188, 0.0],
        [-0.020, 0.086, 0.0], [-0.023, 0.125, 0.0], [-0.025, 0.150, 0.0], [-0.026, 0.172, 0.0],
        [-0.038, 0.076, 0.0], [-0.044, 0.106, 0.0], [-0.047, 0.124, 0.0], [-0.050, 0.143, 0.0],
    ],
    dtype=np.float64,
)

_PARENTS = torch.tensor(PARENTS_21[1:], dtype=torch.long)  # parent of joint k+1, k = bone id


def _levels() -> list[list[int]]:
    """Joints 1..20 grouped by depth in the tree, so each level is one batched matmul."""
    depth = [0] * NUM_JOINTS
    for j in range(1, NUM_JOINTS):
        depth[j] = depth[PARENTS_21[j]] + 1
    return [[j for j in range(NUM_JOINTS) if depth[j] == d] for d in range(1, max(depth) + 1)]


_LEVELS = _levels()
_WRIST_CHILDREN = _LEVELS[0]


def _as_tensor(x, name: str) -> tuple[torch.Tensor, bool]:
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x), True
    if torch.is_tensor(x):
        return x, False
    raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")


def bone_vectors(joints: torch.Tensor) -> torch.Tensor:
    """``joints[..., 21, 3]`` -> bone vectors child - parent ``[..., 20, 3]``."""
    if joints.shape[-2:] != (NUM_JOINTS, 3):
        raise ValueError(f"joints must have shape [..., 21, 3], got {tuple(joints.shape)}")
    return joints[..., 1:, :] - joints[..., _PARENTS.tolist(), :]


def bone_lengths(joints):
    """Bone lengths ``[..., 20]`` (same units as the joints) of ``joints[..., 21, 3]``.

    Bone ``k`` ends at joint ``k + 1``. Accepts numpy (returns numpy) or torch.
    """
    t, was_np = _as_tensor(joints, "joints")
    out = bone_vectors(t).norm(dim=-1)
    return out.numpy() if was_np else out


def rest_dirs_from_template(template_joints) -> torch.Tensor:
    """Unit rest directions ``[20, 3]`` (float64) from template joints ``[21, 3]``."""
    t, _ = _as_tensor(template_joints, "template_joints")
    t = t.to(torch.float64)
    if t.shape != (NUM_JOINTS, 3):
        raise ValueError(f"template_joints must have shape [21, 3], got {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError("template_joints contain NaN or inf")
    v = bone_vectors(t)
    n = v.norm(dim=-1)
    if (n < 1e-9).any():
        bad = (torch.nonzero(n < 1e-9).flatten() + 1).tolist()
        raise ValueError(f"template has zero-length bones ending at joints {bad}")
    return v / n[:, None]


class ForwardKinematics21(nn.Module):
    """Batched, differentiable FK: ``(bone_lengths, local_rot, root_pos) -> joints``.

    Args:
        template_joints: ``[21, 3]`` rest hand giving the bone rest directions (see module
            docstring); default :data:`TEMPLATE_JOINTS_M`.

    Shapes (``...`` = any leading batch dims, broadcast between the inputs):
        bone_lengths ``[..., 20]``; local_rot ``[..., 21, 3, 3]`` or 6D ``[..., 21, 6]``;
        root_pos ``[..., 3]`` (optional, default origin) -> joints ``[..., 21, 3]``.
    """

    def __init__(self, template_joints=None):
        super().__init__()
        if template_joints is None:
            template_joints = TEMPLATE_JOINTS_M
        # float64 so double-precision callers get exact round trips; cast per call.
        self.register_buffer("rest_dirs", rest_dirs_from_template(template_joints))
        self._levels = _LEVELS

    def _rest(self, dtype: torch.dtype) -> torch.Tensor:
        # re-normalise after a dtype cast so the bone lengths stay exact
        rest = self.rest_dirs.to(dtype)
        return rest / rest.norm(dim=-1, keepdim=True)

    def forward(
        self,
        bone_lengths: torch.Tensor,
        local_rot: torch.Tensor,
        root_pos: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if local_rot.shape[-2:] == (NUM_JOINTS, 6):
            local_rot = rot6d_to_matrix(local_rot)
        elif local_rot.shape[-3:] != (NUM_JOINTS, 3, 3):
            raise ValueError(
                f"local_rot must be [..., 21, 3, 3] or [..., 21, 6], got {tuple(local_rot.shape)}"
            )
        if bone_lengths.shape[-1:] != (NUM_BONES,):
            raise ValueError(f"bone_lengths must be [..., 20], got {tuple(bone_lengths.shape)}")
        dtype = local_rot.dtype
        if root_pos is None:
            root_pos = torch.zeros(3, dtype=dtype, device=local_rot.device)
        elif root_pos.shape[-1:] != (3,):
            raise ValueError(f"root_pos must be [..., 3], got {tuple(root_pos.shape)}")
        batch = torch.broadcast_shapes(
            bone_lengths.shape[:-1], local_rot.shape[:-3], root_pos.shape[:-1]
        )
        local_rot = local_rot.expand(batch + local_rot.shape[-3:])
        # bone k offset in its own (joint k+1) frame: length * rest direction
        offsets = bone_lengths.to(dtype)[..., None] * self._rest(dtype)  # [..., 20, 3]
        offsets = offsets.expand(batch + offsets.shape[-2:])

        glob: list[torch.Tensor | None] = [None] * NUM_JOINTS
        pos: list[torch.Tensor | None] = [None] * NUM_JOINTS
        glob[0] = local_rot[..., 0, :, :]
        pos[0] = root_pos.to(dtype).expand(batch + (3,))
        for level in self._levels:
            parents = [PARENTS_21[j] for j in level]
            g_par = torch.stack([glob[p] for p in parents], dim=-3)
            p_par = torch.stack([pos[p] for p in parents], dim=-2)
            g = g_par @ local_rot[..., level, :, :]
            bone = [j - 1 for j in level]
            p = p_par + (g @ offsets[..., bone, :, None])[..., 0]
            for i, j in enumerate(level):
                glob[j] = g[..., i, :, :]
                pos[j] = p[..., i, :]
        return torch.stack(pos, dim=-2)

    @torch.no_grad()
    def rest_pose(self, bone_lengths: torch.Tensor) -> torch.Tensor:
        """Joints ``[..., 21, 3]`` with all rotations identity (the template at these lengths)."""
        eye = torch.eye(3, dtype=bone_lengths.dtype, device=bone_lengths.device)
        return self(bone_lengths, eye.expand(bone_lengths.shape[:-1] + (NUM_JOINTS, 3, 3)))

    def inverse_kinematics(self, joints):
        """Analytic IK: ``joints[..., 21, 3]`` -> ``(bone_lengths[..., 20],
        local_rot[..., 21, 3, 3], root_pos[..., 3])`` with ``self(*ik) == joints``.

        Root rotation: Kabsch alignment of the 5 template wrist->finger-base directions to the
        observed ones. Other joints: swing-only rotation (no twist about the bone). Zero-length
        bones get the identity. Differentiable except where a bone points exactly opposite to
        its rest direction (a 180 degree swing has no unique axis).
        """
        j, was_np = _as_tensor(joints, "joints")
        if j.shape[-2:] != (NUM_JOINTS, 3):
            raise ValueError(f"joints must have shape [..., 21, 3], got {tuple(j.shape)}")
        if not torch.is_floating_point(j):
            j = j.to(torch.get_default_dtype())
        if not torch.isfinite(j).all():
            raise ValueError("joints contain NaN or inf")
        rest = self._rest(j.dtype)
        vec = bone_vectors(j)  # [..., 20, 3]
        lengths = vec.norm(dim=-1)
        eps = torch.finfo(j.dtype).eps
        dirs = vec / lengths.clamp_min(eps)[..., None]

        # Root: nearest rotation to sum_i d_i r_i^T over the wrist bones (Kabsch).
        wb = [c - 1 for c in _WRIST_CHILDREN]
        M = (dirs[..., wb, :, None] @ rest[wb][:, None, :]).sum(dim=-3)
        root_rot = project_to_so3(M)

        glob: list[torch.Tensor | None] = [None] * NUM_JOINTS
        loc: list[torch.Tensor | None] = [None] * NUM_JOINTS
        glob[0] = loc[0] = root_rot
        for level in self._levels:
            parents = [PARENTS_21[c] for c in level]
            g_par = torch.stack([glob[p] for p in parents], dim=-3)  # [..., n, 3, 3]
            bone = [c - 1 for c in level]
            # observed direction in the parent's frame, swung from the rest direction
            d_local = (g_par.transpose(-1, -2) @ dirs[..., bone, :, None])[..., 0]
            swing = rotation_between_vectors(rest[bone].expand_as(d_local), d_local)
            g = g_par @ swing
            for i, c in enumerate(level):
                loc[c] = swing[..., i, :, :]
                glob[c] = g[..., i, :, :]
        local_rot = torch.stack(loc, dim=-3)
        root_pos = j[..., 0, :]
        if was_np:
            return lengths.numpy(), local_rot.numpy(), root_pos.numpy()
        return lengths, local_rot, root_pos


def inverse_kinematics(joints, template_joints=None):
    """Module-level convenience for :meth:`ForwardKinematics21.inverse_kinematics`."""
    return ForwardKinematics21(template_joints).inverse_kinematics(joints)


__all__ = [
    "TEMPLATE_JOINTS_M", "ForwardKinematics21", "bone_lengths", "bone_vectors",
    "inverse_kinematics", "rest_dirs_from_template",
]
