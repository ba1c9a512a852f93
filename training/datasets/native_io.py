"""File access shared by the readers of the datasets' native layouts: every failure names the file
and what was expected there."""
from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np


class DatasetFormatError(ValueError):
    """A dataset file exists but does not hold what the dataset's layout says it should."""


def require_file(path: Path, what: str) -> Path:
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: not found (expected {what})")
    return Path(path)


def require_dir(path: Path, what: str) -> Path:
    if not Path(path).is_dir():
        raise FileNotFoundError(f"{path}: folder not found (expected {what})")
    return Path(path)


def read_json(path: Path, what: str):
    require_file(path, what)
    try:
        with open(path, "r", encoding="utf-8") as fh:
            return json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetFormatError(f"{path}: not valid JSON (expected {what}): {exc}") from exc


def as_array(value, shape: tuple, path, what: str, dtype=np.float32) -> np.ndarray:
    """``value`` as an array of ``shape`` (-1 = any length); finite; else DatasetFormatError."""
    try:
        arr = np.asarray(value, dtype=dtype)
    except (ValueError, TypeError) as exc:
        raise DatasetFormatError(f"{path}: {what}: not a numeric array ({exc})") from exc
    ok = arr.ndim == len(shape) and all(s == -1 or s == a for s, a in zip(shape, arr.shape))
    if not ok:
        want = "x".join("N" if s == -1 else str(s) for s in shape)
        raise DatasetFormatError(f"{path}: {what}: expected shape {want}, got {arr.shape}")
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        raise DatasetFormatError(f"{path}: {what}: contains NaN or inf")
    return arr


_IMREAD_RGB = getattr(cv2, "IMREAD_COLOR_RGB", None)  # OpenCV >= 4.10 decodes straight to RGB


def read_rgb(path: Path, what: str = "an RGB image") -> np.ndarray:
    """(H, W, 3) uint8 RGB."""
    require_file(path, what)
    img = cv2.imread(os.fspath(path), _IMREAD_RGB if _IMREAD_RGB is not None else cv2.IMREAD_COLOR)
    if img is None:
        raise DatasetFormatError(f"{path}: could not be decoded (expected {what})")
    return img if _IMREAD_RGB is not None else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_raw(path: Path, what: str) -> np.ndarray:
    """The stored pixels unchanged (PNG label maps / packed depth), any channel count."""
    require_file(path, what)
    img = cv2.imread(os.fspath(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DatasetFormatError(f"{path}: could not be decoded (expected {what})")
    return img


def project(K: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Pinhole projection of (N, 3) camera-frame points to (N, 2) pixels."""
    p = np.asarray(X, np.float64) @ np.asarray(K, np.float64).T
    return (p[:, :2] / p[:, 2:3]).astype(np.float32)


def load_mano_model(mano):
    """A MANO model dict from a path (file or folder, :func:`hand_pose_core.mano.io.load_mano`)
    or an already loaded dict (right hand); None stays None."""
    if mano is None or isinstance(mano, dict):
        return mano
    from hand_pose_core.mano.io import load_mano

    return load_mano(mano, "right")


def mano_root_joint(model: dict, betas: np.ndarray) -> np.ndarray:
    """MANO's root joint (the wrist) of the shaped rest hand, metres: what the global rotation
    turns about (``J_regressor[0] @ (v_template + shapedirs @ betas)``)."""
    v = np.asarray(model["v_template"], np.float64) + np.asarray(model["shapedirs"], np.float64) @ np.asarray(betas, np.float64)
    return np.asarray(model["J_regressor"], np.float64)[0] @ v
