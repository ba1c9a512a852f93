"""Tests for hand_pose_core.safe_pickle: hostile pickles are refused before anything runs."""
import io
import os
import pickle

import numpy as np
import pytest
import scipy.sparse as sp

from hand_pose_core.safe_pickle import (
    RestrictedUnpickler,
    StandIn,
    UnsafePickleError,
    is_chumpy,
    safe_load,
    safe_loads,
    standin_to_numpy,
)


class _SystemCall:
    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


class _Eval:
    def __init__(self, expr):
        self.expr = expr

    def __reduce__(self):
        import builtins

        return (builtins.eval, (self.expr,))


def test_os_system_pickle_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"v_template": _SystemCall(f"touch {marker}")}, protocol=2)
    path = tmp_path / "evil.pkl"
    path.write_bytes(payload)
    with pytest.raises(UnsafePickleError) as exc:
        safe_load(path)
    msg = str(exc.value)
    assert "posix.system" in msg or "os.system" in msg or "nt.system" in msg
    assert str(path) in msg
    assert not marker.exists()


def test_builtins_eval_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned2"
    expr = f"open({str(marker)!r}, 'w').write('x')"
    for proto in (0, 2, 4, 5):
        with pytest.raises(UnsafePickleError, match=r"(builtins|__builtin__)\.eval"):
            safe_loads(pickle.dumps([1, _Eval(expr)], protocol=proto))
    assert not marker.exists()
    # Sanity: the payload really is hostile with plain pickle.
    pickle.loads(pickle.dumps(_Eval(expr)))
    assert marker.exists()


@pytest.mark.parametrize(
    "module,name", [("subprocess", "Popen"), ("builtins", "exec"), ("numpy", "load"),
                    ("numpy.core.multiarray", "ndarray.__reduce__"), ("posix", "system")]
)
def test_other_globals_refused(module, name):
    # Hand-written protocol-0 pickle: GLOBAL module name, then call with an empty tuple.
    data = f"c{module}\n{name}\n(tR.".encode()
    with pytest.raises(UnsafePickleError, match=f"{module}.{name}".replace(".", r"\.")):
        safe_loads(data)


def test_numpy_arrays_and_scalars_load():
    obj = {
        "a": np.arange(12, dtype=np.float64).reshape(3, 4),
        "f": np.asfortranarray(np.ones((2, 3), np.float32)),
        "i": np.array([1, 2], np.uint32),
        "s": np.float64(2.5),
        "t": ("x", 3, [1.0, None], True),
    }
    for proto in (2, 4, 5):
        back = safe_loads(pickle.dumps(obj, protocol=proto))
        np.testing.assert_array_equal(back["a"], obj["a"])
        np.testing.assert_array_equal(back["f"], obj["f"])
        assert back["i"].dtype == np.uint32
        assert back["s"] == 2.5
        assert back["t"] == obj["t"]


def _chumpy_like_pickle(x: np.ndarray) -> bytes:
    """Bytes of a pickle naming chumpy.ch.Ch with state {'x': x}, as chumpy writes them.

    Built by pickling a local class and renaming its global to chumpy.ch.Ch, so no chumpy is
    needed to make the fixture.
    """

    class Ch:
        def __reduce_ex__(self, proto):
            import copyreg

            return (copyreg.__newobj__, (Ch,), {"x": x, "_dirty_vars": set()})

    Ch.__module__ = "chumpy.ch"
    Ch.__qualname__ = "Ch"
    import sys
    import types

    fake = types.ModuleType("chumpy.ch")
    fake.Ch = Ch
    parent = types.ModuleType("chumpy")
    parent.ch = fake
    sys.modules.update({"chumpy": parent, "chumpy.ch": fake})
    try:
        return pickle.dumps({"shapedirs": Ch(), "other": 1}, protocol=2)
    finally:
        del sys.modules["chumpy.ch"], sys.modules["chumpy"]


def test_chumpy_standin_gives_array_without_importing_chumpy():
    import sys

    x = np.random.default_rng(0).normal(size=(5, 3, 2))
    data = _chumpy_like_pickle(x)
    assert b"chumpy.ch" in data
    out = safe_loads(data)
    assert isinstance(out["shapedirs"], StandIn) and is_chumpy(out["shapedirs"])
    assert out["shapedirs"].qualname == "chumpy.ch.Ch"
    np.testing.assert_array_equal(standin_to_numpy(out["shapedirs"]), x)
    assert "chumpy" not in sys.modules
    # Protocol 2 writes the set in the state as a call to builtins.set, which is allowed.
    assert b"builtins" in data or b"__builtin__" in data
    assert out["shapedirs"].state["_dirty_vars"] == set()


