"""Dataset readers that yield the common sample (:mod:`.sample`), built by name.

    from training.datasets import build_dataset
    ds = build_dataset("freihand", "/data/FreiHAND_pub_v2", "train")

Names: 'freihand', 'rhd', 'ho3d', 'synthetic', 'footage'. A reader module registers its class
with ``@register_dataset(name)``; modules are imported on the first lookup.
"""
from __future__ import annotations

from hand_pose_core.registry import Registry

from .sample import REQUIRED_KEYS, SampleError, validate_sample

# name -> the module that registers it (only that one is imported, on its first lookup)
DATASETS = Registry("dataset", {
    "freihand": "training.datasets.freihand",
    "rhd": "training.datasets.rhd",
    "ho3d": "training.datasets.ho3d",
    "synthetic": "training.datasets.synthetic",
    "footage": "training.datasets.footage",
})


def register_dataset(name: str):
    """Class decorator: the reader built by ``build_dataset(name, root, split, **options)``."""
    return DATASETS.register(name)


def build_dataset(name: str, root, split: str = "train", **options):
    """Build the reader registered as ``name`` over the dataset at ``root``."""
    return DATASETS.lookup(name)(root, split=split, **options)


__all__ = ["build_dataset", "register_dataset", "validate_sample", "SampleError", "REQUIRED_KEYS"]
