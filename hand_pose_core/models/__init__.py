"""Neural network modules (PyTorch): constructors build, ``forward`` only computes.

Trainable networks are built by name: ``hand_pose_core.models.create(name, **cfg)``
(see :mod:`.registry`); ``list_models()`` names them.
"""
from .hand_landmark import HandLandmark, LandmarkOutput
from .palm_detector import PalmDetector, PalmOutput
from .registry import create, list_models, register_model

__all__ = ["PalmDetector", "PalmOutput", "HandLandmark", "LandmarkOutput",
           "create", "list_models", "register_model"]
