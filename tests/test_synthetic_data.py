"""Synthetic hands: labels agree with the rendered images, poses respect the limits, and a
dataset written by `hand-pose synth` reads back through build_dataset."""
import json

import cv2

import numpy as np
import pytest
import torch

from training.datasets import build_dataset, validate_sample
from training.datasets.collate import collate_samples
from training.synthetic.generator import SyntheticHands
from training.synthetic.pose_prior import JOINT_LIMITS_RAD, anatomical_frames, sample_finger_pose
from training.synthetic.renderer import Renderer


@pytest.fixture(scope="module")
def gen():
    return SyntheticHands(image_size=128, seed=11)


@pytest.fixture(scope="module")
def samples(gen):
    return gen.samples(range(12))


def _project(points, K):
    p = points @ np.asarray(K, np.float64).T
    return p[:, :2] / p[:, 2:]


def test_samples_are_valid_and_labels_exact(gen, samples):
    from hand_pose_core.mano import ManoLayer, synthetic_mano

    sides = set()
    for s in samples:
        validate_sample(s, allow_nan_3d=False)
        sides.add(s["side"])
        assert s["image"].shape == (128, 128, 3) and s["mask"].shape == (128, 128)
        # 2D labels are the projection of the 3D labels through K.
        np.testing.assert_allclose(s["joints_2d"], _project(s["joints_cam_m"], s["K"]), atol=1e-3)
        # The MANO parameters reproduce the vertices and joints (flat_hand_mean=False + trans in m).
        layer = ManoLayer(model=synthetic_mano(s["side"]), side=s["side"], use_pca=False, flat_hand_mean=False)
        with torch.no_grad():
            v, j = layer(torch.as_tensor(s["mano_pose"])[None], torch.as_tensor(s["mano_shape"])[None])
        np.testing.assert_allclose(v[0].numpy() / 1000 + s["mano_trans"], s["verts_cam_m"], atol=2e-5)
        np.testing.assert_allclose(j[0].numpy() / 1000 + s["mano_trans"], s["joints_cam_m"], atol=2e-5)
    # Hand-centre (middle MCP) depth within the requested range.
    depths = [s["joints_cam_m"][9, 2] for s in samples]
    assert min(depths) >= 0.2 - 1e-6 and max(depths) <= 1.5 + 1e-6
    assert sides == {"left", "right"}


def test_mask_and_image_match_projected_vertices(gen, samples):
    r = Renderer(128, 128)
    faces = {side: gen._models[side]["faces"] for side in ("left", "right")}
    for s in samples:
        uv = _project(s["verts_cam_m"].astype(np.float64), s["K"])
        px = np.round(uv).astype(int)
        inside = (px[:, 0] >= 0) & (px[:, 0] < 128) & (px[:, 1] >= 0) & (px[:, 1] < 128)
        assert inside.sum() > 100
        # Every vertex lies on the surface, so its projection falls on the mask or, for vertices
        # on the silhouette, within half a pixel of it.
        grown = cv2.dilate(s["mask"], np.ones((3, 3), np.uint8))
        on_mask = grown[px[inside, 1], px[inside, 0]] > 0
        assert on_mask.mean() > 0.995, on_mask.mean()
        assert (s["mask"][px[inside, 1], px[inside, 0]] > 0).mean() > 0.85
        # The mask is exactly what an independent render of the labelled mesh with K covers.
        again = r.render(s["verts_cam_m"], faces[s["side"]], s["K"])
        np.testing.assert_array_equal(again.mask, s["mask"])
        # Mask extent = extent of the in-image projected vertices.
        vs, us = np.nonzero(s["mask"])
        if inside.all():
            assert abs(us.min() - uv[:, 0].min()) <= 1.5 and abs(vs.max() - uv[:, 1].max()) <= 1.5
        # Visible joints sit on the hand's pixels.
        for j in np.nonzero(s["visible"])[0]:
            u, v = np.round(s["joints_2d"][j]).astype(int)
            assert s["mask"][max(v - 1, 0):v + 2, max(u - 1, 0):u + 2].any()
    r.release()


def test_rendered_pixels_carry_the_hand(gen):
    """Inside the mask the image is the rendered hand: differs from a re-draw with another background."""
    a = gen.sample(3)
    other = SyntheticHands(image_size=128, seed=11, background_dir=None)
    b = other.sample(3)
    np.testing.assert_array_equal(a["image"], b["image"])  # deterministic per (seed, index)
    c = SyntheticHands(image_size=128, seed=12).sample(3)
    assert not np.array_equal(a["joints_cam_m"], c["joints_cam_m"])


