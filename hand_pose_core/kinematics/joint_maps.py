"""Joint-order maps between the hand conventions the project meets.

Every format here has 21 joints per hand. ``TO_CANONICAL[fmt][i]`` is the index, in ``fmt``, of
canonical joint ``i`` (so ``canonical = joints_fmt[..., TO_CANONICAL[fmt], :]``).

Formats:
    'canonical' (aliases 'freihand', 'mediapipe', 'openpose', 'manopth'):
        0 wrist; 1-4 thumb CMC, MCP, IP, tip; 5-8 index MCP, PIP, DIP, tip; 9-12 middle;
        13-16 ring; 17-20 pinky (see :mod:`hand_pose_core.skeleton`).
    'mano16': MANO's internal 16 joints (wrist, index1-3, middle1-3, little1-3, ring1-3,
        thumb1-3) followed by the 5 fingertips (which MANO models as vertices) in the order
        thumb, index, middle, ring, pinky -> 21 joints. To convert a bare 16-joint MANO array,
        append the tips first (:func:`append_mano_tips`), or take ``[..., :16, :]`` of a result.
    'rhd': Rendered Hand Pose dataset, one hand (RHD stores 42 = left 0-20, right 21-41; slice
        one hand first). Wrist first, then each finger tip-first (thumb, index, middle, ring,
        pinky).
    'interhand': InterHand2.6M, one hand (the 42-joint arrays hold the right hand at 0-20 and the
        left at 21-41). Each finger tip-first (thumb4..thumb1, index4..1, middle4..1, ring4..1,
        pinky4..1), wrist last (20). Order as published with the dataset (skeleton.txt).
"""
from __future__ import annotations

from typing import Any

import numpy as np

NUM_JOINTS = 21

_CANONICAL_ALIASES = ("canonical", "freihand", "mediapipe", "openpose", "manopth")

TO_CANONICAL: dict[str, tuple[int, ...]] = {
    "canonical": tuple(range(NUM_JOINTS)),
    "mano16": (0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20),
    "rhd": (0, 4, 3, 2, 1, 8, 7, 6, 5, 12, 11, 10, 9, 16, 15, 14, 13, 20, 19, 18, 17),
    "interhand": (20, 3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12, 19, 18, 17, 16),
}


def _inverse(perm: tuple[int, ...]) -> tuple[int, ...]:
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return tuple(inv)


# FROM_CANONICAL[fmt][k] is the canonical index of joint k of ``fmt``.
FROM_CANONICAL: dict[str, tuple[int, ...]] = {k: _inverse(v) for k, v in TO_CANONICAL.items()}

FORMATS: tuple[str, ...] = tuple(sorted(set(TO_CANONICAL) | set(_CANONICAL_ALIASES)))


def normalize_format(name: str) -> str:
    """Map a format name or alias to its key in :data:`TO_CANONICAL` (case-insensitive)."""
    if not isinstance(name, str):
        raise TypeError(f"joint format must be a string, got {type(name).__name__}")
    key = name.strip().lower()
    if key in _CANONICAL_ALIASES:
        return "canonical"
    if key in TO_CANONICAL:
        return key
    raise ValueError(f"unknown joint format {name!r}; known: {', '.join(FORMATS)}")


def index_map(src: str, dst: str) -> tuple[int, ...]:
    """Indices ``idx`` such that ``joints_dst = joints_src[..., idx, :]``."""
    src_k, dst_k = normalize_format(src), normalize_format(dst)
    to_canon = TO_CANONICAL[src_k]
    # dst joint k is canonical joint FROM_CANONICAL[dst][k], found in src at to_canon[that].
    return tuple(to_canon[c] for c in FROM_CANONICAL[dst_k])


def _take(x: Any, idx: tuple[int, ...], axis: int) -> Any:
    if isinstance(x, np.ndarray):
        return np.take(x, idx, axis=axis)
    try:
        import torch
    except ImportError:  # torch is optional for numpy users
        torch = None
    if torch is not None and isinstance(x, torch.Tensor):
        return torch.index_select(x, axis, torch.as_tensor(idx, device=x.device, dtype=torch.long))
    raise TypeError(f"joints must be a numpy array or torch tensor, got {type(x).__name__}")


def convert_joints(joints: Any, src: str, dst: str, axis: int = -2) -> Any:
    """Reorder 21 joints from format ``src`` to ``dst``.

    Args:
        joints: numpy array or torch tensor with 21 joints along ``axis`` and any other dims,
            e.g. ``[..., 21, 3]`` (default ``axis=-2``) or per-joint scores ``[..., 21]``
            (``axis=-1``).
        src, dst: format names, see the module docstring.
    Returns:
        A new array/tensor of the same type, dtype and shape (a copy, even when src == dst).
    """
    if not hasattr(joints, "shape"):
        raise TypeError(
            f"joints must be a numpy array or torch tensor, got {type(joints).__name__}"
        )
    ndim = len(joints.shape)
    if ndim == 0 or not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} out of range for joints of shape {tuple(joints.shape)}")
    n = joints.shape[axis]
    if n != NUM_JOINTS:
        hint = " (append the 5 fingertips to MANO's 16 joints: append_mano_tips)" if n == 16 else ""
        raise ValueError(
            f"expected {NUM_JOINTS} joints along axis {axis}, got shape {tuple(joints.shape)}{hint}"
        )
    return _take(joints, index_map(src, dst), axis % ndim)


def append_mano_tips(joints16: Any, tips5: Any) -> Any:
    """Concatenate MANO's 16 joints ``[..., 16, D]`` and 5 tips ``[..., 5, D]`` (thumb, index,
    middle, ring, pinky) into the 21-joint 'mano16' format."""
    if joints16.shape[-2] != 16 or tips5.shape[-2] != 5:
        raise ValueError(
            f"expected [...,16,D] joints and [...,5,D] tips, got {tuple(joints16.shape)} and "
            f"{tuple(tips5.shape)}"
        )
    if isinstance(joints16, np.ndarray):
        return np.concatenate([joints16, tips5], axis=-2)
    import torch

    return torch.cat([joints16, tips5], dim=-2)


__all__ = [
    "TO_CANONICAL", "FROM_CANONICAL", "FORMATS", "normalize_format", "index_map",
    "convert_joints", "append_mano_tips",
]
