"""Build networks by name, in the style of timm / torchvision: ``create(name, **cfg)``.

A module registers a constructor with ``@register_model("name")``; the constructor builds the
``nn.Module`` from keyword arguments (plain data, so that a YAML config can hold them) and
``forward`` only computes. Registering modules are imported lazily on the first lookup so that
``import hand_pose_core.models`` stays cheap.
"""
from __future__ import annotations

import importlib
from typing import Callable

import torch.nn as nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}

# modules whose import registers models; add a new model family here
_MODEL_MODULES = (
    "hand_pose_core.models.zimmermann_brox",
    "hand_pose_core.models.mano_regressor",
    "hand_pose_core.models.diffusion_pose",
)
_loaded = False


def register_model(name: str):
    """Decorator: register ``fn(**cfg) -> nn.Module`` under ``name`` (unique)."""

    def deco(fn):
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            raise ValueError(f"model name {name!r} is registered twice")
        _REGISTRY[name] = fn
        return fn

    return deco


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    for mod in _MODEL_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as err:
            # a family that is not written yet; anything else missing is a real error
            if err.name != mod:
                raise
    _loaded = True


def list_models() -> list[str]:
    """Names accepted by :func:`create`, sorted."""
    _load_all()
    return sorted(_REGISTRY)


def create(name: str, **cfg) -> nn.Module:
    """Build the network registered as ``name`` with keyword arguments ``cfg``."""
    _load_all()
    try:
        fn = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(_REGISTRY)) or 'none'}") from None
    return fn(**cfg)
