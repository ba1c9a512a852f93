"""FreiHAND, RHD and HO-3D readers on fixture trees written here in the datasets' native layouts.

The fixtures follow the published layouts (file names, JSON/pickle structure, joint orders, axes,
units, left/right split, depth packing); expected values are computed by hand from what the test
wrote, never by the reader's own helpers.
"""
from __future__ import annotations

import json
import pickle

import cv2
import numpy as np
import pytest
import torch

from hand_pose_core.mano.layer import ManoLayer
from hand_pose_core.mano.synthetic import synthetic_mano
from hand_pose_core.safe_pickle import UnsafePickleError
from training.augment import build_transform
from training.datasets import build_dataset
from training.datasets.native_io import DatasetFormatError

MANO = synthetic_mano("right")


def _layer(flat_hand_mean: bool) -> ManoLayer:
    return ManoLayer(model=MANO, use_pca=False, flat_hand_mean=flat_hand_mean, side="right",
                     dtype=torch.float64, tip_vertex_ids="smplx")


def mano_mm(layer, pose, beta):
    with torch.no_grad():
        v, j = layer(torch.as_tensor(pose, dtype=torch.float64)[None], torch.as_tensor(beta, dtype=torch.float64)[None])
    return v[0].numpy() / 1000.0, j[0].numpy() / 1000.0


def proj(K, X):
    u = K[0, 0] * X[:, 0] / X[:, 2] + K[0, 2]
    v = K[1, 1] * X[:, 1] / X[:, 2] + K[1, 2]
    return np.stack([u, v], 1)


def check_crop(sample, size=64):
    out = build_transform({"crop_size": size}, train=False)(sample)
    vis = out["visible"] & np.all(np.isfinite(out["joints_cam_m"]), 1)
    np.testing.assert_allclose(proj(out["K"].astype(np.float64), out["joints_cam_m"][vis].astype(np.float64)),
                               out["joints_2d"][vis], atol=2e-3)
    return out


# ----------------------------------------------------------------------------- FreiHAND

def write_freihand(root, n=3, n_eval=2, eval_annotations=True):
    rng = np.random.default_rng(0)
    layer = _layer(False)  # FreiHAND poses are relative to MANO's mean pose
    truth = {}
    for set_name, count in (("training", n), ("evaluation", n_eval)):
        Ks, xyzs, manos, vertss, scales = [], [], [], [], []
        for i in range(count):
            pose = rng.normal(0, 0.2, 48)
            beta = rng.normal(0, 1, 10)
            verts, joints = mano_mm(layer, pose, beta)
            trans = np.array([0.01 * i, -0.02, 0.6]) - joints[0]  # wrist at (x, -0.02, 0.6)
            verts, joints = verts + trans, joints + trans
            K = np.array([[480.0 + 10 * i, 0, 112], [0, 470.0, 110 + i], [0, 0, 1]])
            uv_root = proj(K, joints[9:10])[0]
            scale = 0.5 * (K[0, 0] + K[1, 1]) / joints[9, 2]
            Ks.append(K.tolist())
            xyzs.append(joints.tolist())
            manos.append([list(pose) + list(beta) + list(uv_root) + [scale]])
            vertss.append(verts.tolist())
            scales.append(0.03)
            truth[(set_name, i)] = dict(K=K, xyz=joints, verts=verts, pose=pose, beta=beta, trans=trans)
        files = {"K": Ks, "xyz": xyzs, "mano": manos, "verts": vertss, "scale": scales}
        for key, data in files.items():
            if set_name == "evaluation" and not eval_annotations and key in ("xyz", "verts", "mano"):
                continue
            (root / f"{set_name}_{key}.json").write_text(json.dumps(data))
        rgb = root / set_name / "rgb"
        rgb.mkdir(parents=True)
        versions = 4 if set_name == "training" else 1
        for k in range(versions):
            for i in range(count):
                img = np.full((224, 224, 3), (40 + 50 * k, 30 + 60 * i, 200), np.uint8)  # RGB
                cv2.imwrite(str(rgb / f"{i + k * count:08d}.jpg"), img[..., ::-1])
        if set_name == "training":
            (root / "training" / "mask").mkdir()
            for i in range(count):
                m = np.zeros((224, 224), np.uint8)
                m[50:150, 60 + 10 * i:160] = 255
                cv2.imwrite(str(root / "training" / "mask" / f"{i:08d}.jpg"), m)
    return truth


