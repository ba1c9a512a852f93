"""Helpers shared by the training tasks: metric placement of a batch of root-relative
predictions, and drawing predictions on the input crops."""
from __future__ import annotations

import cv2
import numpy as np
import torch

from hand_pose_core.pipeline.metric3d import place_hand_in_camera

_FINGER_CHAINS = ((0, 1, 2, 3, 4), (0, 5, 6, 7, 8), (0, 9, 10, 11, 12), (0, 13, 14, 15, 16),
                  (0, 17, 18, 19, 20))
_COLOURS = ((230, 60, 60), (240, 180, 40), (60, 200, 80), (50, 140, 240), (180, 80, 220))
FALLBACK_DEPTH_M = 0.5  # where a degenerate (collapsed) prediction is put


def refuse_init_from(task: str, cfg: dict) -> None:
    """A task config holding ``init_from`` (the old task key for the model file a run starts
    from) is refused instead of silently training from fresh weights: the key is the trainer's
    top-level ``init`` (:mod:`training.config` moves ``task.init_from`` there when it loads a config)."""
    if "init_from" in cfg:
        raise ValueError(f"{task}: init_from is not a task key; the model file a run starts from is the "
                         f"top-level init (init={cfg['init_from']})")


def unwrap(model):
    """The bare module behind DistributedDataParallel / torch.compile wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if inner is None:
            return model
        model = inner


def weighted_total(terms: dict, weights: dict) -> tuple[torch.Tensor, dict]:
    """The training objective of a task: the weighted sum of its loss terms, and the log line
    (``loss/<term>`` for each term, ``loss/total``) the trainer writes to TensorBoard."""
    total = sum(weights[k] * v for k, v in terms.items())
    logs = {f"loss/{k}": float(v.detach()) for k, v in terms.items()}
    logs["loss/total"] = float(total.detach())
    return total, logs


def place_batch(joints_rel_m: torch.Tensor, joints_2d_px: torch.Tensor, K: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Root-relative joints (B, 21, 3) + their 2D (B, 21, 2, pixels of the image K belongs to)
    -> (joints_cam_m (B, 21, 3), reprojection RMS px (B,)).

    The network's orientation is trusted and only the translation is solved (least squares
    of the reprojection, :func:`hand_pose_core.pipeline.metric3d.place_hand_in_camera` with
    ``rotation='identity'``). A degenerate prediction (collapsed joints, e.g. an untrained
    network) is put at ``FALLBACK_DEPTH_M`` in front of the camera with an infinite error."""
    rel = joints_rel_m.detach().double().cpu().numpy()
    uv = joints_2d_px.detach().double().cpu().numpy()
    Ks = K.detach().double().cpu().numpy()
    out = np.empty_like(rel)
    err = np.empty(len(rel))
    for i in range(len(rel)):
        try:
            p = place_hand_in_camera(uv[i], rel[i], Ks[i], rotation="identity")
            out[i], err[i] = p.joints_cam_m, p.reproj_err_px
        except ValueError:
            out[i] = rel[i] + np.array([0.0, 0.0, FALLBACK_DEPTH_M])
            err[i] = np.inf
    return (torch.from_numpy(out).to(joints_rel_m.dtype).to(joints_rel_m.device),
            torch.from_numpy(err))


def images_uint8(batch_images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) float in [0, 1] -> (B, H, W, 3) uint8."""
    x = (batch_images.detach().float().clamp(0, 1) * 255.0 + 0.5).to(torch.uint8)
    return np.ascontiguousarray(x.permute(0, 2, 3, 1).cpu().numpy())


def draw_skeleton(canvas: np.ndarray, uv_px: np.ndarray, thickness: int = 1,
                  colour: tuple | None = None) -> None:
    """Draw a 21-joint skeleton on an RGB uint8 image in place (skips non-finite joints)."""
    if not np.all(np.isfinite(uv_px)):
        return
    p = np.round(uv_px).astype(np.int32)
    for chain, c in zip(_FINGER_CHAINS, _COLOURS):
        c = colour or c
        for a, b in zip(chain[:-1], chain[1:]):
            cv2.line(canvas, (int(p[a, 0]), int(p[a, 1])), (int(p[b, 0]), int(p[b, 1])), c,
                     thickness, cv2.LINE_AA)
    for q in p:
        cv2.circle(canvas, (int(q[0]), int(q[1])), thickness + 1, colour or (255, 255, 255), -1)


def draw_predictions(batch: dict, pred: dict, max_images: int = 16,
                     images: np.ndarray | None = None) -> np.ndarray:
    """Inputs (or ``images``, (N, H, W, 3) uint8) with the ground-truth 2D joints (grey) and the
    predicted ones (coloured)."""
    imgs = images_uint8(batch["image"][:max_images]) if images is None else images[:max_images]
    gt = batch["joints_2d"][:max_images].detach().cpu().numpy()
    pr = pred["joints_2d"][:max_images].detach().cpu().numpy()
    out = []
    for img, g, p in zip(imgs, gt, pr):
        canvas = img.copy()
        t = max(1, round(canvas.shape[0] / 128))
        draw_skeleton(canvas, g, t, colour=(128, 128, 128))
        draw_skeleton(canvas, p, t)
        out.append(canvas)
    return np.stack(out)
