"""A tiny writer of protocol-2 pickles *as Python 2's cPickle writes them*, for test fixtures.

The official MANO files were written by Python 2 (cPickle, protocol 2) with chumpy, scipy and
numpy objects inside. Python 3's pickler cannot reproduce them: it writes ``bytes`` through
``_codecs.encode``, names ``builtins`` instead of ``__builtin__`` and would need the real
classes (chumpy does not even import here). This module emits the opcodes directly:

* Python 2 ``str`` -> ``SHORT_BINSTRING`` / ``BINSTRING`` (read back with ``encoding='latin1'``);
* numpy arrays -> ``numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), 'b')`` + ``BUILD``
  with ``(1, shape, dtype, is_fortran, raw_bytes_as_str)``, dtypes -> ``numpy.dtype(typestr,
  0, 1)`` + ``BUILD (3, byteorder, None, None, None, -1, -1, 0)``, memoised like cPickle does;
* new-style class instances (chumpy ``Ch`` / ``Select``, ``scipy.sparse.csc.csc_matrix``) ->
  ``GLOBAL`` + ``EMPTY_TUPLE`` + ``NEWOBJ`` + state + ``BUILD`` (``copy_reg.__reduce_ex__``
  with protocol 2);
* ``set`` -> ``__builtin__.set([...])`` via ``REDUCE``.

Only what the fixtures need; nothing here imports chumpy or scipy.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Py2Object", "Py2Set", "Py2Global", "dumps_py2"]


@dataclass(eq=False)
class Py2Object:
    """An instance of ``module.name`` pickled with ``NEWOBJ`` and ``state`` (``BUILD``)."""

    module: str
    name: str
    state: Any = None


@dataclass(eq=False)
class Py2Set:
    """A Python 2 ``set`` (``__builtin__.set`` called with a list)."""

    items: list = field(default_factory=list)


@dataclass(eq=False)
class Py2Global:
    """A bare reference to a global ``module.name`` (e.g. for hostile-file tests)."""

    module: str
    name: str


class _Writer:
    def __init__(self) -> None:
        self.out = bytearray(b"\x80\x02")  # PROTO 2
        self.memo: dict[Any, int] = {}
        self.keep: list = []  # objects whose id() is a memo key stay alive (ids are not reused)

    # ------------------------------------------------------------------ memo
    def _put(self, key, obj: Any = None) -> None:
        self.keep.append(obj)
        idx = len(self.keep) - 1
        self.memo[key] = idx
        self.out += b"q" + bytes([idx]) if idx < 256 else b"r" + struct.pack("<I", idx)

    def _get(self, key) -> bool:
        idx = self.memo.get(key)
        if idx is None:
            return False
        self.out += b"h" + bytes([idx]) if idx < 256 else b"j" + struct.pack("<I", idx)
        return True

    # ------------------------------------------------------------------ atoms
    def _global(self, module: str, name: str) -> None:
        key = ("global", module, name)
        if self._get(key):
            return
        self.out += b"c" + module.encode() + b"\n" + name.encode() + b"\n"
        self._put(key)

    def _str(self, data: bytes) -> None:  # a Python 2 str
        if len(data) < 256:
            self.out += b"U" + bytes([len(data)]) + data
        else:
            self.out += b"T" + struct.pack("<i", len(data)) + data

    def _int(self, v: int) -> None:
        if 0 <= v < 256:
            self.out += b"K" + bytes([v])
        elif 0 <= v < 65536:
            self.out += b"M" + struct.pack("<H", v)
        elif -(2**31) <= v < 2**31:
            self.out += b"J" + struct.pack("<i", v)
        else:  # LONG1, two's complement little endian
            n = (v.bit_length() + 8) // 8
            self.out += b"\x8a" + bytes([n]) + v.to_bytes(n, "little", signed=True)

    # ------------------------------------------------------------------ values
    def save(self, obj: Any) -> None:
        if obj is None:
            self.out += b"N"
        elif obj is True:
            self.out += b"\x88"
        elif obj is False:
            self.out += b"\x89"
        elif isinstance(obj, (int, np.integer)):
            self._int(int(obj))
        elif isinstance(obj, (float, np.floating)):
            self.out += b"G" + struct.pack(">d", float(obj))
        elif isinstance(obj, str):
            self._str(obj.encode("latin1"))
        elif isinstance(obj, bytes):
            self._str(obj)
        elif isinstance(obj, tuple):
            self._tuple(obj)
        elif isinstance(obj, list):
            self.out += b"]"
            self._put(("id", id(obj)), obj)
            self._batch(obj, b"a", lambda item: self.save(item))
        elif isinstance(obj, dict):
            self.out += b"}"
            self._put(("id", id(obj)), obj)
            self._dict_items(list(obj.items()))
        elif isinstance(obj, np.dtype):
            self._dtype(obj)
        elif isinstance(obj, np.ndarray):
            self._ndarray(obj)
        elif isinstance(obj, Py2Object):
            if self._get(("id", id(obj))):
                return
            self._global(obj.module, obj.name)
            self.out += b")\x81"  # EMPTY_TUPLE, NEWOBJ
            self._put(("id", id(obj)), obj)
            if obj.state is not None:
                self.save(obj.state)
                self.out += b"b"  # BUILD
        elif isinstance(obj, Py2Set):
            self._global("__builtin__", "set")
            self.out += b"]"
            self._put(("id", id(obj.items)), obj.items)
            self._batch(obj.items, b"a", lambda item: self.save(item))
            self.out += b"\x85R"  # TUPLE1, REDUCE
            self._put(("id", id(obj)), obj)
        elif isinstance(obj, Py2Global):
            self._global(obj.module, obj.name)
        else:
            raise TypeError(f"py2_pickle cannot write {type(obj).__name__}")

    def _tuple(self, t: tuple) -> None:
        if not t:
            self.out += b")"
            return
        if len(t) <= 3:
            for item in t:
                self.save(item)
            self.out += {1: b"\x85", 2: b"\x86", 3: b"\x87"}[len(t)]
        else:
            self.out += b"("
            for item in t:
                self.save(item)
            self.out += b"t"
        self._put(("id", id(t)), t)

    def _batch(self, items: list, one: bytes, save_item) -> None:
        # cPickle: APPENDS/SETITEMS in batches of 1000 behind a MARK, single items plainly.
        for start in range(0, len(items), 1000):
            chunk = items[start : start + 1000]
            if len(chunk) == 1:
                save_item(chunk[0])
                self.out += one
            else:
                self.out += b"("
                for item in chunk:
                    save_item(item)
                self.out += b"e" if one == b"a" else b"u"

    def _dict_items(self, items: list) -> None:
        def save_pair(kv):
            self.save(kv[0])
            self.save(kv[1])

        self._batch(items, b"s", save_pair)

    def _dtype(self, dt: np.dtype) -> None:
        key = ("dtype", dt.str)
        if self._get(key):
            return
        self._global("numpy", "dtype")
        self._tuple((f"{dt.kind}{dt.itemsize}", 0, 1))
        self.out += b"R"
        self._put(key)
        order = "|" if dt.itemsize == 1 else ("<" if dt.byteorder in "=<" else ">")
        self._tuple((3, order, None, None, None, -1, -1, 0))
        self.out += b"b"

    def _ndarray(self, arr: np.ndarray) -> None:
        if self._get(("id", id(arr))):
            return
        self._global("numpy.core.multiarray", "_reconstruct")
        self._global("numpy", "ndarray")
        self._tuple((0,))
        self._str(b"b")
        self.out += b"\x87R"  # TUPLE3, REDUCE
        self._put(("id", id(arr)), arr)
        fortran = bool(arr.flags.f_contiguous and not arr.flags.c_contiguous)
        raw = arr.tobytes(order="F" if fortran else "C")
        self.out += b"("
        self._int(1)
        self._tuple(tuple(int(s) for s in arr.shape))
        self._dtype(arr.dtype)
        self.save(fortran)
        self._str(raw)
        self.out += b"t"
        self._put(("state", id(arr)), arr)
        self.out += b"b"


def dumps_py2(obj: Any) -> bytes:
    """Pickle ``obj`` (dicts, lists, tuples, str, int, float, bool, None, numpy arrays and
    dtypes, :class:`Py2Object`, :class:`Py2Set`, :class:`Py2Global`) the way Python 2's
    cPickle writes protocol 2."""
    w = _Writer()
    w.save(obj)
    w.out += b"."
    return bytes(w.out)
