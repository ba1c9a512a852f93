"""Training losses: pure functions of tensors (no module state, no side effects).

Conventions: ``weight`` arguments are per-sample (B,) or per-joint (B, J) non-negative tensors
(bool is fine); a weighted mean divides by the total weight (clamped to 1e-6 below, so an
all-zero weight gives a zero loss that still has a graph). Pixels, metres and rotations are
in the units of their inputs.

Sections: generic helpers; Zimmermann & Brox (score maps, segmentation, canonical coordinates,
viewpoint); MANO regressor (2D / 3D joints, vertices, pose and shape regularisers); diffusion
pose and S2HAND self-supervision (at the end). Other model families add their own sections.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


# ----------------------------------------------------------------------------- helpers
def weighted_mean(values: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of ``values`` (B, ...) weighted by ``weight`` broadcast from the left ((B,) or
    (B, J) for values (B, J, ...)). Without a weight: the plain mean."""
    if weight is None:
        return values.mean()
    w = weight.to(values.dtype)
    while w.dim() < values.dim():
        w = w.unsqueeze(-1)
    w = w.expand_as(values)
    return (values * w).sum() / w.sum().clamp_min(1e-6)


# ----------------------------------------------------------------------------- Zimmermann & Brox
def gaussian_score_maps(uv_map: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """Target score maps (B, J, size, size): a Gaussian of std ``sigma`` (map pixels) with peak 1
    at each joint ``uv_map`` (B, J, 2) (map pixels, centres at integers)."""
    r = torch.arange(size, dtype=uv_map.dtype, device=uv_map.device)
    dx = r[None, None, None, :] - uv_map[..., 0, None, None]
    dy = r[None, None, :, None] - uv_map[..., 1, None, None]
    return torch.exp(-(dx * dx + dy * dy) / (2.0 * sigma * sigma))


def score_map_loss(pred_maps: list[torch.Tensor] | torch.Tensor, target: torch.Tensor,
                   weight: torch.Tensor | None = None) -> torch.Tensor:
    """L2 between every stage's score maps (B, J, h, w) and the target maps, averaged over the
    pixels, the (weighted) joints and the stages: intermediate supervision."""
    if torch.is_tensor(pred_maps):
        pred_maps = [pred_maps]
    losses = [weighted_mean((p - target).square().mean((-1, -2)), weight) for p in pred_maps]
    return torch.stack(losses).mean()


def segmentation_loss(logits: torch.Tensor, mask: torch.Tensor,
                      weight: torch.Tensor | None = None) -> torch.Tensor:
    """Per-pixel cross-entropy of 2-class logits (B, 2, H, W) against a hand mask (B, H, W)
    (1 hand, 0 background); ``weight`` (B,) selects the samples that have a mask."""
    ce = F.cross_entropy(logits, (mask > 0.5).long(), reduction="none").mean((-1, -2))
    return weighted_mean(ce, weight)


def canonical_coords_loss(pred: torch.Tensor, target: torch.Tensor,
                          weight: torch.Tensor | None = None) -> torch.Tensor:
    """Squared distance between canonical coordinates (B, 21, 3), mean over joints and samples."""
    return weighted_mean((pred - target).square().sum(-1), weight)


def viewpoint_loss(pred_R: torch.Tensor, target_R: torch.Tensor,
                   weight: torch.Tensor | None = None) -> torch.Tensor:
    """Squared Frobenius distance between rotation matrices (B, 3, 3)."""
    return weighted_mean((pred_R - target_R).square().sum((-1, -2)), weight)


# ----------------------------------------------------------------------------- MANO regressor
def joints_2d_loss(pred_px: torch.Tensor, target_px: torch.Tensor, weight: torch.Tensor | None = None,
                   norm_px: float = 1.0) -> torch.Tensor:
    """Squared 2D distance (B, J, 2) in units of ``norm_px`` (e.g. the crop size), weighted per
    joint (visibility x label confidence)."""
    d = ((pred_px - target_px) / norm_px).square().sum(-1)
    return weighted_mean(d, weight)


def root_relative(points: torch.Tensor, joints: torch.Tensor, root: int = 0) -> torch.Tensor:
    """``points`` (B, N, 3) relative to ``joints[:, root]``."""
    return points - joints[:, root:root + 1]


def joints_3d_loss(pred_rel: torch.Tensor, target_abs: torch.Tensor,
                   weight: torch.Tensor | None = None, root: int = 0) -> torch.Tensor:
    """Squared distance (metres^2) between root-relative predicted joints (B, J, 3) and the
    target joints made root-relative; ``weight`` (B,) or (B, J) (e.g. ``has_3d``)."""
    d = (pred_rel - root_relative(target_abs, target_abs, root)).square().sum(-1)
    return weighted_mean(d, weight)


def vertex_loss(pred_verts_rel: torch.Tensor, target_verts: torch.Tensor, target_joints: torch.Tensor,
                weight: torch.Tensor | None = None, root: int = 0) -> torch.Tensor:
    """Squared distance (metres^2) between root-relative predicted vertices (B, V, 3) and the
    target vertices relative to the target root joint; ``weight`` (B,) = ``has_verts``."""
    d = (pred_verts_rel - root_relative(target_verts, target_joints, root)).square().sum(-1)
    return weighted_mean(d, weight)


def pose_regularizer(pose: torch.Tensor, skip_global: int = 3) -> torch.Tensor:
    """Mean squared MANO pose coefficients without the global rotation (keeps poses near the
    mean pose / PCA origin)."""
    return pose[:, skip_global:].square().sum(-1).mean()


def shape_regularizer(betas: torch.Tensor) -> torch.Tensor:
    """Mean squared MANO shape coefficients (keeps shapes near the mean shape)."""
    return betas.square().sum(-1).mean()


__all__ = [
    "weighted_mean", "gaussian_score_maps", "score_map_loss", "segmentation_loss",
    "canonical_coords_loss", "viewpoint_loss", "joints_2d_loss", "root_relative",
    "joints_3d_loss", "vertex_loss", "pose_regularizer", "shape_regularizer",
]


# =====================================================================================
# Diffusion pose and S2HAND self-supervision (issue 9; owner: diffusion-s2hand)
# =====================================================================================


def masked_mean(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``sum(w * v) / max(sum(w), 1)`` with ``weight`` broadcast to ``values``."""
    w = weight.to(values.dtype).expand_as(values)
    return (values * w).sum() / w.sum().clamp_min(1.0)


def ddpm_loss(pred: torch.Tensor, target: torch.Tensor, joint_weight: torch.Tensor) -> torch.Tensor:
    """Visibility-aware DDPM loss: mean squared error between the network output and its target
    (noise, x0 or v) over the values of the joints that count.

    pred, target: (B, 21 * d) with d values per joint (3 for joints, 6 for 6D rotations).
    joint_weight: (B, 21), 1 for a visible joint of a sample with 3D labels, 0 otherwise.
    """
    B, D = pred.shape
    J = joint_weight.shape[1]
    if D % J:
        raise ValueError(f"pred has {D} values per sample, not a multiple of {J} joints")
    w = joint_weight[:, :, None].expand(B, J, D // J).reshape(B, D)
    return masked_mean((pred - target).pow(2), w)


def bone_length_loss(pred_m: torch.Tensor, target_m: torch.Tensor, bone_weight: torch.Tensor) -> torch.Tensor:
    """Masked L1 between bone lengths (B, 20) in metres; ``bone_weight`` (B, 20) 0/1."""
    return masked_mean((pred_m - target_m).abs(), bone_weight)


def bone_weights_from_joints(joint_weight: torch.Tensor) -> torch.Tensor:
    """(B, 21) joint weights -> (B, 20) bone weights: a bone counts if both its ends count."""
    from hand_pose_core.skeleton import PARENTS_21

    return joint_weight[:, 1:] * joint_weight[:, list(PARENTS_21[1:])]
