"""Loading and saving MANO model files without chumpy.

A MANO model here is a plain ``dict`` of numpy arrays in the official key layout (metres):

============== ============== ===========================================================
key            shape          meaning
============== ============== ===========================================================
v_template     (778, 3) f64   rest-pose template vertices
f              (1538, 3) i64  triangles
J_regressor    (16, 778) f64  dense joint regressor (sparse in the official file)
weights        (778, 16) f64  linear-blend-skinning weights
shapedirs      (778, 3, 10)   shape blend shapes (betas)
posedirs       (778, 3, 135)  pose blend shapes over flattened (R - I) of the 15 finger joints
kintree_table  (2, 16) i64    row 0: parent of each joint (root's entry is ignored)
hands_components (45, 45)     PCA basis of the 45 finger pose parameters (rows = components)
hands_mean     (45,)          mean finger pose (axis-angle)
side           str            'right' or 'left'
============== ============== ===========================================================

Official files (``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl``) are licensed by MPI and must be
downloaded by the user from https://mano.is.tue.mpg.de; they are read with
:mod:`hand_pose_core.safe_pickle`, never with ``pickle.load``, and without chumpy. Their
layout (Python 2 cPickle, protocol 2, read with ``encoding='latin1'``): ``shapedirs`` is a
``chumpy.reordering.Select`` (the slice ``[:, :, :10]`` of a ``chumpy.ch.Ch`` holding a
(778, 3, 20) array), evaluated from its pickled state; ``J_regressor`` a
``scipy.sparse.csc.csc_matrix`` (densified); ``f`` uint32; ``kintree_table`` with 4294967295
as the root's parent; extra keys (``J``, ``hands_coeffs``, ``bs_style``, ...) are ignored.
"""
from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from hand_pose_core.safe_pickle import UnsafePickleError, safe_load, standin_to_numpy

__all__ = [
    "MANO_SHAPES",
    "MANO_PARENTS",
    "load_mano",
    "save_mano_npz",
    "write_mano_pkl",
    "validate_mano",
    "resolve_mano_path",
]

N_VERTS, N_FACES, N_JOINTS = 778, 1538, 16

MANO_SHAPES: dict[str, tuple[int, ...]] = {
    "v_template": (N_VERTS, 3),
    "f": (N_FACES, 3),
    "J_regressor": (N_JOINTS, N_VERTS),
    "weights": (N_VERTS, N_JOINTS),
    "shapedirs": (N_VERTS, 3, 10),
    "posedirs": (N_VERTS, 3, 135),
    "kintree_table": (2, N_JOINTS),
    "hands_components": (45, 45),
    "hands_mean": (45,),
}

# MANO internal joint order: wrist, index1-3, middle1-3, little1-3, ring1-3, thumb1-3.
MANO_PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)

_INT_KEYS = ("f", "kintree_table")


def resolve_mano_path(mano_root: str | os.PathLike, side: str = "right") -> Path:
    """Return the model file for ``side``: ``mano_root`` itself if it is a file, else
    ``MANO_RIGHT``/``MANO_LEFT`` with suffix ``.pkl`` or ``.npz`` inside the folder."""
    side = _check_side(side)
    root = Path(mano_root).expanduser()
    if root.is_file():
        return root
    if root.is_dir():
        for suffix in (".pkl", ".npz"):
            cand = root / f"MANO_{side.upper()}{suffix}"
            if cand.is_file():
                return cand
        raise FileNotFoundError(
            f"no MANO_{side.upper()}.pkl or MANO_{side.upper()}.npz in {root}. Download the "
            "models from https://mano.is.tue.mpg.de (licence required) and point mano_root there."
        )
    raise FileNotFoundError(f"MANO model path does not exist: {root}")


def _check_side(side: str) -> str:
    s = str(side).lower()
    if s not in ("right", "left"):
        raise ValueError(f"side must be 'right' or 'left', got {side!r}")
    return s


def _side_from_name(path: Path) -> str | None:
    name = path.name.lower()
    if "left" in name:
        return "left"
    if "right" in name:
        return "right"
    return None


def validate_mano(model: dict[str, Any], source: str = "<model>") -> dict[str, Any]:
    """Check keys, shapes and finiteness; return a copy with canonical dtypes.

    Raises ValueError naming ``source`` and the offending key.
    """
    if not isinstance(model, dict):
        raise ValueError(f"{source}: a MANO model must be a dict, got {type(model).__name__}")
    out: dict[str, Any] = {}
    for key, shape in MANO_SHAPES.items():
        if key not in model:
            raise ValueError(f"{source}: MANO model is missing key '{key}'")
        try:
            arr = np.asarray(standin_to_numpy(model[key]))
        except ValueError as exc:
            raise ValueError(f"{source}: key '{key}': {exc}") from exc
        if arr.shape != shape:
            raise ValueError(
                f"{source}: key '{key}' has shape {arr.shape}, expected {shape}"
            )
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"{source}: key '{key}' is not numeric (dtype {arr.dtype})")
        if key in _INT_KEYS:
            arr = arr.astype(np.int64)
        else:
            arr = arr.astype(np.float64)
            if not np.isfinite(arr).all():
                raise ValueError(f"{source}: key '{key}' contains NaN or Inf")
        out[key] = arr
    f = out["f"]
    if f.min() < 0 or f.max() >= N_VERTS:
        raise ValueError(f"{source}: key 'f' has vertex indices outside [0, {N_VERTS})")
    parents = out["kintree_table"][0].copy()
    parents[0] = -1
    if tuple(int(p) for p in parents) != MANO_PARENTS:
        raise ValueError(
            f"{source}: kintree_table parents {parents.tolist()} differ from MANO's "
            f"{list(MANO_PARENTS)}"
        )
    side = model.get("side")
    if side is not None:
        if isinstance(side, np.ndarray):
            side = side.item()
        out["side"] = _check_side(side)
    for extra in ("bs_type", "bs_style"):
        if extra in model and isinstance(model[extra], str):
            out[extra] = model[extra]
    return out


