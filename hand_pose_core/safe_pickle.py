"""Restricted unpickling for model files from users (e.g. the official MANO ``.pkl``).

``pickle.load`` runs whatever callables a file names, so a hostile file can execute code
(``os.system``, ``builtins.eval``, ...). :class:`RestrictedUnpickler` only resolves an explicit
allow-list of globals and refuses everything else with :class:`UnsafePickleError` at the moment
the name is read, before anything is called:

* numpy array/dtype/scalar reconstruction (what ``ndarray`` pickles are made of);
* inert builtins (``set``, ``frozenset``, ``complex``, ``bytearray``, ``object``);
* chumpy classes (``chumpy.ch.Ch``, ``chumpy.reordering.*``, ``chumpy.ch_ops.*``, ...) and
  scipy.sparse matrices are mapped to *our own* inert :class:`StandIn` classes that only record
  the constructor arguments and the ``__setstate__`` state. chumpy and scipy are never imported
  through the pickle (chumpy does not even import on Python >= 3.11 / numpy >= 1.24).

:func:`standin_to_numpy` then turns stand-ins into plain numpy arrays without chumpy:

* ``chumpy.ch.Ch`` -> its stored value ``x``;
* the pure re-orderings chumpy pickles as unevaluated expressions, evaluated from their pickled
  state: ``chumpy.reordering.Select`` (state ``a``, ``idxs``, ``preferred_shape``:
  ``a.ravel()[idxs].reshape(preferred_shape)``; the official MANO files store ``shapedirs`` this
  way, as the slice ``[:, :, :10]`` of a ``Ch`` holding a (778, 3, 20) array),
  ``chumpy.reordering.Reshape`` (``a``, ``newshape``) and ``chumpy.reordering.transpose``
  (``a``, ``axes``). Indices and shapes are checked, nesting is bounded (a cyclic or absurdly
  deep expression is a ValueError, not a RecursionError);
* ``scipy.sparse`` csc/csr/coo -> a dense array.

Any other chumpy expression (arithmetic, ...) is a ValueError naming its class.
"""
from __future__ import annotations

import io
import os
import pickle
from typing import Any, BinaryIO

import numpy as np

