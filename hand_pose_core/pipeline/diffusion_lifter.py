"""The diffusion lift in the estimator: ``HandPoseEstimator(model='diffusion_pose',
checkpoint=FILE)`` (see :mod:`.lifters` for the interface).

The lifter conditions :class:`~hand_pose_core.models.diffusion_pose.DiffusionPose` on the
estimator's crop and the landmark network's 2D joints (with their confidences when given) and
samples ``num_hypotheses`` hands in ``num_steps`` DDIM steps with a fixed ``seed`` (the same
frame gives the same answer). Their mean is the 3D estimate; with ``num_hypotheses > 1`` their
per-joint spread (metres) is returned as ``joints_std_m``, which the estimator puts into
``Hand.joints_std_m`` (and the node into ``/hand/joints3d`` as ``uncertainty_m``); with one
hypothesis there is no spread and ``joints_std_m`` is None.

Defaults come from the model file's ``extra`` metadata (``num_hypotheses`` 1, ``num_steps`` the
model's ``num_inference_steps``, ``seed`` 0); set the attributes of the same names on the lifter
to ask for more (e.g. ``estimator.lifter.num_hypotheses = 8``).
"""
from __future__ import annotations

import torch

from .lifters import Lifter, LiftOutput, register_lifter


@register_lifter("diffusion_pose")
class DiffusionLifter(Lifter):
    def __init__(self, model, meta: dict, device: str = "cpu"):
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = model.to(device).eval()
        extra = meta.get("extra") or {}
        self.crop_size_px = int(extra.get("crop_size_px", extra.get("crop_size", model.crop_size_px)))
        if self.crop_size_px != model.crop_size_px:
            model.crop_size_px = self.crop_size_px
        self.num_hypotheses = int(extra.get("num_hypotheses", 1))
        self.num_steps = int(extra.get("num_steps", model.num_inference_steps))
        self.seed = int(extra.get("seed", 0))

    def __call__(self, crops_rgb, joints_2d_crop_px=None, joints_conf=None) -> LiftOutput:
        out = self.model.lift_crops(crops_rgb, joints_2d_crop_px, joints_conf,
                                    num_hypotheses=self.num_hypotheses, num_steps=self.num_steps,
                                    seed=self.seed)
        std = out["joints_std_m"] if self.num_hypotheses > 1 else None
        import numpy as np

        return LiftOutput(np.asarray(joints_2d_crop_px, np.float32), out["joints_rel_m"], std)


__all__ = ["DiffusionLifter"]
