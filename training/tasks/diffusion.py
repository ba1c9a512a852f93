"""Training task ``'diffusion'``: DDPM training of :mod:`hand_pose_core.models.diffusion_pose`.

Config (the ``task`` section; every key optional):

    model: {...}                 # DiffusionPose constructor arguments (stored in the model file)
    noise_2d_px: 1.5             # Gaussian noise added to the 2D input joints (detector errors)
    conf_dropout: 0.05           # probability that an input joint is given with confidence 0
    bone_length_weight: 1.0      # 'fk': weight of the bone-length head's L1 loss (metres)
    eval_hypotheses: 5           # K hypotheses per hand in predict()
    eval_steps: null             # DDIM steps in predict() (default: the model's)
    eval_seed: 0

Loss: the visibility-aware DDPM loss (:func:`training.losses.ddpm_loss`): only joints that are
visible in a sample with 3D labels count (as in arXiv 2308.09523 on RHD), plus for ``'fk'`` the
bone-length loss over bones whose two ends count. 3D targets are wrist-relative.

``predict`` returns the mean of the hypotheses placed in the crop camera from the input 2D joints
and ``K`` (translation only, as the other tasks do: :func:`training.tasks.common.place_batch`),
the wrist-relative mean, the hypotheses and their per-joint spread.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from hand_pose_core.kinematics.forward_kinematics import bone_lengths
from hand_pose_core.models import create
from hand_pose_core.skeleton import BONES

from training.losses import bone_length_loss, bone_weights_from_joints, ddpm_loss
from training.tasks import register_task
from training.tasks.common import place_batch, unwrap

MODEL_NAME = "diffusion_pose"


def condition_inputs(batch: dict, noise_2d_px: float = 0.0, conf_dropout: float = 0.0):
    """2D input joints and confidences for the denoiser: the batch's 2D joints (optionally with
    noise), confidence = label confidence x visible (x random dropout)."""
    uv = batch["joints_2d"]
    conf = batch["joints_conf"] * batch["visible"].to(uv.dtype)
    if noise_2d_px > 0:
        uv = uv + noise_2d_px * torch.randn_like(uv)
    if conf_dropout > 0:
        conf = conf * (torch.rand_like(conf) >= conf_dropout).to(conf.dtype)
    return uv, conf


@register_task("diffusion")
class DiffusionTask:
    model_name = MODEL_NAME

    def __init__(self, cfg: dict | None = None):
        cfg = dict(cfg or {})
        self.model_cfg = dict(cfg.pop("model", {}) or {})
        self.noise_2d_px = float(cfg.pop("noise_2d_px", 1.5))
        self.conf_dropout = float(cfg.pop("conf_dropout", 0.05))
        self.bone_length_weight = float(cfg.pop("bone_length_weight", 1.0))
        self.eval_hypotheses = int(cfg.pop("eval_hypotheses", 5))
        steps = cfg.pop("eval_steps", None)
        self.eval_steps = None if steps is None else int(steps)
        self.eval_seed = int(cfg.pop("eval_seed", 0))
        cfg.pop("name", None)
        if cfg:
            raise ValueError(f"unknown keys in the diffusion task config: {sorted(cfg)}")

    def build_model(self):
        return create(MODEL_NAME, **self.model_cfg)

    def loss(self, model, batch: dict):
        net = unwrap(model)
        j3 = batch["joints_cam_m"]
        rel = j3 - j3[:, :1]
        joint_w = batch["visible"].to(j3.dtype) * batch["has_3d"].to(j3.dtype)[:, None]
        x0 = net.encode_pose(rel)
        B = x0.shape[0]
        t = torch.randint(0, net.num_train_timesteps, (B,), device=x0.device)
        noise = torch.randn_like(x0)
        x_t = net.add_noise(x0, noise, t)
        uv, conf = condition_inputs(batch, self.noise_2d_px, self.conf_dropout)
        res = model(x_t, t, batch["image"], uv, conf)
        l_ddpm = ddpm_loss(res["out"], net.training_target(x0, noise, t), joint_w)
        logs = {"ddpm": float(l_ddpm.detach())}
        total = l_ddpm
        if res["bone_lengths_m"] is not None:
            l_bone = bone_length_loss(res["bone_lengths_m"], bone_lengths(rel), bone_weights_from_joints(joint_w))
            total = total + self.bone_length_weight * l_bone
            logs["bone_l1_m"] = float(l_bone.detach())
        logs["loss"] = float(total.detach())
        return total, logs

    @torch.no_grad()
    def predict(self, model, batch: dict) -> dict:
        net = unwrap(model)
        uv, conf = condition_inputs(batch)
        s = net.sample(batch["image"], uv, conf, num_hypotheses=self.eval_hypotheses,
                       num_steps=self.eval_steps, seed=self.eval_seed)
        joints_cam, err = place_batch(s.joints_rel_m, uv, batch["K"])
        root = joints_cam[:, :1] - s.joints_rel_m[:, :1]
        return {"joints_cam_m": joints_cam, "joints_rel_m": s.joints_rel_m, "joints_std_m": s.joints_std_m,
                "hypotheses_cam_m": s.hypotheses_m + root[:, None], "joints_2d": uv, "reproj_err_px": err}

    def draw(self, batch: dict, pred: dict) -> np.ndarray:
        """Inputs with the 2D joints (green) and the predicted 3D projected through K (red)."""
        imgs = (batch["image"].permute(0, 2, 3, 1).clamp(0, 1) * 255).to(torch.uint8).cpu().numpy().copy()
        P = pred["joints_cam_m"].detach().cpu().double()
        Kb = batch["K"].cpu().double()
        proj = (P @ Kb.transpose(1, 2))
        uv_pred = (proj[..., :2] / proj[..., 2:3].clamp_min(1e-6)).numpy()
        uv_gt = batch["joints_2d"].cpu().numpy()
        for img, a, b in zip(imgs, uv_gt, uv_pred):
            for p, c in BONES:
                cv2.line(img, tuple(int(x) for x in a[p]), tuple(int(x) for x in a[c]), (0, 255, 0), 1)
                cv2.line(img, tuple(int(x) for x in b[p]), tuple(int(x) for x in b[c]), (255, 0, 0), 1)
        return imgs


__all__ = ["DiffusionTask", "condition_inputs"]
