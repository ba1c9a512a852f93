"""Training losses: pure functions of tensors (no modules, no state).

Sections: one per model family. Weights/masks are explicit arguments; every masked mean divides
by the number of counted elements (at least 1), so an all-masked batch gives 0, not NaN.
"""
from __future__ import annotations

import torch

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
