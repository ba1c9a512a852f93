"""Mesh export (.obj / .ply / anything trimesh writes) for MANO outputs."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["export_mesh"]

_SUFFIXES = (".obj", ".ply", ".stl", ".glb", ".off")


def export_mesh(vertices, faces, path: str | os.PathLike) -> Path:
    """Write one triangle mesh with trimesh; the format follows the file suffix.

    Args:
        vertices: ``[V, 3]`` array or tensor (any unit; written as given, no processing or
            vertex merging, so indices stay MANO's).
        faces: ``[F, 3]`` integer triangle indices into ``vertices``.
        path: output file, suffix one of .obj, .ply, .stl, .glb, .off.

    Returns the written path. Raises ValueError for bad shapes, out-of-range indices,
    non-finite vertices or an unsupported suffix.
    """
    import trimesh

    v = _to_numpy(vertices).astype(np.float64)
    f = _to_numpy(faces)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices must be [V, 3], got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3 or f.dtype.kind not in "iu":
        raise ValueError(f"faces must be an integer array [F, 3], got {f.shape} {f.dtype}")
    if f.size and (f.min() < 0 or f.max() >= len(v)):
        raise ValueError(f"faces index vertices outside [0, {len(v)})")
    if not np.isfinite(v).all():
        raise ValueError("vertices contain NaN or Inf")
    p = Path(path)
    if p.suffix.lower() not in _SUFFIXES:
        raise ValueError(f"unsupported mesh format {p.suffix!r}; use one of {_SUFFIXES}")
    p.parent.mkdir(parents=True, exist_ok=True)
    mesh = trimesh.Trimesh(vertices=v, faces=f.astype(np.int64), process=False)
    mesh.export(p)
    return p


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)
