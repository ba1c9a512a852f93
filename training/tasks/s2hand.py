"""Training task ``'s2hand'``: self-supervised training of the MANO regressor from 2D detections.

After Chen et al., "Model-based 3D Hand Reconstruction via Self-Supervised Learning" (S2HAND,
CVPR 2021), written from the paper: no 3D labels, only 2D keypoints with confidences (our
tracker as the teacher through the ``footage`` dataset, or any dataset's 2D joints) and masks
where a dataset has them. The model is :mod:`hand_pose_core.models.mano_regressor`.

Config (the ``task`` section; all optional):

    name: s2hand
    model: {...}                      # ManoRegressor constructor arguments
    loss_weights: {joints_2d: 1.0, bone_prior: 0.1, angle_prior: 1.0, pose_reg: 0.001,
                   shape_reg: 0.001, consistency: 0.1, silhouette: 0.5, joints_3d: 0.0}
    silhouette: {size_px: 64, sigma_px: 0.25}

A run that starts from a model file (``mano_regressor``: stage 2 of the stage-wise schedule, or
``hand-pose adapt``) names it with the trainer's top-level ``init``, not a task key.

Losses (:mod:`training.losses`):

* ``joints_2d``: confidence-weighted 2D reprojection (weight = visible x label confidence), in
  half-crop units, of the regressor's weak-perspective 2D joints against the teacher's;
* ``bone_prior``: relative bone lengths against the mean MANO hand's; ``angle_prior``: bends below
  anatomical maxima, towards the palm, PIP/DIP as hinges;
* ``pose_reg`` / ``shape_reg``: MANO pose and shape regularisation;
* ``consistency``: 2D-3D consistency: the regressor's 3D joints, placed in the crop camera by the
  translation that best explains its own 2D joints through the crop ``K``, must project
  (perspective) onto those 2D joints: the 3D shape and the 2D head agree under the real camera;
* ``silhouette``: soft silhouette of the regressed mesh (weak-perspective projection,
  :mod:`training.silhouette`, rendered at ``size_px``) against the mask, where ``has_mask``;
* ``joints_3d``: optional 3D supervision where a sample has trusted 3D (off by default).

Schedules: ``training/configs/s2hand_stage1_*.yaml`` (2D + priors, no silhouette) then
``s2hand_stage2_*.yaml`` (``init`` stage 1, all terms), or ``s2hand_end2end_*.yaml`` (all
terms from the start).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from hand_pose_core.kinematics.forward_kinematics import bone_lengths
from hand_pose_core.models import create
from training import losses as L
from training.silhouette import soft_silhouette_2d
from training.tasks import register_task
from training.tasks.common import draw_predictions, refuse_init_from, unwrap, weighted_total
from training.tasks.mano_regressor import predict_mano_regressor

MODEL_NAME = "mano_regressor"
DEFAULT_WEIGHTS = {"joints_2d": 1.0, "bone_prior": 0.1, "angle_prior": 1.0, "pose_reg": 1e-3,
                   "shape_reg": 1e-3, "consistency": 0.1, "silhouette": 0.5, "joints_3d": 0.0}
REF_BONE = 8  # wrist -> middle MCP


def vertices_2d(out: dict, side: torch.Tensor | None, size_px: int) -> torch.Tensor:
    """The regressor's mesh in crop pixels with the same weak-perspective camera as its
    ``joints_2d`` (mirrored outputs of left hands use the mirrored camera offset)."""
    s, tx, ty = out["cam"].unbind(-1)
    if side is not None:
        tx = torch.where(side.reshape(-1).to(tx.device) == 0, -tx, tx)
    v = out["verts_rel_m"]
    u = (s[:, None] * v[..., 0] + tx[:, None] + 1.0) * (size_px / 2.0) - 0.5
    w = (s[:, None] * v[..., 1] + ty[:, None] + 1.0) * (size_px / 2.0) - 0.5
    return torch.stack([u, w], -1)


@register_task("s2hand")
class S2HandTask:
    model_name = MODEL_NAME

    def __init__(self, cfg: dict | None = None):
        cfg = dict(cfg or {})
        refuse_init_from("s2hand", cfg)
        self.model_cfg = dict(cfg.pop("model", None) or {})
        weights = dict(cfg.pop("loss_weights", None) or {})
        unknown = set(weights) - set(DEFAULT_WEIGHTS)
        if unknown:
            raise ValueError(f"s2hand: unknown loss_weights {sorted(unknown)}; known: {sorted(DEFAULT_WEIGHTS)}")
        self.weights = {**DEFAULT_WEIGHTS, **weights}
        sil = dict(cfg.pop("silhouette", None) or {})
        self.sil_size = int(sil.pop("size_px", 64))
        self.sil_sigma = float(sil.pop("sigma_px", 0.25))
        if sil:
            raise ValueError(f"s2hand: unknown silhouette options {sorted(sil)}")
        cfg.pop("name", None)
        if cfg:
            raise ValueError(f"s2hand: unknown task keys {sorted(cfg)}")
        self._ref_ratios = None

    def build_model(self):
        return create(MODEL_NAME, **self.model_cfg)

    def _ratios(self, net, device) -> torch.Tensor:
        if self._ref_ratios is None:
            with torch.no_grad():
                j = net.mano.forward_joints(torch.zeros(1, net.n_pose, device=device))
                Lb = bone_lengths(j)[0]
            self._ref_ratios = (Lb / Lb[REF_BONE]).detach()
        return self._ref_ratios.to(device)

    def loss(self, model, batch: dict):
        net = unwrap(model)
        out = model(batch["image"], batch["side"])
        S = batch["image"].shape[-1]
        w2d = batch["visible"].float() * batch["joints_conf"]
        rel = out["joints_rel_m"]
        wt = self.weights
        terms = {
            "joints_2d": L.joints_2d_loss(out["joints_2d"], batch["joints_2d"], w2d, norm_px=S / 2),
            "bone_prior": L.bone_length_prior_loss(rel, self._ratios(net, rel.device), REF_BONE),
            "angle_prior": L.joint_angle_prior_loss(rel, batch["side"]),
            "pose_reg": L.pose_regularizer(out["pose"]),
            "shape_reg": L.shape_regularizer(out["shape"]),
        }
        if wt["consistency"] > 0:
            uv3 = L.perspective_projection_of_placed(rel, out["joints_2d"], batch["K"])
            terms["consistency"] = L.consistency_2d3d_loss(out["joints_2d"], uv3, None, norm_px=S / 2)
        if wt["silhouette"] > 0 and bool(batch["has_mask"].any()):
            sel = batch["has_mask"]
            uv = vertices_2d({k: v[sel] for k, v in out.items()}, batch["side"][sel], S)
            R = self.sil_size
            sil = soft_silhouette_2d((uv + 0.5) * (R / S) - 0.5, net.mano.faces, (R, R), self.sil_sigma)
            mask = F.interpolate(batch["mask"][sel][:, None].float(), size=(R, R), mode="area")[:, 0]
            terms["silhouette"] = L.silhouette_loss(sil, mask, torch.ones(len(sil), device=sil.device))
        if wt["joints_3d"] > 0:
            terms["joints_3d"] = L.joints_3d_loss(rel, batch["joints_cam_m"], batch["has_3d"])
        return weighted_total(terms, wt)

    def predict(self, model, batch: dict) -> dict:
        return predict_mano_regressor(model, batch)

    def draw(self, batch: dict, pred: dict):
        return draw_predictions(batch, pred)


__all__ = ["S2HandTask", "vertices_2d"]