__all__ = [
    "UnsafePickleError",
    "StandIn",
    "RestrictedUnpickler",
    "safe_load",
    "safe_loads",
    "standin_to_numpy",
    "is_chumpy",
    "is_sparse",
]


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle referenced a global outside the allow-list; nothing from it was executed."""


def _numpy_core(submodule: str):
    # numpy 2 moved numpy.core -> numpy._core; importing numpy.core warns there.
    import importlib

    for base in ("numpy._core", "numpy.core"):
        try:
            return importlib.import_module(f"{base}.{submodule}")
        except ImportError:
            continue
    raise ImportError(f"numpy core module {submodule!r} not found")


def _numpy_globals() -> dict[tuple[str, str], Any]:
    multiarray = _numpy_core("multiarray")
    numeric = _numpy_core("numeric")
    allowed: dict[tuple[str, str], Any] = {}
    for base in ("numpy.core", "numpy._core"):
        allowed[(f"{base}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{base}.multiarray", "scalar")] = multiarray.scalar
        if hasattr(numeric, "_frombuffer"):
            allowed[(f"{base}.numeric", "_frombuffer")] = numeric._frombuffer
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    # numpy >= 1.25 pickles dtypes by class, e.g. numpy.dtypes.Float64DType.
    try:
        import numpy.dtypes as _dtypes  # noqa: PLC0415
    except ImportError:  # older numpy
        return allowed
    for name in dir(_dtypes):
        obj = getattr(_dtypes, name)
        if isinstance(obj, type) and issubclass(obj, np.dtype):
            allowed[("numpy.dtypes", name)] = obj
    return allowed


class StandIn:
    """Inert placeholder for a class we refuse to import (chumpy, scipy.sparse).

    Records positional/keyword constructor arguments (``args``, ``kwargs``) and the pickled
    state (``state``); has no behaviour. ``pickle_module`` / ``pickle_name`` name the class
    the file asked for.
    """

    pickle_module = ""
    pickle_name = ""

    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        obj.args = args
        obj.kwargs = kwargs
        obj.state = None
        return obj

    def __init__(self, *args, **kwargs):  # called for REDUCE-style construction
        self.args = args
        self.kwargs = kwargs

    def __setstate__(self, state):
        self.state = state

    def __reduce__(self):  # never re-pickle a stand-in as if it were the real class
        raise TypeError(f"stand-in for {self.qualname} cannot be pickled")

    @property
    def qualname(self) -> str:
        return f"{self.pickle_module}.{self.pickle_name}"

    def __repr__(self) -> str:
        keys = sorted(self.state) if isinstance(self.state, dict) else type(self.state).__name__
        return f"<StandIn {self.qualname} state={keys}>"


_STANDIN_CACHE: dict[tuple[str, str], type] = {}


def _standin_class(module: str, name: str) -> type:
    key = (module, name)
    if key not in _STANDIN_CACHE:
        _STANDIN_CACHE[key] = type(
            f"StandIn_{name}", (StandIn,), {"pickle_module": module, "pickle_name": name}
        )
    return _STANDIN_CACHE[key]


_CHUMPY_MODULES = {
    "chumpy", "chumpy.ch", "chumpy.ch_ops", "chumpy.reordering", "chumpy.linalg",
    "chumpy.logic", "chumpy.utils",
}
_SPARSE_MODULE_PREFIX = "scipy.sparse"
_SPARSE_NAMES = {
    f"{fmt}_{kind}" for fmt in ("csc", "csr", "coo") for kind in ("matrix", "array")
}


# Plain data constructors that chumpy/scipy states use (e.g. chumpy's set of dirty vars).
_INERT_BUILTINS = {
    "object": object, "set": set, "frozenset": frozenset, "complex": complex,
    "bytearray": bytearray,
}


def _latin1_encode(obj, encoding="latin1", errors="strict"):
    """How Python 3 writes ``bytes`` in protocol-2 pickles; only text codecs, no tricks."""
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8", "ascii"):
        raise UnsafePickleError(
            f"_codecs.encode is only allowed for text with latin1/utf-8, got {encoding!r}"
        )
    return obj.encode(encoding, errors)


def _safe_reconstructor(cls, base, state):
    """Replacement for ``copyreg._reconstructor`` limited to our stand-ins."""
    if not (isinstance(cls, type) and issubclass(cls, StandIn)) or base is not object:
        raise UnsafePickleError(
            f"copyreg._reconstructor is only allowed for stand-in classes, got {cls!r}/{base!r}"
        )
    obj = cls.__new__(cls)
    if state is not None:
        obj.__setstate__(state)
    return obj


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only allow-listed globals (see module docstring).

    Args:
        file: binary file object.
        source: name used in error messages (usually the file path).
        encoding: how Python-2 ``str`` objects are decoded ('latin1' for MANO/SMPL files,
            which also keeps numpy array buffers intact).
    """

    _NUMPY = None

    def __init__(self, file: BinaryIO, *, source: str = "<bytes>", encoding: str = "latin1"):
        super().__init__(file, encoding=encoding, fix_imports=True)
        self.source = source
        if RestrictedUnpickler._NUMPY is None:
            RestrictedUnpickler._NUMPY = _numpy_globals()

    def find_class(self, module: str, name: str):
        allowed = self._NUMPY.get((module, name))
        if allowed is not None:
            return allowed
        if module in _CHUMPY_MODULES:
            return _standin_class(module, name)
        if module.startswith(_SPARSE_MODULE_PREFIX) and name in _SPARSE_NAMES:
            return _standin_class(module, name)
        if (module, name) in {("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor")}:
            return _safe_reconstructor
        if (module, name) == ("_codecs", "encode"):  # Python 3 protocol-2 bytes
            return _latin1_encode
        if module in ("__builtin__", "builtins") and name in _INERT_BUILTINS:
            return _INERT_BUILTINS[name]
        raise UnsafePickleError(
            f"{self.source}: refusing to load global '{module}.{name}': it is not on the "
            "allow-list of hand_pose_core.safe_pickle (numpy arrays, chumpy and scipy.sparse "
            "stand-ins). The file may be malicious or not a model file."
        )

    def persistent_load(self, pid):
        raise UnsafePickleError(f"{self.source}: persistent ids are not allowed ({pid!r})")


