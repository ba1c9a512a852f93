"""Optional Python packages some networks need, imported with an error that says what to install.

The trained networks (``mano_regressor``, ``diffusion_pose``, ``zimmermann_brox``) use
torchvision (ResNet encoders) and diffusers (DDPM/DDIM schedulers), both in the package's
``train`` extra, not in the runtime dependencies of the default MediaPipe pipeline. Without this
a node started with ``model:=diffusion_pose`` on a runtime-only install died with a bare
``ModuleNotFoundError: No module named 'diffusers'``.
"""
from __future__ import annotations

import importlib


class MissingDependencyError(ImportError):
    """A network needs a Python package that is not installed (the message names both)."""


def require(module: str, needed_for: str):
    """Import ``module`` (dotted) or raise :class:`MissingDependencyError` naming the package,
    what needs it and how to install it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        top = module.split(".")[0]
        if err.name is not None and err.name.split(".")[0] != top:
            raise  # the package is there but one of its own imports failed: show that error
        raise MissingDependencyError(
            f"{needed_for} needs the Python package '{top}', which is not installed: "
            f"pip install '{top}' (or install hand_pose_ros with its 'train' extra: "
            f"pip install -e '.[train]')") from err


__all__ = ["MissingDependencyError", "require"]
