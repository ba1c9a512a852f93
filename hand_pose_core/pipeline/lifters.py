"""Trained models in the estimator: a *lifter* turns hand crops (and the landmark network's 2D
joints) into wrist-relative metric 3D joints, replacing MediaPipe's world landmarks.

``HandPoseEstimator(model=NAME, checkpoint=PATH)`` keeps the palm detector and the landmark
network (they find the hands, frame the crops, track them and give the 2D joints) and asks the
lifter loaded from ``PATH`` for the 3D. The estimator then rotates the lifter's crop-frame 3D
back to the image axes and places it metrically from ``K`` exactly as it places MediaPipe's world
landmarks (:mod:`.metric3d`); the MANO fit runs as usual. With ``lifter_2d=True`` the lifter's
own 2D joints are reported and used for the placement instead of the landmark network's (the
crops and the tracking still follow the landmark network).

Interface (the diffusion lift and later models plug in here):

* :class:`Lifter`: attribute ``crop_size_px`` (the estimator cuts crops of that size from the
  hand's ROI, upright: wrist at the bottom, fingers up) and
  ``__call__(crops_rgb (N, S, S, 3) uint8, joints_2d_crop_px (N, 21, 2) float32 | None,
  joints_conf (N, 21) | None) -> LiftOutput``. A lifter that needs the hands' sides sets
  ``wants_sides = True`` and then also receives ``sides=[...]`` ('left' / 'right' as seen in the
  crop).
* crop pixel coordinates here are continuous (pixel ``j`` spans [j, j + 1)), the convention of
  the landmark network and of :func:`~.roi.crop_roi`; the training samples put pixel centres at
  integers, so a network trained on them adds 0.5 to its 2D outputs.
* :class:`LiftOutput`: ``joints_2d_crop_px`` (N, 21, 2), ``joints_rel_m`` (N, 21, 3) wrist-relative
  metres in the crop's camera axes (x right, y down, z forward as seen in the crop),
  ``joints_std_m`` (N, 21) or None.
* ``@register_lifter(model_name)`` on a class built as ``cls(model, meta, device)`` from the
  network of a model file (:mod:`hand_pose_core.models.checkpoint`) and its metadata;
  :func:`load_lifter` dispatches on the file's ``model_name``. Lifters registered in a model
  family module (``hand_pose_core.models.*``, imported lazily) are found too.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import torch

from ..models.checkpoint import CheckpointError, load_model
from ..models.registry import MODELS
from ..registry import Registry

BUILTIN_MODEL = "mediapipe"
DEFAULT_CROP_SIZE_PX = 224
# modules that may register lifters when imported (besides this one): the model families
_LIFTERS = Registry("lifter", MODELS.modules)


@dataclass
class LiftOutput:
    joints_2d_crop_px: np.ndarray
    joints_rel_m: np.ndarray
    joints_std_m: np.ndarray | None = None


class Lifter(ABC):
    crop_size_px: int = DEFAULT_CROP_SIZE_PX
    wants_sides: bool = False
    model_name: str = ""

    @abstractmethod
    def __call__(self, crops_rgb: np.ndarray, joints_2d_crop_px: np.ndarray | None = None,
                 joints_conf: np.ndarray | None = None) -> LiftOutput:
        ...


def register_lifter(model_name: str):
    """Class decorator: the lifter for model files whose ``model_name`` is ``model_name``."""
    register = _LIFTERS.register(model_name)

    def deco(cls):
        register(cls)
        cls.model_name = model_name
        return cls

    return deco


def known_lifters() -> list[str]:
    return _LIFTERS.names()


def load_lifter(checkpoint, device: str = "cpu", expected_model: str | None = None) -> Lifter:
    """Load the model file ``checkpoint`` and wrap it in the lifter registered for its model.

    Raises :class:`CheckpointError` (naming the file) when the file is missing, corrupt, not a
    model file, holds a model without a lifter, or a model other than ``expected_model``.
    """
    if checkpoint is None or str(checkpoint) == "":
        raise CheckpointError(f"model {expected_model!r} needs a checkpoint (a model file written "
                              "by training)")
    try:
        model, meta = load_model(checkpoint, map_location="cpu")
    except CheckpointError:
        raise
    except Exception as err:  # e.g. a constructor argument this version does not know
        raise CheckpointError(f"model file {checkpoint} could not be rebuilt "
                              f"({type(err).__name__}: {err})") from err
    name = meta["model_name"]
    if expected_model is not None and name != expected_model:
        raise CheckpointError(f"model file {checkpoint} holds a {name!r} model, not {expected_model!r}")
    cls = _LIFTERS.get(name)
    if cls is None:
        raise CheckpointError(f"model file {checkpoint} holds a {name!r} model, which cannot run in "
                              f"the estimator; models that can: {', '.join(known_lifters())}")
    return cls(model, meta, device)


def check_model_choice(model: str, checkpoint: str | None) -> str | None:
    """None when ``model`` / ``checkpoint`` make a valid estimator configuration, else the reason
    (for the node's parameter callback; reads and checks the file)."""
    if model == BUILTIN_MODEL:
        return None
    if not checkpoint:
        return f"model {model!r} needs the parameter checkpoint (a model file written by training)"
    try:
        load_lifter(checkpoint, expected_model=model)
    except CheckpointError as err:
        return str(err)
    return None


def _torch_device(device: str) -> torch.device:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def _crop_size(meta: dict, default: int) -> int:
    extra = meta.get("extra") or {}
    for key in ("crop_size_px", "crop_size", "image_size"):
        if isinstance(extra.get(key), (int, float)) and extra[key] > 0:
            return int(extra[key])
    return int(default)


class _TorchLifter(Lifter):
    wants_sides = True

    def __init__(self, model: torch.nn.Module, meta: dict, device: str = "cpu"):
        self.device = _torch_device(device)
        self.model = model.to(self.device).eval()
        self.meta = meta

    def _inputs(self, crops_rgb, sides):
        crops = np.asarray(crops_rgb)
        if crops.ndim != 4 or crops.shape[1:] != (self.crop_size_px, self.crop_size_px, 3) \
                or crops.dtype != np.uint8:
            raise ValueError(f"crops must be (N, {self.crop_size_px}, {self.crop_size_px}, 3) uint8, "
                             f"got {crops.dtype} {crops.shape}")
        x = torch.from_numpy(crops).to(self.device).permute(0, 3, 1, 2).float().div_(255.0)
        if sides is None:
            sides = ["right"] * len(crops)
        side = torch.tensor([1 if s == "right" else 0 for s in sides], device=self.device)
        return x, side

    @torch.no_grad()
    def __call__(self, crops_rgb, joints_2d_crop_px=None, joints_conf=None, sides=None) -> LiftOutput:
        """The network's own 2D and wrist-relative 3D; the landmark network's 2D is not used.
        +0.5 px: the network was trained with pixel centres at integers, the estimator's crop
        coordinates are continuous (see the module docstring)."""
        x, side = self._inputs(crops_rgb, sides)
        out = self.model(x, side)
        return LiftOutput(out["joints_2d"].float().cpu().numpy() + 0.5,
                          out["joints_rel_m"].float().cpu().numpy())


@register_lifter("mano_regressor")
class ManoRegressorLifter(_TorchLifter):
    """MANO regressor: wrist-relative joints from the regressed MANO hand; 2D from its
    weak-perspective camera."""

    def __init__(self, model, meta, device="cpu"):
        super().__init__(model, meta, device)
        self.crop_size_px = _crop_size(meta, DEFAULT_CROP_SIZE_PX)


@register_lifter("zimmermann_brox")
class ZimmermannBroxLifter(_TorchLifter):
    """Zimmermann-Brox: HandSegNet -> mask crop -> PoseNet -> PosePrior on the estimator's crop;
    metres from the reference-bone length stored in the model (``ref_bone_m``)."""

    def __init__(self, model, meta, device="cpu"):
        super().__init__(model, meta, device)
        self.crop_size_px = _crop_size(meta, model.crop_size)


__all__ = ["Lifter", "LiftOutput", "register_lifter", "load_lifter", "known_lifters",
           "check_model_choice", "BUILTIN_MODEL", "CheckpointError"]
