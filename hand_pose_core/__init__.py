"""hand_pose_core: monocular RGB 3D hand pose without ROS.

The public names below are imported lazily so that ``import hand_pose_core`` stays cheap and
never needs rclpy. See README.md for the API.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "Hand": "hand_pose_core.types",
    "HandPoseEstimator": "hand_pose_core.pipeline.estimator",
    "ManoLayer": "hand_pose_core.mano",
    "load_mano": "hand_pose_core.mano",
    "synthetic_mano": "hand_pose_core.mano",
    "export_mesh": "hand_pose_core.mano",
    "ManoFitter": "hand_pose_core.mano.fit",
    "default_intrinsics": "hand_pose_core.camera",
    "resolve_intrinsics": "hand_pose_core.camera",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hand_pose_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
