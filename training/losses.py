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

import math

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


def rotation_matrix_loss(pred_R: torch.Tensor, target_R: torch.Tensor,
                         weight: torch.Tensor | None = None) -> torch.Tensor:
    """Squared Frobenius distance between rotation matrices ``(B, N, 3, 3)``, averaged over the
    N rotations, then over the batch with ``weight`` (B,) (e.g. ``has_mano``).

    The MANO-parameter loss of HMR-style regressors, on rotation matrices rather than raw
    axis-angles (no 2*pi wrap-around, no scale ambiguity near zero). It supervises each joint's
    articulation directly, independently of how well the global orientation is predicted: with
    joint losses alone, an uncertain global rotation pulls the fingers toward an "average"
    pose that fits any orientation badly.
    """
    d = (pred_R - target_R).square().sum((-1, -2)).mean(-1)
    return weighted_mean(d, weight)


__all__ = [
    "weighted_mean", "gaussian_score_maps", "score_map_loss", "segmentation_loss",
    "canonical_coords_loss", "viewpoint_loss", "joints_2d_loss", "root_relative",
    "joints_3d_loss", "vertex_loss", "pose_regularizer", "shape_regularizer",
    "rotation_matrix_loss",
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


# ----------------------------------------------------------------------------- S2HAND
# Self-supervised MANO training from 2D detections (Chen et al., "Model-based 3D Hand
# Reconstruction via Self-Supervised Learning", CVPR 2021), written from the paper. The 2D
# reprojection and the MANO pose/shape regularisers are joints_2d_loss, pose_regularizer and
# shape_regularizer above.

def bone_length_prior_loss(joints: torch.Tensor, ref_ratios: torch.Tensor, ref_bone: int = 8) -> torch.Tensor:
    """Relative bone lengths: mean |L_b / L_ref - r_b| over the 20 bones of (B, 21, 3) joints,
    ``ref_ratios`` (20,) the same ratios of a reference hand, ``L_ref`` the bone ``ref_bone``
    (default 8: wrist -> middle MCP). Scale-free, so it constrains proportions only."""
    from hand_pose_core.kinematics.forward_kinematics import bone_lengths

    L = bone_lengths(joints)
    ratio = L / L[:, ref_bone:ref_bone + 1].clamp_min(1e-6)
    return (ratio - ref_ratios.to(ratio)).abs().mean()


# (joint, parent bone end, child) triples for the bends the angle prior looks at, finger by
# finger: MCP, PIP, DIP (thumb: MCP, IP), and the maximum bend (rad) of each
_BENDS = tuple(
    (j, 1.75 if k == 0 else (1.95 if k == 1 else 1.6))
    for f in range(1, 5) for k, j in enumerate((1 + 4 * f, 2 + 4 * f, 3 + 4 * f))
) + ((2, 1.4), (3, 1.6))


def joint_angle_prior_loss(joints: torch.Tensor, side: torch.Tensor | None = None,
                           max_hyperextension_rad: float = 0.35, max_sideways_rad: float = 0.35) -> torch.Tensor:
    """Anatomical joint-angle prior on (B, 21, 3) joints (hinge-like fingers), zero for plausible
    hands. Each finger gets a flexion axis ``l = cross(metacarpal, n)`` (``n`` the palm normal
    ``cross(index_mcp - wrist, pinky_mcp - wrist)``, flipped for left hands; ``side`` (B,) 1 right /
    0 left); at each finger joint with incoming bone ``a`` and outgoing bone ``b``:

    * bend: the angle between ``a`` and ``b`` stays below a per-joint maximum (MCP 100 deg,
      PIP 112 deg, DIP 92 deg, thumb MCP 80 deg, IP 92 deg);
    * direction (MCP, PIP, DIP): flexion is towards the palm: ``sin`` of the signed bend about
      ``l`` may not go below ``-sin(max_hyperextension_rad)``;
    * PIP and DIP are hinges: the distal phalanx may leave the plane of the proximal and middle
      phalanges by at most ``max_sideways_rad`` (weighted by the sine of the PIP bend, since a
      straight finger defines no plane).
    Penalties are squared hinge losses on those angles/sines, averaged over joints and samples.
    """
    from hand_pose_core.skeleton import PARENTS_21

    eps = 1e-8

    def unit(v):
        return v / v.norm(dim=-1, keepdim=True).clamp_min(eps)

    n = torch.linalg.cross(joints[:, 5] - joints[:, 0], joints[:, 17] - joints[:, 0], dim=-1)
    if side is not None:
        n = n * torch.where(side.reshape(-1, 1) == 0, -1.0, 1.0).to(n)
    n = unit(n)
    sin_hyper = math.sin(max_hyperextension_rad)
    sin_side = math.sin(max_sideways_rad)
    terms = []
    for j, max_bend in _BENDS:
        a = unit(joints[:, j] - joints[:, PARENTS_21[j]])
        b = unit(joints[:, j + 1] - joints[:, j])
        bend = torch.acos((a * b).sum(-1).clamp(-1 + 1e-6, 1 - 1e-6))
        terms.append(torch.relu(bend - max_bend).square())
        if j >= 5:  # fingers (the thumb does not flex about the palm's axes)
            mcp = 4 * ((j - 1) // 4) + 1
            lat = unit(torch.linalg.cross(joints[:, mcp] - joints[:, 0], n, dim=-1))
            flex = (torch.linalg.cross(a, b, dim=-1) * lat).sum(-1)  # sin of the signed flexion
            terms.append(torch.relu(-flex - sin_hyper).square())
    for f in range(1, 5):  # PIP and DIP are hinges: the finger's 4 joints lie in one plane
        m = 1 + 4 * f
        a, b, c = (unit(joints[:, m + k + 1] - joints[:, m + k]) for k in range(3))
        cr = torch.linalg.cross(a, b, dim=-1)
        w = cr.norm(dim=-1)  # sin of the PIP bend: the plane is undefined for a straight finger
        dev = (c * cr).sum(-1).abs() / w.clamp_min(eps)
        terms.append(w * torch.relu(dev - sin_side).square())
    return torch.stack(terms, -1).mean()


def perspective_projection_of_placed(joints_rel_m: torch.Tensor, uv_px: torch.Tensor, K: torch.Tensor,
                                     weight: torch.Tensor | None = None) -> torch.Tensor:
    """Place root-relative joints (B, J, 3) in the camera with the translation that best explains
    ``uv_px`` (B, J, 2) through ``K`` (linear least squares of the pinhole equations
    ``(u - cx) (Z + tz) = fx (X + tx)``, weighted per joint) and return their perspective
    projection (B, J, 2). Differentiable in ``joints_rel_m`` and ``uv_px``."""
    B, J, _ = joints_rel_m.shape
    fx, fy, cx, cy = K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2]
    X, Y, Z = joints_rel_m.unbind(-1)
    du = uv_px[..., 0] - cx[:, None]
    dv = uv_px[..., 1] - cy[:, None]
    zeros = torch.zeros_like(du)
    # rows [fx, 0, -du] t = du Z - fx X ; [0, fy, -dv] t = dv Z - fy Y
    A = torch.cat([torch.stack([fx[:, None].expand(B, J), zeros, -du], -1),
                   torch.stack([zeros, fy[:, None].expand(B, J), -dv], -1)], 1)  # (B, 2J, 3)
    rhs = torch.cat([du * Z - fx[:, None] * X, dv * Z - fy[:, None] * Y], 1)  # (B, 2J)
    w = torch.ones(B, J, dtype=A.dtype, device=A.device) if weight is None else weight.to(A.dtype)
    w2 = torch.cat([w, w], 1)[..., None]
    AtA = (A * w2).transpose(1, 2) @ A + 1e-9 * torch.eye(3, dtype=A.dtype, device=A.device)
    Atb = ((A * w2).transpose(1, 2) @ rhs[..., None])
    t = torch.linalg.solve(AtA, Atb)[..., 0]  # (B, 3)
    P = joints_rel_m + t[:, None]
    return torch.stack([fx[:, None] * P[..., 0] / P[..., 2].clamp_min(1e-4) + cx[:, None],
                        fy[:, None] * P[..., 1] / P[..., 2].clamp_min(1e-4) + cy[:, None]], -1)


def consistency_2d3d_loss(uv_2d_px: torch.Tensor, uv_from_3d_px: torch.Tensor, weight: torch.Tensor | None = None,
                          norm_px: float = 1.0) -> torch.Tensor:
    """2D-3D consistency: squared distance (in ``norm_px`` units) between the 2D joints a model
    reports and the projection of its own 3D joints (e.g. :func:`perspective_projection_of_placed`),
    weighted per joint."""
    d = ((uv_2d_px - uv_from_3d_px) / norm_px).square().sum(-1)
    return weighted_mean(d, weight)


def silhouette_loss(sil_pred: torch.Tensor, mask: torch.Tensor, has_mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between soft silhouettes (B, H, W) and masks (B, H, W) in [0, 1],
    over the samples that have a mask (``has_mask`` (B,))."""
    per_sample = (sil_pred - mask.to(sil_pred)).abs().flatten(1).mean(1)
    return weighted_mean(per_sample, has_mask)