def test_visibility_rule():
    depth = np.zeros((50, 50), np.float32)
    depth[10:20, 10:20] = 0.50
    joints = np.zeros((21, 3))
    joints[:, 2] = 0.505
    uv = np.full((21, 2), 15.0)
    radius = np.full(21, 0.009)
    vis = SyntheticHands._visibility(joints, uv, depth, radius)
    assert vis.all()  # surface 5 mm in front: its own finger
    joints[3, 2] = 0.53  # 30 mm behind the surface: hidden by something else
    uv[4] = (40, 40)  # on background pixels
    uv[5] = (60, 10)  # outside the image
    vis = SyntheticHands._visibility(joints, uv, depth, radius)
    assert not vis[3] and not vis[4] and not vis[5] and vis[[0, 1, 2, 6]].all()


def test_finger_poses_stay_within_limits():
    from hand_pose_core.mano import ManoLayer, synthetic_mano

    for side in ("right", "left"):
        layer = ManoLayer(model=synthetic_mano(side), side=side, use_pca=False)
        frames = anatomical_frames(layer.J_template.double().numpy(), side)
        # Frames are orthonormal and a positive flexion curls every finger towards the palm.
        np.testing.assert_allclose(np.einsum("jab,jcb->jac", frames, frames), np.broadcast_to(np.eye(3), (15, 3, 3)), atol=1e-9)
        rng = np.random.default_rng(0)
        lim = np.array([JOINT_LIMITS_RAD["thumb" if j >= 12 else "finger"][j % 3] for j in range(15)])
        for _ in range(200):
            aa = sample_finger_pose(rng, frames).reshape(15, 3)
            angles = np.einsum("jab,jb->ja", frames, aa)
            assert np.all(angles >= lim[..., 0] - 1e-9) and np.all(angles <= lim[..., 1] + 1e-9)
        # Flexing the index MCP moves its tip to the palmar side.
        pose = torch.zeros(1, 48)
        pose[0, 3:6] = torch.as_tensor(frames[0, 0] * 1.2)
        _, j_flex = layer(pose)
        _, j_flat = layer(torch.zeros(1, 48))
        J = layer.J_template.numpy()
        palmar = np.cross(J[1] - J[0], J[7] - J[0]) * (1 if side == "right" else -1)
        move = (j_flex - j_flat)[0, 8].numpy()
        assert move @ palmar / np.linalg.norm(palmar) > 0.02 * 1000 * 0.5


def test_write_then_read_round_trip(tmp_path):
    from training.synthetic.writer import write_dataset

    out = tmp_path / "synth"
    result = write_dataset(out, 40, workers=0, seed=4, image_size=96, progress=False)
    assert result["count"] == 40 and (out / "meta.json").is_file()
    ds_all = build_dataset("synthetic", out, "all")
    train = build_dataset("synthetic", out, "train")
    val = build_dataset("synthetic", out, "val")
    assert len(ds_all) == 40 and len(val) == 2 and len(train) == 38
    assert {s["id"] for s in val} == {"synthetic/4/00000019", "synthetic/4/00000039"}
    fly = build_dataset("synthetic", None, "all", length=40, seed=4, image_size=96)
    for i in (0, 19, 33):
        a, b = ds_all[i], fly[i]
        validate_sample(a, allow_nan_3d=False)
        assert a["id"] == b["id"] and a["side"] == b["side"]
        # Same sample; MANO ran batched when writing, alone here (float rounding only).
        for key in ("mano_pose", "mano_shape", "visible"):
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        for key in ("K", "joints_cam_m", "joints_2d", "mano_trans", "verts_cam_m"):
            np.testing.assert_allclose(a[key], b[key], rtol=1e-4, atol=1e-4, err_msg=key)
        assert (a["mask"] != b["mask"]).sum() <= 3
        mse = np.mean((a["image"].astype(float) - b["image"]) ** 2)
        assert 10 * np.log10(255 ** 2 / mse) > 28  # the same picture up to JPEG (quality 95)
    batch = collate_samples([ds_all[i] for i in range(4)])
    assert batch["image"].shape == (4, 3, 96, 96) and batch["has_mano"].all() and batch["has_mask"].all()