def test_freihand_verts_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HAND_POSE_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "fh").mkdir()
    truth = write_freihand(tmp_path / "fh")
    a = build_dataset("freihand", tmp_path / "fh", "train", verts=True)
    cached = list((tmp_path / "cache" / "datasets" / "freihand").glob("*_training_verts.npy"))
    assert len(cached) == 1
    b = build_dataset("freihand", tmp_path / "fh", "train", verts=True)  # from the .npy
    assert isinstance(b.verts, np.memmap)
    np.testing.assert_allclose(b[2]["verts_cam_m"], truth[("training", 2)]["verts"], atol=1e-6)
    np.testing.assert_array_equal(a[2]["verts_cam_m"], b[2]["verts_cam_m"])
    del a, b  # they map the file: truncating it under them would fault (the reader only ever
    # replaces cache files atomically)
    cached[0].write_bytes(b"garbage")  # a damaged cache file is rebuilt
    c = build_dataset("freihand", tmp_path / "fh", "train", verts=True)
    np.testing.assert_allclose(c[1]["verts_cam_m"], truth[("training", 1)]["verts"], atol=1e-6)


def test_freihand_layout_versions_joints_and_mano(tmp_path):
    truth = write_freihand(tmp_path)
    ds = build_dataset("freihand", tmp_path, "train", mano=MANO)
    assert len(ds) == 4 * 3
    for index in (0, 4, 7, 11):
        k, uid = divmod(index, 3)
        s = ds[index]
        assert s["id"] == f"freihand/training/{uid + 3 * k:08d}"  # version k of sample uid: file uid + k*N
        np.testing.assert_allclose(s["image"].reshape(-1, 3).mean(0), (40 + 50 * k, 30 + 60 * uid, 200), atol=3)
        t = truth[("training", uid)]
        np.testing.assert_allclose(s["joints_cam_m"], t["xyz"], atol=1e-6)  # FreiHAND order = canonical
        np.testing.assert_allclose(s["joints_2d"], proj(t["K"], t["xyz"]), atol=1e-3)
        np.testing.assert_allclose(s["K"], t["K"], atol=1e-6)
        assert s["visible"].all() and s["side"] == "right"
        np.testing.assert_allclose(s["mano_pose"], t["pose"], atol=1e-6)
        np.testing.assert_allclose(s["mano_shape"], t["beta"], atol=1e-6)
        np.testing.assert_allclose(s["mano_trans"], t["trans"], atol=1e-6)
        assert "verts_cam_m" not in s  # 0.5 GB of JSON in the real training set: off by default
        assert s["mask"][100, 155] == 1 and s["mask"][100, 20] == 0 and s["mask"][20, 100] == 0
        assert s["mask"][100, 58 + 10 * uid] == 0 and s["mask"][100, 62 + 10 * uid] == 1
    # the MANO parameters (our flat_hand_mean=False convention + mano_trans) rebuild the hand
    s = ds[5]
    verts, joints = mano_mm(_layer(False), s["mano_pose"], s["mano_shape"])
    np.testing.assert_allclose(joints + s["mano_trans"], s["joints_cam_m"], atol=1e-5)
    check_crop(s)
    only_hom = build_dataset("freihand", tmp_path, "train", versions=("hom",), masks=False)
    assert len(only_hom) == 3 and only_hom[2]["id"] == "freihand/training/00000005"
    assert "mask" not in only_hom[2] and "mano_trans" not in only_hom[2]  # no MANO model: no translation
    with_verts = build_dataset("freihand", tmp_path, "train", verts=True, cache_verts=False)
    np.testing.assert_allclose(with_verts[1]["verts_cam_m"], truth[("training", 1)]["verts"], atol=1e-6)