def safe_loads(data: bytes, *, source: str = "<bytes>", encoding: str = "latin1") -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler`."""
    return RestrictedUnpickler(io.BytesIO(data), source=source, encoding=encoding).load()


def safe_load(path_or_file: str | os.PathLike | BinaryIO, *, encoding: str = "latin1") -> Any:
    """Unpickle a file (path or binary file object) with :class:`RestrictedUnpickler`.

    Raises:
        FileNotFoundError: the path does not exist.
        UnsafePickleError: the file references a global outside the allow-list.
        ValueError: the file is not a readable pickle (truncated, corrupt, wrong format).
    """
    if isinstance(path_or_file, (str, os.PathLike)):
        path = os.fspath(path_or_file)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"pickle file not found: {path}")
        with open(path, "rb") as fh:
            return safe_load(fh, encoding=encoding)
    source = getattr(path_or_file, "name", "<file>")
    try:
        return RestrictedUnpickler(path_or_file, source=str(source), encoding=encoding).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError,
            AttributeError, KeyError, UnicodeDecodeError, OverflowError) as exc:
        raise ValueError(
            f"{source}: not a valid pickle file (corrupt or truncated?): "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def is_chumpy(obj: Any) -> bool:
    """True for a stand-in of a chumpy class."""
    return isinstance(obj, StandIn) and obj.pickle_module.startswith("chumpy")


def is_sparse(obj: Any) -> bool:
    """True for a stand-in of a scipy.sparse matrix/array."""
    return isinstance(obj, StandIn) and obj.pickle_module.startswith(_SPARSE_MODULE_PREFIX)


_MAX_DENSE_ELEMENTS = 1 << 28  # 2 GiB of float64: far above any model matrix


def _sparse_to_dense(obj: StandIn) -> np.ndarray:
    st = obj.state
    if isinstance(st, tuple) and st and isinstance(st[0], dict):  # (dict, slots)
        st = st[0]
    if not isinstance(st, dict):
        raise ValueError(f"{obj.qualname}: unexpected pickled state {type(st).__name__}")
    shape = st.get("_shape", st.get("shape"))
    if shape is None:
        raise ValueError(f"{obj.qualname}: pickled state has no shape")
    rows, cols = (int(s) for s in shape)
    if rows < 0 or cols < 0 or rows * cols > _MAX_DENSE_ELEMENTS:
        raise ValueError(f"{obj.qualname}: implausible shape {(rows, cols)} for a model matrix")
    data = np.asarray(st["data"])
    fmt = obj.pickle_name[:3]
    out = np.zeros((rows, cols), dtype=data.dtype if data.size else np.float64)
    if fmt in ("csc", "csr"):
        indices = np.asarray(st["indices"], dtype=np.int64)
        indptr = np.asarray(st["indptr"], dtype=np.int64)
        major = cols if fmt == "csc" else rows
        minor = rows if fmt == "csc" else cols
        if indptr.shape != (major + 1,) or indptr[-1] > len(indices) or len(indices) != len(data):
            raise ValueError(f"{obj.qualname}: inconsistent sparse index arrays")
        if indices.size and (indices.min() < 0 or indices.max() >= minor):
            raise ValueError(f"{obj.qualname}: sparse index out of range")
        major_idx = np.repeat(np.arange(major), np.diff(indptr))
        nnz = indptr[-1]
        if fmt == "csc":
            np.add.at(out, (indices[:nnz], major_idx), data[:nnz])
        else:
            np.add.at(out, (major_idx, indices[:nnz]), data[:nnz])
    else:  # coo
        if "coords" in st:
            r, c = (np.asarray(a, dtype=np.int64) for a in st["coords"])
        else:
            r, c = np.asarray(st["row"], np.int64), np.asarray(st["col"], np.int64)
        np.add.at(out, (r, c), data)
    return out


_MAX_CHUMPY_DEPTH = 32


def _standin_state(obj: StandIn) -> dict:
    st = obj.state
    if isinstance(st, tuple) and st and isinstance(st[0], dict):  # (dict, slots)
        st = st[0]
    if not isinstance(st, dict):
        raise ValueError(f"chumpy object {obj.qualname}: unexpected pickled state "
                         f"{type(st).__name__}")
    return st


def _chumpy_operand(obj: StandIn, st: dict, key: str, depth: int) -> np.ndarray:
    if key not in st:
        raise ValueError(f"chumpy object {obj.qualname}: pickled state has no '{key}'")
    value = np.asarray(_to_numpy(st[key], depth + 1))
    if value.dtype.kind not in "biuf":
        raise ValueError(f"chumpy object {obj.qualname}: '{key}' is not numeric "
                         f"(dtype {value.dtype})")
    return value


def _shape_tuple(obj: StandIn, value: Any, what: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in np.atleast_1d(np.asarray(value)))
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"chumpy object {obj.qualname}: bad {what} {value!r}") from exc
    if any(s < 0 for s in shape):
        raise ValueError(f"chumpy object {obj.qualname}: negative entry in {what} {shape}")
    return shape


def _select(obj: StandIn, st: dict, depth: int) -> np.ndarray:
    """chumpy.reordering.Select: ``a.ravel()[idxs].reshape(preferred_shape)``."""
    a = _chumpy_operand(obj, st, "a", depth).ravel()
    idxs = _chumpy_operand(obj, st, "idxs", depth).ravel()
    if idxs.dtype.kind not in "biu":
        raise ValueError(f"chumpy object {obj.qualname}: 'idxs' must be integers, "
                         f"got dtype {idxs.dtype}")
    idxs = idxs.astype(np.int64)
    if idxs.size and (idxs.min() < 0 or idxs.max() >= a.size):
        raise ValueError(
            f"chumpy object {obj.qualname}: 'idxs' out of range [0, {a.size}) "
            f"(min {idxs.min()}, max {idxs.max()})"
        )
    shape = st.get("preferred_shape")
    shape = (idxs.size,) if shape is None else _shape_tuple(obj, shape, "preferred_shape")
    if int(np.prod(shape)) != idxs.size:
        raise ValueError(f"chumpy object {obj.qualname}: preferred_shape {shape} does not hold "
                         f"{idxs.size} selected values")
    return a[idxs].reshape(shape)


def _reshape(obj: StandIn, st: dict, depth: int) -> np.ndarray:
    """chumpy.reordering.Reshape: ``a.reshape(newshape)``."""
    a = _chumpy_operand(obj, st, "a", depth)
    shape = _shape_tuple(obj, st.get("newshape"), "newshape")
    try:
        return a.reshape(shape)
    except ValueError as exc:
        raise ValueError(f"chumpy object {obj.qualname}: cannot reshape {a.shape} to "
                         f"{shape}") from exc


def _transpose(obj: StandIn, st: dict, depth: int) -> np.ndarray:
    """chumpy.reordering.transpose: ``np.transpose(a, axes)`` (axes None = reversed)."""
    a = _chumpy_operand(obj, st, "a", depth)
    axes = st.get("axes")
    if axes is not None:
        axes = _shape_tuple(obj, axes, "axes")
        if sorted(axes) != list(range(a.ndim)):
            raise ValueError(f"chumpy object {obj.qualname}: axes {axes} do not permute "
                             f"{a.ndim} dimensions")
    return np.ascontiguousarray(np.transpose(a, axes))


_CHUMPY_EXPRESSIONS = {
    ("chumpy.reordering", "Select"): _select,
    ("chumpy.reordering", "Reshape"): _reshape,
    ("chumpy.reordering", "transpose"): _transpose,
}


def _chumpy_to_numpy(obj: StandIn, depth: int) -> np.ndarray:
    if depth > _MAX_CHUMPY_DEPTH:
        raise ValueError(
            f"chumpy object {obj.qualname}: expression nested deeper than "
            f"{_MAX_CHUMPY_DEPTH} levels (cyclic or not a model file)"
        )
    st = _standin_state(obj)
    evaluate = _CHUMPY_EXPRESSIONS.get((obj.pickle_module, obj.pickle_name))
    if evaluate is not None:
        return evaluate(obj, st, depth)
    if "x" in st:  # chumpy.ch.Ch (and subclasses) hold their value in x
        return np.asarray(_to_numpy(st["x"], depth + 1))
    raise ValueError(
        f"chumpy object {obj.qualname} has no stored value 'x' (an unevaluated chumpy "
        "expression this loader does not evaluate); cannot convert it without chumpy"
    )


def _to_numpy(obj: Any, depth: int) -> Any:
    if is_sparse(obj):
        return _sparse_to_dense(obj)
    if is_chumpy(obj):
        return _chumpy_to_numpy(obj, depth)
    return obj


def standin_to_numpy(obj: Any) -> Any:
    """Convert stand-ins to numpy (see the module docstring): chumpy ``Ch`` -> its ``x`` value,
    chumpy ``Select`` / ``Reshape`` / ``transpose`` -> the evaluated array, sparse -> dense.

    Other values are returned unchanged. Raises ValueError (naming the chumpy class) for a
    chumpy expression it cannot evaluate or whose state is inconsistent.
    """
    return _to_numpy(obj, 0)
