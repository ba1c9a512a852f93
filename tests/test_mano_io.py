"""MANO model files: synthetic model, pkl/npz round trips, left-hand fix, errors, mesh export."""
import os
import pickle
from collections import Counter

import numpy as np
import pytest
import torch
import trimesh

from hand_pose_core.mano import (
    MANO_SHAPES,
    ManoLayer,
    export_mesh,
    load_mano,
    save_mano_npz,
    synthetic_mano,
    write_mano_pkl,
)
from hand_pose_core.safe_pickle import UnsafePickleError


@pytest.fixture(scope="module")
def right():
    return synthetic_mano("right")


def _assert_models_equal(a, b):
    for key in MANO_SHAPES:
        np.testing.assert_allclose(a[key], b[key], err_msg=key, atol=1e-12)
    assert a["side"] == b["side"]


def test_synthetic_layout_and_topology(right):
    for key, shape in MANO_SHAPES.items():
        assert right[key].shape == shape, key
    v, f = right["v_template"], right["f"]
    assert f.dtype == np.int64 and f.min() == 0 and f.max() == 777
    half = Counter((int(a), int(b)) for tri in f for a, b in zip(tri, np.roll(tri, -1)))
    assert max(half.values()) == 1, "non-manifold or inconsistently oriented edge"
    boundary = [e for e in half if (e[1], e[0]) not in half]
    assert len(boundary) == 16  # the open wrist
    mesh = trimesh.Trimesh(v, f, process=False)
    assert mesh.is_winding_consistent and mesh.euler_number == 1
    assert mesh.volume > 0  # outward normals
    np.testing.assert_allclose(right["J_regressor"].sum(1), 1.0)
    np.testing.assert_allclose(right["weights"].sum(1), 1.0)
    assert (right["weights"] >= 0).all() and (right["J_regressor"] >= 0).all()
    np.testing.assert_allclose(right["hands_components"] @ right["hands_components"].T,
                               np.eye(45), atol=1e-12)
    # hand-like size and MANO's frame: fingers along -x, thumb towards +z
    J = right["J_regressor"] @ v
    length = np.linalg.norm(v[444] - J[0])
    assert 0.16 < length < 0.20
    assert v[444, 0] < J[0, 0] - 0.15
    assert v[745, 2] > v[317, 2] > v[673, 2]
    # deterministic
    _assert_models_equal(right, synthetic_mano("right", seed=0))


def test_beta0_scales_hand(right):
    layer = ManoLayer(model=right, use_pca=False)
    betas = torch.zeros(2, 10)
    betas[1, 0] = 2.0
    _, j = layer(torch.zeros(2, 48), betas)
    size = (j[:, 12] - j[:, 0]).norm(dim=-1)
    assert 1.08 < float(size[1] / size[0]) < 1.16


def test_pkl_round_trip_right(tmp_path, right):
    path = write_mano_pkl(right, tmp_path / "MANO_RIGHT.pkl")
    raw = pickle.loads(path.read_bytes())  # our own trusted file: plain pickle is fine here
    assert type(raw["J_regressor"]).__name__.startswith("csc")
    loaded = load_mano(path)
    _assert_models_equal(loaded, right)
    # folder form picks the file by side
    _assert_models_equal(load_mano(tmp_path, side="right"), right)


def test_left_pkl_gets_official_shapedirs_fix(tmp_path):
    good_left = synthetic_mano("left")
    buggy = synthetic_mano("left", with_official_left_bug=True)
    np.testing.assert_allclose(buggy["shapedirs"][:, 0], -good_left["shapedirs"][:, 0])
    path = write_mano_pkl(buggy, tmp_path / "MANO_LEFT.pkl")
    _assert_models_equal(load_mano(path), good_left)
    raw = load_mano(path, fix_left_shapedirs=False)
    np.testing.assert_allclose(raw["shapedirs"], buggy["shapedirs"])
    # A right model is never touched; an .npz export is never touched.
    npz = save_mano_npz(good_left, tmp_path / "left_export.npz")
    _assert_models_equal(load_mano(npz), good_left)


def test_npz_round_trip_without_pickle(tmp_path, right):
    path = save_mano_npz(right, tmp_path / "hand.npz")
    with np.load(path, allow_pickle=False) as data:  # really pickle-free
        assert set(MANO_SHAPES) <= set(data.files)
    _assert_models_equal(load_mano(path), right)
    _assert_models_equal(load_mano(path, side="right"), right)


