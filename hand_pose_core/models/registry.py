"""Build networks by name, in the style of timm / torchvision: ``create(name, **cfg)``.

A module registers a constructor with ``@register_model("name")``; the constructor builds the
``nn.Module`` from keyword arguments (plain data, so that a YAML config can hold them) and
``forward`` only computes. Registering modules are imported lazily on the first lookup so that
``import hand_pose_core.models`` stays cheap (a :class:`hand_pose_core.registry.Registry`).
"""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

from ..registry import Registry

# modules whose import registers models; add a new model family here
MODELS = Registry("model", (
    "hand_pose_core.models.zimmermann_brox",
    "hand_pose_core.models.mano_regressor",
    "hand_pose_core.models.diffusion_pose",
))


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register ``fn(**cfg) -> nn.Module`` under ``name`` (unique)."""
    return MODELS.register(name)


def list_models() -> list[str]:
    """Names accepted by :func:`create`, sorted."""
    return MODELS.names()


def create(name: str, **cfg) -> nn.Module:
    """Build the network registered as ``name`` with keyword arguments ``cfg``."""
    return MODELS.lookup(name)(**cfg)
