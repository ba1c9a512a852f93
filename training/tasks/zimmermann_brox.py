"""Training task ``zimmermann_brox``: HandSegNet + PoseNet + PosePrior trained together
(:mod:`hand_pose_core.models.zimmermann_brox`).

Config (the ``task`` section)::

    name: zimmermann_brox
    model: {crop_size: 256, seg_width: 1.0, pose_width: 1.0, prior_width: 1.0, stages: 3}
    sigma_map_px: 1.0          # std of the target Gaussians, score-map pixels
    prior_input: gt            # 'gt': PosePrior reads target score maps (as in the paper,
                               # where it is trained on ground-truth maps); 'pred': PoseNet's
    box_margin: 1.5            # training crops: box of the ground-truth 2D joints x margin
    loss_weights: {seg: 1.0, score_maps: 1.0, coords: 1.0, viewpoint: 1.0}

Training crops PoseNet's input from the ground-truth joints (the paper trains PoseNet on crops
around the hand); at prediction the crop comes from HandSegNet's mask. Losses: segmentation
cross-entropy where ``has_mask``; L2 score maps of every stage (intermediate supervision)
weighted by visibility x confidence; canonical coordinates and viewpoint where ``has_3d``.
"""
from __future__ import annotations

import numpy as np
import torch

from hand_pose_core.models import create
from hand_pose_core.models.zimmermann_brox import (
    boxes_from_points,
    crop_to_map,
    input_to_crop,
    to_canonical,
)
from training import losses as L
from training.tasks import register_task
from training.tasks.common import draw_predictions, images_uint8, place_batch, unwrap, weighted_total

DEFAULT_WEIGHTS = {"seg": 1.0, "score_maps": 1.0, "coords": 1.0, "viewpoint": 1.0}


@register_task("zimmermann_brox")
class ZimmermannBroxTask:
    model_name = "zimmermann_brox"

    def __init__(self, cfg: dict | None = None):
        cfg = dict(cfg or {})
        self.model_cfg = dict(cfg.get("model") or {})
        unknown = set(cfg.get("loss_weights") or {}) - set(DEFAULT_WEIGHTS)
        if unknown:
            raise ValueError(f"zimmermann_brox: unknown loss_weights {sorted(unknown)}; "
                             f"known: {sorted(DEFAULT_WEIGHTS)}")
        self.weights = {**DEFAULT_WEIGHTS, **(cfg.get("loss_weights") or {})}
        self.sigma = float(cfg.get("sigma_map_px", 1.0))
        self.prior_input = cfg.get("prior_input", "gt")
        if self.prior_input not in ("gt", "pred"):
            raise ValueError(f"prior_input must be 'gt' or 'pred', got {self.prior_input!r}")
        self.box_margin = float(cfg.get("box_margin", 1.5))

    def build_model(self):
        return create(self.model_name, **self.model_cfg)

    def targets(self, net, batch: dict) -> dict:
        """Boxes, target score maps and canonical targets of a batch (no gradient)."""
        boxes = boxes_from_points(batch["joints_2d"], self.box_margin)
        uv_map = crop_to_map(input_to_crop(batch["joints_2d"], boxes, net.crop_size), net.map_size,
                             net.crop_size)
        maps = L.gaussian_score_maps(uv_map, net.map_size, self.sigma)
        w_c, R, _ = to_canonical(batch["joints_cam_m"], batch["side"])
        return {"boxes": boxes, "maps": maps, "coords_can": w_c, "rot": R}

    def loss(self, model, batch: dict):
        net = unwrap(model)
        t = self.targets(net, batch)
        out = model(batch["image"], batch["side"], boxes=t["boxes"],
                    prior_maps=t["maps"] if self.prior_input == "gt" else None)
        has3d = batch["has_3d"]
        terms = {
            "seg": L.segmentation_loss(out["seg_logits"], batch["mask"], batch["has_mask"]),
            "score_maps": L.score_map_loss(out["score_maps"], t["maps"],
                                           batch["visible"].float() * batch["joints_conf"]),
            "coords": L.canonical_coords_loss(out["coords_can"], t["coords_can"], has3d),
            "viewpoint": L.viewpoint_loss(out["rot"], t["rot"], has3d),
        }
        return weighted_total(terms, self.weights)

    @torch.no_grad()
    def predict(self, model, batch: dict) -> dict:
        out = model(batch["image"], batch["side"])
        joints_cam, err = place_batch(out["joints_rel_m"], out["joints_2d"], batch["K"])
        return {"joints_cam_m": joints_cam, "joints_2d": out["joints_2d"],
                "joints_rel_m": out["joints_rel_m"], "reproj_err_px": err,
                "hand_prob": out["seg_logits"].softmax(1)[:, 1]}

    def draw(self, batch: dict, pred: dict):
        imgs = images_uint8(batch["image"][:16])
        prob = pred.get("hand_prob")
        if prob is not None:  # tint the predicted hand mask, then draw the joints
            p = prob[: len(imgs)].detach().float().cpu().numpy()[..., None]
            tint = imgs.astype(np.float32) * (1 - 0.35 * p) + 0.35 * p * np.array([60.0, 200.0, 255.0])
            imgs = tint.clip(0, 255).astype(np.uint8)
        return draw_predictions(batch, pred, images=imgs)