def test_side_detection(tmp_path, right):
    path = write_mano_pkl(right, tmp_path / "hand_model.pkl")
    with pytest.raises(ValueError, match="right or left"):
        load_mano(path)
    assert load_mano(path, side="right")["side"] == "right"


def test_missing_and_corrupt_files(tmp_path, right):
    with pytest.raises(FileNotFoundError, match="MANO"):
        load_mano(tmp_path / "nope" / "MANO_RIGHT.pkl")
    with pytest.raises(FileNotFoundError, match="MANO_LEFT"):
        load_mano(tmp_path, side="left")
    good = write_mano_pkl(right, tmp_path / "MANO_RIGHT.pkl").read_bytes()
    trunc = tmp_path / "MANO_RIGHT_trunc.pkl"
    trunc.write_bytes(good[: len(good) // 3])
    with pytest.raises(ValueError, match="MANO_RIGHT_trunc.pkl"):
        load_mano(trunc)
    npz_good = save_mano_npz(right, tmp_path / "right.npz").read_bytes()
    bad_npz = tmp_path / "right_bad.npz"
    bad_npz.write_bytes(npz_good[:1000])
    with pytest.raises(ValueError, match="right_bad.npz"):
        load_mano(bad_npz)
    other = tmp_path / "MANO_RIGHT.txt"
    other.write_text("hello")
    with pytest.raises(ValueError, match="unsupported"):
        load_mano(other)


def test_missing_key_wrong_shape_nan(tmp_path, right):
    m = dict(right)
    del m["posedirs"]
    p = tmp_path / "MANO_RIGHT_missing.pkl"
    with open(p, "wb") as fh:
        pickle.dump(m, fh, protocol=2)
    with pytest.raises(ValueError, match="posedirs"):
        load_mano(p)
    m = dict(right, weights=np.ones((778, 15)))
    p = tmp_path / "MANO_RIGHT_shape.pkl"
    with open(p, "wb") as fh:
        pickle.dump(m, fh, protocol=2)
    with pytest.raises(ValueError, match=r"weights.*\(778, 15\)"):
        load_mano(p)
    bad = dict(right)
    bad["v_template"] = right["v_template"].copy()
    bad["v_template"][3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        save_mano_npz(bad, tmp_path / "x.npz")
    with pytest.raises(ValueError, match="dict"):
        p = tmp_path / "MANO_RIGHT_list.pkl"
        p.write_bytes(pickle.dumps([1, 2, 3], protocol=2))
        load_mano(p)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_hostile_model_file_refused(tmp_path, right):
    marker = tmp_path / "pwned"
    m = dict(right)
    m["v_template"] = _Evil(marker)
    p = tmp_path / "MANO_RIGHT.pkl"
    with open(p, "wb") as fh:
        pickle.dump(m, fh, protocol=2)
    with pytest.raises(UnsafePickleError, match=r"system"):
        load_mano(p)
    with pytest.raises(UnsafePickleError):
        ManoLayer(mano_root=tmp_path, side="right")
    assert not marker.exists()


@pytest.mark.parametrize("suffix", [".obj", ".ply"])
def test_export_mesh_round_trip(tmp_path, right, suffix):
    layer = ManoLayer(model=right, use_pca=True, ncomps=6)
    verts, _ = layer(0.5 * torch.randn(1, 9, generator=torch.Generator().manual_seed(0)))
    path = export_mesh(verts[0] / 1000.0, layer.faces_np, tmp_path / f"hand{suffix}")
    mesh = trimesh.load(path, process=False, force="mesh")
    assert mesh.vertices.shape == (778, 3) and mesh.faces.shape == (1538, 3)
    np.testing.assert_allclose(mesh.vertices, verts[0].numpy() / 1000.0, atol=1e-6)
    np.testing.assert_array_equal(mesh.faces, layer.faces_np)


def test_export_mesh_bad_input(tmp_path, right):
    v = right["v_template"]
    with pytest.raises(ValueError, match="format"):
        export_mesh(v, right["f"], tmp_path / "hand.xyz")
    with pytest.raises(ValueError, match="outside"):
        export_mesh(v[:100], right["f"], tmp_path / "hand.obj")
    bad = v.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN"):
        export_mesh(bad, right["f"], tmp_path / "hand.obj")