def test_freihand_evaluation_split(tmp_path, monkeypatch):
    monkeypatch.setenv("HAND_POSE_CACHE_DIR", str(tmp_path / "cache"))
    truth = write_freihand(tmp_path)
    ds = build_dataset("freihand", tmp_path, "evaluation")
    assert len(ds) == 2
    s = ds[1]
    assert s["id"] == "freihand/evaluation/00000001" and "mask" not in s
    np.testing.assert_allclose(s["verts_cam_m"], truth[("evaluation", 1)]["verts"], atol=1e-6)
    np.testing.assert_allclose(s["joints_cam_m"], truth[("evaluation", 1)]["xyz"], atol=1e-6)
    np.testing.assert_allclose(s["mano_shape"], truth[("evaluation", 1)]["beta"], atol=1e-6)
    (tmp_path / "evaluation_mano.json").unlink()  # optional for the evaluation split
    assert "mano_pose" not in build_dataset("freihand", tmp_path, "evaluation")[0]


def test_freihand_errors_name_the_file(tmp_path):
    write_freihand(tmp_path, eval_annotations=False)
    with pytest.raises(FileNotFoundError, match=r"evaluation_xyz\.json.*evaluation release"):
        build_dataset("freihand", tmp_path, "evaluation")
    (tmp_path / "training_xyz.json").write_text(json.dumps([[[0.0, 0.0, 0.5]] * 20] * 3))
    with pytest.raises(DatasetFormatError, match=r"training_xyz\.json.*21 x 3.*shape 3x21x3"):
        build_dataset("freihand", tmp_path, "train")
    (tmp_path / "training_xyz.json").write_text("{not json")
    with pytest.raises(DatasetFormatError, match=r"training_xyz\.json: not valid JSON"):
        build_dataset("freihand", tmp_path, "train")
    (tmp_path / "training_xyz.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"training_xyz\.json: not found"):
        build_dataset("freihand", tmp_path, "train")


def test_freihand_missing_image(tmp_path):
    write_freihand(tmp_path)
    (tmp_path / "training" / "rgb" / "00000004.jpg").unlink()
    ds = build_dataset("freihand", tmp_path, "train")
    with pytest.raises(FileNotFoundError, match=r"00000004\.jpg: not found.*hom version of sample 1"):
        ds[4]


# ----------------------------------------------------------------------------- RHD

RHD_K = np.array([[300.0, 0, 32], [0, 310.0, 30], [0, 0, 1]])


def rhd_hand(rng, x_off):
    """21 RHD-ordered joints: joint k at a distinct place (z 0.5 .. 0.7)."""
    return np.stack([np.full(21, x_off) + rng.uniform(-0.03, 0.03, 21), rng.uniform(-0.03, 0.03, 21),
                     0.5 + 0.01 * np.arange(21)], 1)


def write_rhd(root, set_name="training"):
    rng = np.random.default_rng(1)
    d = root / set_name
    for sub in ("color", "mask", "depth"):
        (d / sub).mkdir(parents=True)
    anno = {}
    for sid in (0, 7):
        xyz = np.concatenate([rhd_hand(rng, -0.05), rhd_hand(rng, 0.05)]).astype(np.float32)
        uv = proj(RHD_K, xyz)
        vis = np.ones(42)
        if sid == 0:
            vis[21:] = 0  # right hand not visible at all
        else:
            vis[21 + 5:] = 0  # right hand: 5 visible keypoints
            vis[3] = 0  # left thumb joint 3 (RHD) = canonical 2 hidden
        anno[sid] = {"xyz": xyz, "uv_vis": np.concatenate([uv, vis[:, None]], 1).astype(np.float32),
                     "K": RHD_K.astype(np.float32)}
        img = np.full((64, 64, 3), (10, 20 + sid, 30), np.uint8)
        cv2.imwrite(str(d / "color" / f"{sid:05d}.png"), img[..., ::-1])
        labels = np.zeros((64, 64), np.uint8)
        labels[:, 40:] = 1  # person
        labels[0:20, 0:20] = 5  # left hand part
        labels[30:40, 30:40] = 25  # right hand part
        if sid == 7:
            labels[30:60, 30:60] = 25  # right hand bigger than the left one
        labels[50, 50] = 17  # last left label
        labels[51, 51] = 18  # first right label
        cv2.imwrite(str(d / "mask" / f"{sid:05d}.png"), labels)
        depth_m = np.full((64, 64), 2.0)
        depth_m[3, 4] = 1.234
        v = np.round(depth_m / 5.0 * 65535).astype(np.uint16)
        png = np.zeros((64, 64, 3), np.uint8)
        png[..., 2] = v >> 8   # red (OpenCV writes B, G, R): top byte
        png[..., 1] = v & 255  # green: bottom byte
        cv2.imwrite(str(d / "depth" / f"{sid:05d}.png"), png)
    with open(d / f"anno_{set_name}.pickle", "wb") as fh:
        pickle.dump(anno, fh, protocol=2)  # as Python 2 wrote it
    return anno


def test_rhd_left_right_split_joint_order_mask_depth(tmp_path):
    anno = write_rhd(tmp_path)
    ds = build_dataset("rhd", tmp_path, "train")
    assert [s["id"] for s in ds] == ["rhd/training/00000/left", "rhd/training/00007/left",
                                     "rhd/training/00007/right"]
    left7 = ds[1]
    xyz = anno[7]["xyz"]
    # hand-computed order: canonical 0 wrist = RHD 0; thumb CMC/MCP/IP/tip = RHD 4/3/2/1;
    # index MCP = 8, index tip = 5; pinky MCP = 20, pinky tip = 17. Right hand: + 21.
    for canon, rhd in ((0, 0), (1, 4), (2, 3), (4, 1), (5, 8), (8, 5), (9, 12), (13, 16), (17, 20), (20, 17)):
        np.testing.assert_array_equal(left7["joints_cam_m"][canon], xyz[rhd])
        np.testing.assert_array_equal(ds[2]["joints_cam_m"][canon], xyz[21 + rhd])
        np.testing.assert_allclose(left7["joints_2d"][canon], proj(RHD_K, xyz[rhd:rhd + 1])[0], atol=1e-3)
    assert left7["side"] == "left" and ds[2]["side"] == "right"
    assert not left7["visible"][2] and left7["visible"].sum() == 20  # RHD joint 3 = canonical 2
    assert ds[2]["visible"].sum() == 5
    np.testing.assert_array_equal(np.flatnonzero(ds[2]["visible"]), [0, 1, 2, 3, 4])  # RHD 0-4: wrist + thumb
    # masks: labels 2-17 = left, >= 18 = right, 1 (person) and 0 neither
    lm, rm = left7["mask"], ds[2]["mask"]
    assert lm[5, 5] == 1 and lm[50, 50] == 1 and lm[51, 51] == 0 and lm[5, 50] == 0
    assert rm[35, 35] == 1 and rm[51, 51] == 1 and rm[50, 50] == 0 and rm[5, 5] == 0 and rm[5, 45] == 0
    np.testing.assert_allclose(left7["depth_m"][3, 4], 1.234, atol=5.0 / 65535)
    np.testing.assert_allclose(left7["depth_m"][10, 10], 2.0, atol=5.0 / 65535)
    np.testing.assert_allclose(left7["image"][0, 0], (10, 27, 30))
    check_crop(left7)

    assert [s["id"] for s in build_dataset("rhd", tmp_path, "train", hands="right")] == ["rhd/training/00007/right"]
    assert len(build_dataset("rhd", tmp_path, "train", min_visible=6)) == 2
    dominant = build_dataset("rhd", tmp_path, "train", hands="dominant")
    assert [s["side"] for s in dominant] == ["left", "right"]  # sample 7: the right hand has more pixels
    # Python 2's cPickle wrote protocol 0 by default: the same reader handles it
    with open(tmp_path / "training" / "anno_training.pickle", "wb") as fh:
        pickle.dump(anno, fh, protocol=0)
    np.testing.assert_array_equal(build_dataset("rhd", tmp_path, "train")[2]["joints_cam_m"], ds[2]["joints_cam_m"])


def test_rhd_bad_annotations_are_refused(tmp_path):
    write_rhd(tmp_path)
    path = tmp_path / "training" / "anno_training.pickle"
    with open(path, "wb") as fh:
        pickle.dump({0: {"xyz": np.zeros((42, 3)), "uv_vis": np.zeros((42, 3))}}, fh, protocol=2)
    with pytest.raises(DatasetFormatError, match=r"anno_training\.pickle: sample 0: expected a dict with 'xyz', 'uv_vis', 'K'"):
        build_dataset("rhd", tmp_path, "train")
    with open(path, "wb") as fh:
        pickle.dump({0: {"xyz": np.zeros((21, 3)), "uv_vis": np.zeros((42, 3)), "K": RHD_K}}, fh, protocol=2)
    with pytest.raises(DatasetFormatError, match=r"sample 0 'xyz': expected shape 42x3"):
        build_dataset("rhd", tmp_path, "train")

    class Evil:
        def __reduce__(self):
            import os
            return (os.system, ("true",))

    with open(path, "wb") as fh:
        pickle.dump({0: Evil()}, fh, protocol=2)
    with pytest.raises(UnsafePickleError):
        build_dataset("rhd", tmp_path, "train")
    with pytest.raises(FileNotFoundError, match=r"evaluation: folder not found"):
        build_dataset("rhd", tmp_path, "evaluation")


# ----------------------------------------------------------------------------- HO-3D

HO3D_K = np.array([[614.0, 0, 320.0], [0, 612.0, 240.0], [0, 0, 1]])
GL = np.array([1.0, -1.0, -1.0])
CANON_TO_MANO16 = (0, 5, 6, 7, 9, 10, 11, 17, 18, 19, 13, 14, 15, 1, 2, 3, 4, 8, 12, 16, 20)


def write_ho3d(root, ext=".jpg"):
    rng = np.random.default_rng(2)
    layer = _layer(True)  # HO-3D's MANO poses are flat-hand-mean poses
    truth = {}
    (root / "train.txt").write_text("SEQA/0000\nSEQA/0001\n\n")
    (root / "evaluation.txt").write_text("SEQB/0003\n")
    for seq, fid in (("SEQA", "0000"), ("SEQA", "0001")):
        d = root / "train" / seq
        for sub in ("rgb", "meta", "depth"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        pose = rng.normal(0, 0.25, 48)
        pose[:3] = [np.pi, 0, 0]  # turn the hand to face the OpenGL camera (looking down -z)
        beta = rng.normal(0, 1, 10)
        verts, joints = mano_mm(layer, pose, beta)  # canonical order
        trans = np.array([0.03, 0.02, -0.55]) - joints[0]
        j_gl, v_gl = joints + trans, verts + trans
        hand_joints = j_gl[list(CANON_TO_MANO16)]  # MANO 16 + tips order, as HO-3D stores it
        meta = {"handJoints3D": hand_joints, "handPose": pose, "handBeta": beta, "handTrans": trans,
                "camMat": HO3D_K, "objName": "003_cracker_box", "objRot": np.zeros((3, 1)),
                "objTrans": np.zeros(3), "objLabel": 1}
        with open(d / "meta" / f"{fid}.pkl", "wb") as fh:
            pickle.dump(meta, fh, protocol=2)
        img = np.full((48, 64, 3), (90, 60, 30), np.uint8)
        cv2.imwrite(str(d / "rgb" / f"{fid}{ext}"), img[..., ::-1])
        dep = np.zeros((48, 64, 3), np.uint8)
        raw = int(round(0.55 / 0.00012498664727900177))
        dep[..., 2] = raw & 255  # red: low byte
        dep[..., 1] = raw >> 8   # green: high byte
        cv2.imwrite(str(d / "depth" / f"{fid}.png"), dep)
        truth[fid] = dict(j_gl=j_gl, v_gl=v_gl, hand_joints=hand_joints, beta=beta, raw=raw)
    d = root / "evaluation" / "SEQB"
    (d / "rgb").mkdir(parents=True)
    (d / "meta").mkdir()
    cv2.imwrite(str(d / "rgb" / f"0003{ext}"), np.zeros((48, 64, 3), np.uint8))
    meta = {"handJoints3D": np.array([0.01, -0.02, -0.5]), "handBoundingBox": np.array([10.0, 8.0, 40.0, 30.0]),
            "camMat": HO3D_K, "objName": "x"}
    with open(d / "meta" / "0003.pkl", "wb") as fh:
        pickle.dump(meta, fh, protocol=2)
    return truth


@pytest.mark.parametrize("ext", [".jpg", ".png"])  # v3, v2
def test_ho3d_axes_joint_order_and_mano(tmp_path, ext):
    truth = write_ho3d(tmp_path, ext)
    ds = build_dataset("ho3d", tmp_path, "train", mano=MANO, verts=True, depth=True)
    assert len(ds) == 2
    s = ds[1]
    t = truth["0001"]
    assert s["id"] == "ho3d/train/SEQA/0001" and s["side"] == "right"
    hj = t["hand_joints"]
    # hand-computed: OpenGL -> optical = (x, -y, -z); canonical <- HO-3D index:
    # wrist 0, thumb CMC..tip 13, 14, 15, 16, index MCP 1, index tip 17, ring MCP 10, pinky MCP 7, pinky tip 20
    for canon, ho in ((0, 0), (1, 13), (2, 14), (3, 15), (4, 16), (5, 1), (8, 17), (9, 4), (13, 10), (17, 7), (20, 20)):
        np.testing.assert_allclose(s["joints_cam_m"][canon], hj[ho] * GL, atol=1e-6)
    assert np.all(s["joints_cam_m"][:, 2] > 0)  # in front of the camera
    np.testing.assert_allclose(s["joints_2d"], proj(HO3D_K, s["joints_cam_m"].astype(np.float64)), atol=1e-3)
    # our MANO convention (flat_hand_mean=False, optical frame) rebuilds the same hand
    verts, joints = mano_mm(_layer(False), s["mano_pose"], s["mano_shape"])
    np.testing.assert_allclose(joints + s["mano_trans"], s["joints_cam_m"], atol=1e-5)
    np.testing.assert_allclose(s["verts_cam_m"], t["v_gl"] * GL, atol=1e-5)
    np.testing.assert_allclose(s["depth_m"][5, 5], t["raw"] * 0.00012498664727900177, atol=1e-6)
    check_crop(s)
    plain = build_dataset("ho3d", tmp_path, "train")[0]
    assert "mano_pose" not in plain and "mano_trans" not in plain and plain["mano_shape"].shape == (10,)


def test_ho3d_evaluation_has_root_and_box_only(tmp_path):
    write_ho3d(tmp_path)
    s = build_dataset("ho3d", tmp_path, "evaluation")[0]
    np.testing.assert_allclose(s["joints_cam_m"][0], [0.01, 0.02, 0.5], atol=1e-7)
    assert np.isnan(s["joints_cam_m"][1:]).all()
    assert s["visible"].tolist() == [True] + [False] * 20
    np.testing.assert_allclose(s["joints_2d"][0], proj(HO3D_K, np.array([[0.01, 0.02, 0.5]]))[0], atol=1e-3)
    np.testing.assert_allclose(s["joints_2d"][1:5], [[10, 8], [40, 8], [40, 30], [10, 30]])
    np.testing.assert_allclose(s["joints_2d"][9], [25, 19])
    out = build_transform({"crop_size": 64}, train=False)(s)  # the crop frames the hand box
    assert np.all((out["joints_2d"][1:5] > 0) & (out["joints_2d"][1:5] < 64))


def test_ho3d_errors_name_the_file(tmp_path):
    write_ho3d(tmp_path)
    meta = tmp_path / "train" / "SEQA" / "meta" / "0000.pkl"
    with open(meta, "wb") as fh:
        pickle.dump({"handJoints3D": None, "camMat": HO3D_K}, fh, protocol=2)
    ds = build_dataset("ho3d", tmp_path, "train")
    with pytest.raises(DatasetFormatError, match=r"0000\.pkl: 'handJoints3D' is missing or None"):
        ds[0]
    (tmp_path / "train" / "SEQA" / "rgb" / "0001.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"SEQA/rgb/0001\.jpg\|\.png: not found"):
        ds[1]
    (tmp_path / "train.txt").write_text("SEQA-0000\n")
    with pytest.raises(DatasetFormatError, match=r"train\.txt:1: expected 'SEQ/ID'"):
        build_dataset("ho3d", tmp_path, "train")
    with pytest.raises(ValueError, match="needs a MANO model"):
        build_dataset("ho3d", tmp_path, "evaluation", verts=True)


def test_freihand_mano_file_of_the_wrong_size(tmp_path):
    write_freihand(tmp_path)
    (tmp_path / "training_mano.json").write_text(json.dumps([[[0.0] * 61]] * 2))  # 2 entries for 3 samples
    with pytest.raises(DatasetFormatError, match=r"training_mano\.json: 3 MANO entries of 61 values: expected shape 3x61, got \(2, 61\)"):
        build_dataset("freihand", tmp_path, "train")
