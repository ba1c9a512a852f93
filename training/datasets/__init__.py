"""Dataset readers that yield the common sample (:mod:`.sample`), built by name.

    from training.datasets import build_dataset
    ds = build_dataset("freihand", "/data/FreiHAND_pub_v2", "train")

Names: 'freihand', 'rhd', 'ho3d', 'synthetic', 'footage'. A reader module registers its class
with ``@register_dataset(name)``; modules are imported on the first lookup.
"""
from __future__ import annotations

import importlib

from .sample import REQUIRED_KEYS, SampleError, validate_sample

_REGISTRY: dict = {}
_MODULES = {
    "freihand": "training.datasets.freihand",
    "rhd": "training.datasets.rhd",
    "ho3d": "training.datasets.ho3d",
    "synthetic": "training.datasets.synthetic",
    "footage": "training.datasets.footage",
}


def register_dataset(name: str):
    def deco(cls):
        _REGISTRY[name] = cls
        return cls

    return deco


def build_dataset(name: str, root, split: str = "train", **options):
    """Build the reader registered as ``name`` over the dataset at ``root``."""
    if name not in _MODULES and name not in _REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(sorted(_MODULES))}")
    if name not in _REGISTRY:
        importlib.import_module(_MODULES[name])
    return _REGISTRY[name](root, split=split, **options)


__all__ = ["build_dataset", "register_dataset", "validate_sample", "SampleError", "REQUIRED_KEYS"]
