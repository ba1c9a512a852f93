"""Neural network modules (PyTorch): constructors build, ``forward`` only computes."""
from .hand_landmark import HandLandmark, LandmarkOutput
from .palm_detector import PalmDetector, PalmOutput

__all__ = ["PalmDetector", "PalmOutput", "HandLandmark", "LandmarkOutput"]