def load_mano(
    path: str | os.PathLike,
    side: str | None = None,
    *,
    fix_left_shapedirs: bool = True,
) -> dict[str, Any]:
    """Load a MANO model (official ``.pkl`` or our ``.npz`` export) as numpy arrays.

    Args:
        path: a model file, or a folder holding ``MANO_RIGHT/LEFT.pkl|.npz``.
        side: 'right' / 'left'. Picks the file inside a folder; for a file it overrides what
            the file name (``...LEFT...`` / ``...RIGHT...``) or a stored ``side`` entry says.
        fix_left_shapedirs: the official ``MANO_LEFT.pkl`` has the sign of the x component of
            its shape blend shapes wrong (its shapes are not the mirror of the right hand's);
            the community fix ``shapedirs[:, 0, :] *= -1`` is applied to left models read from
            a ``.pkl`` in the official layout. ``.npz`` files written by
            :func:`save_mano_npz` already hold corrected values and are never changed.
            Pass False to get the file's values unchanged.

    Returns:
        dict with the keys of :data:`MANO_SHAPES` plus ``side`` (see module docstring).

    Raises:
        FileNotFoundError, UnsafePickleError, ValueError (corrupt file, missing key, wrong
        shape), each naming the file.
    """
    p = Path(path).expanduser()
    if p.is_dir():
        p = resolve_mano_path(p, side or "right")
    if not p.is_file():
        raise FileNotFoundError(f"MANO model file not found: {p}")
    src = str(p)
    suffix = p.suffix.lower()
    if suffix == ".npz":
        raw = _read_npz(p)
        official_layout = False
    elif suffix in (".pkl", ".pickle"):
        try:
            raw = safe_load(p, encoding="latin1")
        except UnsafePickleError:
            raise
        except ValueError as exc:
            raise ValueError(f"{src}: cannot read MANO pickle: {exc}") from exc
        official_layout = True
    else:
        raise ValueError(f"{src}: unsupported MANO file type '{p.suffix}' (use .pkl or .npz)")
    model = validate_mano(raw, src)
    resolved = (
        _check_side(side) if side is not None else model.get("side") or _side_from_name(p)
    )
    if resolved is None:
        raise ValueError(
            f"{src}: cannot tell whether this is a right or left hand model (no 'side' entry, "
            "no LEFT/RIGHT in the file name); pass side='right' or side='left'"
        )
    model["side"] = resolved
    if official_layout and resolved == "left" and fix_left_shapedirs:
        model["shapedirs"][:, 0, :] *= -1.0
    return model


def _read_npz(p: Path) -> dict[str, Any]:
    try:
        with np.load(p, allow_pickle=False) as data:
            raw = {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise ValueError(
            f"{p}: cannot read MANO .npz (corrupt or truncated?): {type(exc).__name__}: {exc}"
        ) from exc
    if "side" in raw:
        raw["side"] = str(raw["side"])
    return raw


def save_mano_npz(model: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write a (validated, already side-corrected) model to a pickle-free ``.npz``.

    Note: an ``.npz`` converted from the official files is still covered by the MANO licence;
    keep it out of version control.
    """
    m = validate_mano(model, "<model>")
    side = m.get("side") or model.get("side")
    if side is None:
        raise ValueError("save_mano_npz: the model has no 'side' entry")
    p = Path(path)
    arrays = {k: m[k] for k in MANO_SHAPES}
    np.savez(p, side=np.array(_check_side(side)), **arrays)
    return p if p.suffix == ".npz" else p.with_name(p.name + ".npz")


def write_mano_pkl(model: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``model`` as a pickle in the official MANO layout (for tests and tools).

    Arrays are plain numpy, ``J_regressor`` a ``scipy.sparse.csc_matrix`` and
    ``bs_type`` 'lrotmin', like the official files, but without chumpy objects. There is no
    ``side`` key (the official files have none): the side comes from the file name or the
    ``side`` argument of :func:`load_mano`. Real model files come from MPI; this writer is
    for synthetic models. Values are written exactly as given: pass a left model that
    carries the official shapedirs sign error if the loader's fix should apply.
    """
    import scipy.sparse as sp

    m = validate_mano(model, "<model>")
    out: dict[str, Any] = {k: m[k] for k in MANO_SHAPES}
    out["J_regressor"] = sp.csc_matrix(m["J_regressor"])
    out["f"] = m["f"].astype(np.uint32)
    out["kintree_table"] = m["kintree_table"].astype(np.int64)
    out["bs_type"] = "lrotmin"
    out["bs_style"] = "lbs"
    p = Path(path)
    with open(p, "wb") as fh:
        pickle.dump(out, fh, protocol=2)
    return p