@pytest.mark.parametrize("fmt", ["csc", "csr", "coo"])
def test_sparse_standin_to_dense(fmt):
    rng = np.random.default_rng(1)
    dense = rng.normal(size=(16, 40)) * (rng.random((16, 40)) < 0.2)
    mat = getattr(sp, f"{fmt}_matrix")(dense)
    out = safe_loads(pickle.dumps({"J": mat}, protocol=2))
    assert "scipy" in out["J"].pickle_module
    np.testing.assert_allclose(standin_to_numpy(out["J"]), dense)


def test_unevaluated_chumpy_expression_is_a_clear_error():
    data = b"cchumpy.ch_ops\nadd\n)\x81}(Va\nI1\nub."
    obj = safe_loads(data)
    with pytest.raises(ValueError, match="chumpy.ch_ops.add"):
        standin_to_numpy(obj)


def test_corrupt_and_missing_files(tmp_path):
    good = pickle.dumps({"a": np.arange(100.0)}, protocol=2)
    trunc = tmp_path / "trunc.pkl"
    trunc.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="trunc.pkl"):
        safe_load(trunc)
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"this is not a pickle at all")
    with pytest.raises(ValueError, match="junk.pkl"):
        safe_load(junk)
    with pytest.raises(FileNotFoundError, match="nope.pkl"):
        safe_load(tmp_path / "nope.pkl")


def test_persistent_id_refused():
    class P(pickle.Pickler):
        def persistent_id(self, obj):
            return "x" if obj == "secret" else None

    buf = io.BytesIO()
    P(buf, protocol=2).dump(["secret"])
    with pytest.raises(UnsafePickleError, match="persistent"):
        RestrictedUnpickler(io.BytesIO(buf.getvalue())).load()


def test_codecs_encode_limited_to_text_codecs():
    # Python 3 writes bytes in protocol 2 as _codecs.encode(str, 'latin1'): allowed ...
    assert safe_loads(pickle.dumps(b"\x00\xffab", protocol=2)) == b"\x00\xffab"
    # ... but not with other codecs.
    data = b"c_codecs\nencode\n(Vabc\nVzlib\ntR."
    with pytest.raises(UnsafePickleError, match="zlib"):
        safe_loads(data)


def test_chumpy_reorderings_evaluated_without_chumpy():
    import sys

    from py2_pickle import Py2Object, dumps_py2

    x = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    ch = Py2Object("chumpy.ch", "Ch", {"x": x})
    data = dumps_py2({
        "sel": Py2Object("chumpy.reordering", "Select",
                         {"a": ch, "idxs": np.array([5, 1, 7, 0]), "preferred_shape": (2, 2)}),
        "sel_flat": Py2Object("chumpy.reordering", "Select", {"a": ch, "idxs": [3, 2]}),
        "resh": Py2Object("chumpy.reordering", "Reshape", {"a": ch, "newshape": (4, 6)}),
        "tr": Py2Object("chumpy.reordering", "transpose", {"a": ch, "axes": (2, 0, 1)}),
        "tr_default": Py2Object("chumpy.reordering", "transpose", {"a": ch, "axes": None}),
        "bad_axes": Py2Object("chumpy.reordering", "transpose", {"a": ch, "axes": (0, 0, 1)}),
        "bad_shape": Py2Object("chumpy.reordering", "Reshape", {"a": ch, "newshape": (5, 5)}),
        "float_idx": Py2Object("chumpy.reordering", "Select",
                               {"a": ch, "idxs": np.array([0.5]), "preferred_shape": (1,)}),
        "no_a": Py2Object("chumpy.reordering", "Select", {"idxs": np.array([0])}),
    })
    out = safe_loads(data)
    np.testing.assert_array_equal(standin_to_numpy(out["sel"]), x.ravel()[[5, 1, 7, 0]].reshape(2, 2))
    np.testing.assert_array_equal(standin_to_numpy(out["sel_flat"]), [3.0, 2.0])
    np.testing.assert_array_equal(standin_to_numpy(out["resh"]), x.reshape(4, 6))
    np.testing.assert_array_equal(standin_to_numpy(out["tr"]), x.transpose(2, 0, 1))
    np.testing.assert_array_equal(standin_to_numpy(out["tr_default"]), x.T)
    for key, msg in [("bad_axes", "permute"), ("bad_shape", "reshape"),
                     ("float_idx", "integers"), ("no_a", "no 'a'")]:
        with pytest.raises(ValueError, match=msg):
            standin_to_numpy(out[key])
    assert "chumpy" not in sys.modules


def test_huge_sparse_shape_refused():
    from py2_pickle import Py2Object, dumps_py2

    state = {"_shape": (10**6, 10**6), "format": "csc", "indices": np.zeros(0, np.int32),
             "indptr": np.zeros(10**6 + 1, np.int32), "data": np.zeros(0)}
    out = safe_loads(dumps_py2(Py2Object("scipy.sparse.csc", "csc_matrix", state)))
    with pytest.raises(ValueError, match="implausible shape"):
        standin_to_numpy(out)
