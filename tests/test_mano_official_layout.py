"""The official MANO pickle layout loads without chumpy, and the layer built on it is right.

The fixture is written by the test itself (random values, never the licensed files) with the
structure the official ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl`` have, as public issue threads
print it: a dict written by Python 2's cPickle (protocol 2, Python 2 ``str``) holding

* ``shapedirs``: a ``chumpy.reordering.Select`` (state ``a``, ``idxs``, ``preferred_shape``) that
  takes ``[:, :, :10]`` of a ``chumpy.ch.Ch`` whose state ``x`` is a (778, 3, 20) array;
* ``J_regressor``: a ``scipy.sparse.csc.csc_matrix`` (16, 778);
* plain numpy arrays for the rest: ``f`` uint32, ``kintree_table`` int64 with 4294967295 as
  the root's parent, ``hands_coeffs``, ``J``, ``v_template``, ``weights``, ``posedirs``,
  ``hands_components``, ``hands_mean``; ``bs_style`` 'lbs', ``bs_type`` 'lrotmin'; and
  ``__builtin__.set`` inside the chumpy states.

The bytes are emitted opcode by opcode (tests/py2_pickle.py): chumpy is never imported.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from hand_pose_core.mano import ManoLayer, load_mano
from hand_pose_core.safe_pickle import UnsafePickleError, safe_load
from py2_pickle import Py2Object, Py2Set, dumps_py2

PARENTS = [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14]
# canonical 21 joints from 16 MANO joints + 5 tips (REFERENCE.md table; tips t0..t4 =
# thumb, index, middle, ring, pinky)
CANONICAL = [0, 13, 14, 15, "t0", 1, 2, 3, "t1", 4, 5, 6, "t2", 10, 11, 12, "t3", 7, 8, 9, "t4"]
TIPS_RIGHT = [745, 317, 444, 556, 673]  # manopth preset (the layer's default)


def _random_official_model(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    n_v = 778
    weights = rng.dirichlet(np.full(16, 0.3), size=n_v)
    jreg = np.zeros((16, n_v))
    for j in range(16):
        cols = rng.choice(n_v, size=12, replace=False)
        w = rng.random(12)
        jreg[j, cols] = w / w.sum()
    comps = np.linalg.qr(rng.normal(size=(45, 45)))[0]
    return {
        "v_template": rng.normal(scale=0.04, size=(n_v, 3)),
        "shapedirs_full": rng.normal(scale=0.004, size=(n_v, 3, 20)),
        "posedirs": rng.normal(scale=0.003, size=(n_v, 3, 135)),
        "J_regressor": jreg,
        "weights": weights,
        "f": rng.integers(0, n_v, size=(1538, 3)).astype(np.uint32),
        "hands_components": comps,
        "hands_mean": rng.normal(scale=0.2, size=45),
        "hands_coeffs": rng.normal(size=(1554, 45)),
        "J": rng.normal(scale=0.05, size=(16, 3)),
    }


def _csc_state(dense: np.ndarray) -> dict:
    """The __dict__ of a scipy csc_matrix as old scipy pickled it (built by hand)."""
    data, indices, indptr = [], [], [0]
    for c in range(dense.shape[1]):
        rows = np.nonzero(dense[:, c])[0]
        indices.extend(rows.tolist())
        data.extend(dense[rows, c].tolist())
        indptr.append(len(indices))
    return {
        "_shape": tuple(dense.shape),
        "maxprint": 50,
        "format": "csc",
        "indices": np.asarray(indices, np.int32),
        "indptr": np.asarray(indptr, np.int32),
        "data": np.asarray(data, np.float64),
    }


def _official_pickle_bytes(m: dict, *, select_state: dict | None = None) -> bytes:
    full = m["shapedirs_full"]
    ch = Py2Object("chumpy.ch", "Ch", {"x": full, "_dirty_vars": Py2Set(["x"])})
    idxs = np.arange(full.size).reshape(full.shape)[:, :, :10].ravel().astype(np.int64)
    state = {"a": ch, "idxs": idxs, "preferred_shape": (778, 3, 10),
             "_dirty_vars": Py2Set([])}
    if select_state is not None:
        state.update(select_state)
    shapedirs = Py2Object("chumpy.reordering", "Select", state)
    kintree = np.array([[4294967295] + PARENTS[1:], list(range(16))], dtype=np.int64)
    return dumps_py2({
        "hands_components": m["hands_components"],
        "f": m["f"],
        "J_regressor": Py2Object("scipy.sparse.csc", "csc_matrix", _csc_state(m["J_regressor"])),
        "kintree_table": kintree,
        "J": m["J"],
        "bs_style": "lbs",
        "hands_coeffs": m["hands_coeffs"],
        "weights": m["weights"],
        "posedirs": m["posedirs"],
        "hands_mean": m["hands_mean"],
        "v_template": m["v_template"],
        "shapedirs": shapedirs,
        "bs_type": "lrotmin",
    })


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    root = tmp_path_factory.mktemp("mano_official")
    m = _random_official_model(11)
    data = _official_pickle_bytes(m)
    (root / "MANO_RIGHT.pkl").write_bytes(data)
    (root / "MANO_LEFT.pkl").write_bytes(data)
    return root, m, data


def _rodrigues(r: np.ndarray) -> np.ndarray:
    theta = float(np.linalg.norm(r))
    if theta < 1e-12:
        return np.eye(3)
    k = r / theta
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * K + (1 - np.cos(theta)) * K @ K


def _loop_forward(m: dict, pose48: np.ndarray, betas: np.ndarray, tips) -> tuple:
    """Independent MANO forward pass (metres in, millimetres out), one joint at a time."""
    shapedirs = m["shapedirs_full"][:, :, :10]
    v = m["v_template"] + shapedirs @ betas
    J = m["J_regressor"] @ v
    Rs = [_rodrigues(pose48[3 * k : 3 * k + 3]) for k in range(16)]
    feat = np.concatenate([(Rs[k] - np.eye(3)).ravel() for k in range(1, 16)])
    v_posed = v + m["posedirs"] @ feat
    G = [None] * 16
    for k in range(16):
        local = np.eye(4)
        local[:3, :3] = Rs[k]
        local[:3, 3] = J[k] - (J[PARENTS[k]] if k else 0.0)
        G[k] = local if k == 0 else G[PARENTS[k]] @ local
    verts = np.zeros_like(v_posed)
    for k in range(16):
        moved = (G[k][:3, :3] @ (v_posed - J[k]).T).T + G[k][:3, 3]
        verts += m["weights"][:, k : k + 1] * moved
    joints16 = np.stack([G[k][:3, 3] for k in range(16)])
    joints = np.stack([verts[tips[int(c[1])]] if isinstance(c, str) else joints16[c]
                       for c in CANONICAL])
    return verts * 1000.0, joints * 1000.0


def test_official_layout_loads_without_chumpy(official):
    root, m, data = official
    assert b"chumpy.reordering\nSelect" in data and b"c__builtin__\nset" in data
    assert b"scipy.sparse.csc\ncsc_matrix" in data and b"_codecs" not in data
    model = load_mano(root / "MANO_RIGHT.pkl")
    assert model["side"] == "right"
    np.testing.assert_array_equal(model["shapedirs"], m["shapedirs_full"][:, :, :10])
    np.testing.assert_array_equal(model["J_regressor"], m["J_regressor"])
    np.testing.assert_array_equal(model["f"], m["f"].astype(np.int64))
    np.testing.assert_array_equal(model["kintree_table"][0, 1:], PARENTS[1:])
    for key in ("v_template", "posedirs", "weights", "hands_components", "hands_mean"):
        np.testing.assert_array_equal(model[key], m[key], err_msg=key)
    assert model["bs_type"] == "lrotmin" and model["bs_style"] == "lbs"
    # left file with the same structure: the community shapedirs fix applies to the
    # evaluated Select as well
    left = load_mano(root / "MANO_LEFT.pkl")
    expected = m["shapedirs_full"][:, :, :10].copy()
    expected[:, 0, :] *= -1
    np.testing.assert_array_equal(left["shapedirs"], expected)
    assert "chumpy" not in sys.modules


@pytest.mark.parametrize("ncomps,flat", [(12, False), (45, True)])
def test_layer_from_official_file_matches_loop_forward(official, ncomps, flat):
    root, m, _ = official
    layer = ManoLayer(mano_root=root, side="right", use_pca=True, ncomps=ncomps,
                      flat_hand_mean=flat, dtype=torch.float64)
    g = torch.Generator().manual_seed(3)
    B = 3
    pose = torch.randn(B, 3 + ncomps, generator=g, dtype=torch.float64) * 0.6
    betas = torch.randn(B, 10, generator=g, dtype=torch.float64)
    verts, joints = layer(pose, betas)
    for b in range(B):
        p = pose[b].numpy()
        fingers = p[3:] @ m["hands_components"][:ncomps]
        if not flat:
            fingers = fingers + m["hands_mean"]
        ref_v, ref_j = _loop_forward(m, np.concatenate([p[:3], fingers]),
                                     betas[b].numpy(), TIPS_RIGHT)
        np.testing.assert_allclose(verts[b].numpy(), ref_v, atol=1e-7)
        np.testing.assert_allclose(joints[b].numpy(), ref_j, atol=1e-7)


def test_hostile_or_broken_official_layout_refused(tmp_path, official):
    _, m, _ = official
    marker = tmp_path / "pwned"
    # a Select whose operand is a call to os.system: refused when the name is read
    evil = Py2Object("posix", "system", None)
    p = tmp_path / "MANO_RIGHT.pkl"
    p.write_bytes(_official_pickle_bytes(m, select_state={"a": evil}))
    with pytest.raises(UnsafePickleError, match="posix.system"):
        load_mano(p)
    assert not marker.exists()
    # indices outside the source array: a clear error naming the key and the problem
    bad_idx = np.arange(10, dtype=np.int64) + 778 * 3 * 20
    p.write_bytes(_official_pickle_bytes(
        m, select_state={"idxs": bad_idx, "preferred_shape": (10,)}))
    with pytest.raises(ValueError, match=r"shapedirs.*idxs.*out of range"):
        load_mano(p)
    # preferred_shape that does not match the selection
    p.write_bytes(_official_pickle_bytes(m, select_state={"preferred_shape": (778, 3, 11)}))
    with pytest.raises(ValueError, match=r"shapedirs.*preferred_shape"):
        load_mano(p)
    # a cyclic expression (Select of itself) is a ValueError, not a RecursionError
    cyc = Py2Object("chumpy.reordering", "Select", None)
    cyc.state = {"a": cyc, "idxs": np.arange(3), "preferred_shape": (3,)}
    raw = safe_load(_write(tmp_path / "cyc.pkl", dumps_py2({"s": cyc})))
    from hand_pose_core.safe_pickle import standin_to_numpy

    with pytest.raises(ValueError, match="nested deeper"):
        standin_to_numpy(raw["s"])
    # an unsupported chumpy expression names its class
    add = Py2Object("chumpy.ch_ops", "add", {"a": np.ones(3), "b": np.ones(3)})
    p.write_bytes(_official_pickle_bytes(m, select_state={"a": add}))
    with pytest.raises(ValueError, match=r"chumpy\.ch_ops\.add"):
        load_mano(p)


def _write(path, data: bytes):
    path.write_bytes(data)
    return path
