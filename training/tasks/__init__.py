"""Training tasks: the per-model-family glue between a batch and the generic trainer.

A task is a class registered with ``@register_task(name)`` and built from the config's ``task``
section. The trainer (:mod:`training.train`) only calls these methods:

- ``build_model() -> nn.Module`` (through ``hand_pose_core.models.create``)
- ``loss(model, batch) -> (loss_tensor, {name: float})``: the training objective
- ``predict(model, batch) -> dict``: at least ``joints_cam_m`` (B, 21, 3) in metres; optionally
  ``verts_cam_m`` (B, 778, 3), ``joints_2d`` (B, 21, 2) crop pixels, ``joints_std_m`` (B, 21)
- ``draw(batch, pred) -> (N, H, W, 3) uint8``: pictures for TensorBoard (optional)

Batches are described in :mod:`training.datasets.collate`.
"""
from __future__ import annotations

from hand_pose_core.registry import Registry

# modules whose import registers tasks (imported on the first lookup of an unregistered name)
TASKS = Registry("training task", (
    "training.tasks.zimmermann_brox",
    "training.tasks.mano_regressor",
    "training.tasks.diffusion",
    "training.tasks.s2hand",
))


def register_task(name: str):
    """Class decorator: the task built by ``build_task(name, cfg)`` (unique)."""
    return TASKS.register(name)


def build_task(name: str, cfg: dict):
    """Build the task registered as ``name`` from its config section ``cfg``."""
    return TASKS.lookup(name)(cfg)