def test_bad_datasets_are_refused(tmp_path):
    from training.synthetic.writer import write_dataset

    with pytest.raises(FileNotFoundError, match="meta.json"):
        build_dataset("synthetic", tmp_path, "train")
    out = tmp_path / "s"
    write_dataset(out, 3, workers=0, seed=1, image_size=64, progress=False)
    with pytest.raises(ValueError, match="split"):
        build_dataset("synthetic", out, "test")
    (out / "labels" / "00000001.npy").write_bytes(b"garbage")
    ds = build_dataset("synthetic", out, "all")
    ds[0]
    with pytest.raises(ValueError, match="00000001.npy"):
        ds[1]
    (out / "rgb" / "00000002.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="00000002.jpg"):
        ds[2]
    meta = json.loads((out / "meta.json").read_text())
    meta["version"] = 99
    (out / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="version"):
        build_dataset("synthetic", out, "all")
    with pytest.raises(ValueError, match="distance_m"):
        build_dataset("synthetic", None, "train", distance_m=(1.0, 0.5))


@pytest.mark.heavy
def test_cli_synth_with_two_workers_and_spawned_loader(tmp_path):
    """`hand-pose synth` with 2 spawn workers, then a DataLoader with a spawn worker over the
    on-the-fly dataset (the renderer is created lazily inside the worker)."""
    from hand_pose_core.cli import main

    out = tmp_path / "cli"
    assert main(["synth", "--out", str(out), "--count", "70", "--workers", "2", "--seed", "2",
                 "--size", "64", "--depth"]) == 0
    ds = build_dataset("synthetic", out, "all", with_depth=True)
    assert len(ds) == 70
    s = ds[69]
    inside = s["mask"] > 0
    assert np.all(s["depth_m"][inside] > 0.05) and np.all(s["depth_m"][~inside] == 0)
    # Depth at a visible joint's pixel is close to (in front of) the joint.
    j = int(np.nonzero(s["visible"])[0][0])
    u, v = np.round(s["joints_2d"][j]).astype(int)
    patch = s["depth_m"][max(v - 1, 0):v + 2, max(u - 1, 0):u + 2]
    assert np.min(np.abs(patch[patch > 0] - s["joints_cam_m"][j, 2])) < 0.03
    fly = build_dataset("synthetic", None, "train", length=8, seed=2, image_size=64)
    loader = torch.utils.data.DataLoader(fly, batch_size=4, num_workers=1, collate_fn=collate_samples,
                                         multiprocessing_context="spawn")
    batches = list(loader)
    assert len(batches) == 2 and batches[0]["image"].shape == (4, 3, 64, 64)
    np.testing.assert_allclose(batches[0]["joints_2d"][0].numpy(), ds[0]["joints_2d"], atol=1e-3)


def test_official_model_files_and_background_folder(tmp_path):
    """--mano-root takes MANO files in the official layout; --backgrounds takes a folder."""
    from hand_pose_core.mano import synthetic_mano, write_mano_pkl

    mano = tmp_path / "mano"
    mano.mkdir()
    # A model that differs from the default (seed 5), written in the official pickle layout;
    # the left file carries the official shapedirs sign error that the loader fixes.
    write_mano_pkl(synthetic_mano("right", seed=5), mano / "MANO_RIGHT.pkl")
    write_mano_pkl(synthetic_mano("left", seed=5, with_official_left_bug=True), mano / "MANO_LEFT.pkl")
    bgs = tmp_path / "bg"
    bgs.mkdir()
    colour = (40, 160, 220)
    cv2.imwrite(str(bgs / "a.png"), np.full((300, 400, 3), colour[::-1], np.uint8))
    gen = SyntheticHands(image_size=64, seed=2, mano_root=mano, background_dir=bgs)
    default = SyntheticHands(image_size=64, seed=2)
    for a, b in zip(gen.samples(range(4)), default.samples(range(4))):
        validate_sample(a, allow_nan_3d=False)
        np.testing.assert_array_equal(a["mano_pose"][:3], b["mano_pose"][:3])  # same draw ...
        assert np.abs(a["verts_cam_m"] - b["verts_cam_m"]).max() > 1e-4  # ... other model
        bg = a["image"][a["mask"] == 0].astype(float)
        # Background = the folder's flat image after a brightness gain/offset: still flat, and
        # its channel ratios follow the image colour.
        assert bg.std(0).max() < 1.0
        assert np.argsort(bg.mean(0)).tolist() == [0, 1, 2]
    with pytest.raises(FileNotFoundError, match="background folder"):
        SyntheticHands(background_dir=tmp_path / "none")


def test_bad_settings_fail_before_any_worker_starts(tmp_path):
    from training.synthetic.writer import write_dataset

    with pytest.raises(FileNotFoundError, match="MANO"):
        write_dataset(tmp_path / "a", 4, workers=2, mano_root=tmp_path / "no_mano", progress=False)
    with pytest.raises(ValueError, match="left_fraction"):
        write_dataset(tmp_path / "b", 4, workers=2, left_fraction=2.0, progress=False)
    with pytest.raises(ValueError, match="count"):
        write_dataset(tmp_path / "c", 0, workers=2, progress=False)


def test_fork_loader_after_the_parent_rendered():
    """Default 'fork' DataLoader workers after the parent process rendered a sample itself."""
    fly = build_dataset("synthetic", None, "train", length=6, seed=3, image_size=64)
    first = fly[0]  # renders in this process: an EGL context now exists here
    loader = torch.utils.data.DataLoader(fly, batch_size=3, num_workers=1, collate_fn=collate_samples,
                                         multiprocessing_context="fork", timeout=120)
    batches = list(loader)
    assert [len(b["id"]) for b in batches] == [3, 3]
    np.testing.assert_allclose(batches[0]["joints_2d"][0].numpy(), first["joints_2d"], atol=1e-4)
    assert batches[0]["has_mask"].all() and batches[0]["mask"].sum() > 0
