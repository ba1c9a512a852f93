"""Training task ``mano_regressor``: the MANO regressor of :mod:`hand_pose_core.models.mano_regressor`.

Config (the ``task`` section)::

    name: mano_regressor
    model: {backbone: resnet18, pretrained: true, use_pca: true, ncomps: 12}  # constructor cfg
    loss_weights: {joints_2d: 1.0, joints_3d: 100.0, verts: 100.0, pose_reg: 0.001, shape_reg: 0.001,
                   mano_pose: 0.0, global_orient: 0.0}

Fine-tuning (e.g. on footage) starts from a model file with the trainer's top-level ``init``
(not a task key): its weights must match ``model`` (strict; a mismatch names the file).

Losses (:mod:`training.losses`): 2D joints in normalised crop units (``S / 2`` px), weighted by
visibility x label confidence; root-relative 3D joints (metres^2) where ``has_3d``; root-relative
vertices where ``has_verts``; pose and shape regularisers; where the sample has MANO labels
(``has_mano``: synthetic hands, FreiHAND, HO-3D) the finger rotations (``mano_pose``) and the
global rotation (``global_orient``) against the labels as rotation matrices (off by default). ``predict`` places the
root-relative prediction in the crop's camera frame from its own 2D joints and the batch ``K``.
"""
from __future__ import annotations

import torch

from hand_pose_core.kinematics.rotations import axis_angle_to_matrix
from hand_pose_core.mano.synthetic import MIRROR_POSE_SIGNS
from hand_pose_core.models import create
from training import losses as L
from training.tasks import register_task
from training.tasks.common import draw_predictions, place_batch, refuse_init_from, unwrap, weighted_total

DEFAULT_WEIGHTS = {"joints_2d": 1.0, "joints_3d": 100.0, "verts": 100.0, "pose_reg": 1e-3,
                   "shape_reg": 1e-3, "mano_pose": 0.0, "global_orient": 0.0}


def label_rotmats(mano_pose: torch.Tensor, side: torch.Tensor, hands_mean: torch.Tensor) -> torch.Tensor:
    """The 16 MANO rotations ``(B, 16, 3, 3)`` a right-hand regressor should predict for the
    labels ``mano_pose`` (B, 48) of the batch (sample convention: ``flat_hand_mean=False``, each
    sample's own side).

    Left hands are regressed as the mirrored right hand (see the model), so their labels are
    mirrored too; ``hands_mean`` (45,) is the right model's, added to give the absolute finger
    rotations that :meth:`ManoLayer.pose_to_rotmats` returns whatever the layer's convention.
    """
    B = mano_pose.shape[0]
    aa = mano_pose.reshape(B, 16, 3)
    left = (side.reshape(-1) == 0).to(aa.device)[:, None, None]
    aa = torch.where(left, aa * aa.new_tensor(MIRROR_POSE_SIGNS), aa)  # the other side's MANO model
    aa = torch.cat([aa[:, :1], aa[:, 1:] + hands_mean.to(aa).reshape(1, 15, 3)], 1)
    return axis_angle_to_matrix(aa)


@torch.no_grad()
def predict_mano_regressor(model, batch: dict) -> dict:
    """A MANO regressor's joints and mesh in the crop camera: its wrist-relative 3D placed from its
    own 2D joints and the batch K (shared by the supervised and the self-supervised task)."""
    out = model(batch["image"], batch["side"])
    joints_cam, err = place_batch(out["joints_rel_m"], out["joints_2d"], batch["K"])
    root = joints_cam[:, :1] - out["joints_rel_m"][:, :1]
    return {"joints_cam_m": joints_cam, "verts_cam_m": out["verts_rel_m"] + root,
            "joints_2d": out["joints_2d"], "joints_rel_m": out["joints_rel_m"],
            "reproj_err_px": err}


@register_task("mano_regressor")
class ManoRegressorTask:
    model_name = "mano_regressor"

    def __init__(self, cfg: dict | None = None):
        cfg = dict(cfg or {})
        refuse_init_from("mano_regressor", cfg)
        self.model_cfg = dict(cfg.get("model") or {})
        unknown = set(cfg.get("loss_weights") or {}) - set(DEFAULT_WEIGHTS)
        if unknown:
            raise ValueError(f"mano_regressor: unknown loss_weights {sorted(unknown)}; "
                             f"known: {sorted(DEFAULT_WEIGHTS)}")
        self.weights = {**DEFAULT_WEIGHTS, **(cfg.get("loss_weights") or {})}

    def build_model(self):
        return create(self.model_name, **self.model_cfg)

    def loss(self, model, batch: dict):
        out = model(batch["image"], batch["side"])
        S = batch["image"].shape[-1]
        w2d = batch["visible"].float() * batch["joints_conf"]
        terms = {
            "joints_2d": L.joints_2d_loss(out["joints_2d"], batch["joints_2d"], w2d, norm_px=S / 2),
            "joints_3d": L.joints_3d_loss(out["joints_rel_m"], batch["joints_cam_m"], batch["has_3d"]),
            "verts": L.vertex_loss(out["verts_rel_m"], batch["verts_cam_m"], batch["joints_cam_m"],
                                   batch["has_verts"]),
            "pose_reg": L.pose_regularizer(out["pose"]),
            "shape_reg": L.shape_regularizer(out["shape"]),
        }
        if self.weights["mano_pose"] or self.weights["global_orient"]:
            mano = unwrap(model).mano
            pred_R = mano.pose_to_rotmats(out["pose"].float())
            target_R = label_rotmats(batch["mano_pose"], batch["side"], mano.hands_mean)
            terms["mano_pose"] = L.rotation_matrix_loss(pred_R[:, 1:], target_R[:, 1:], batch["has_mano"])
            terms["global_orient"] = L.rotation_matrix_loss(pred_R[:, :1], target_R[:, :1], batch["has_mano"])
        return weighted_total(terms, self.weights)

    @torch.no_grad()
    def predict(self, model, batch: dict) -> dict:
        return predict_mano_regressor(model, batch)

    def draw(self, batch: dict, pred: dict):
        return draw_predictions(batch, pred)
