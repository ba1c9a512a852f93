"""Pseudo-labelled footage: `hand-pose pseudo-label` on the shared real video (first frames only)
and on a ROS 2 bag, read back with build_dataset('footage')."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from training.datasets import build_dataset, validate_sample
from training.datasets.collate import collate_samples
from training.datasets.footage import split_frames
from training.pseudo_label import crop_affine, joint_confidence, read_labels

VIDEO = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real" / "asl_hand.25fps.mp4"
if not VIDEO.is_file():
    VIDEO = Path("/work/shared/data/real/asl_hand.25fps.mp4")
needs_video = pytest.mark.skipif(not VIDEO.is_file(), reason=f"shared real video {VIDEO} is absent "
                                 "(../shared/data/real is not checked out here)")
K_TEXT = "900,900,310,540"
N_FRAMES = 16


def _frames(n):
    from hand_pose_core.frames import iter_video_rgb

    out = []
    for rgb in iter_video_rgb(VIDEO):
        out.append(rgb)
        if len(out) == n:
            break
    return out


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    if not VIDEO.is_file():
        pytest.skip(f"shared real video {VIDEO} is absent")
    from hand_pose_core.cli import main

    out = tmp_path_factory.mktemp("footage") / "asl"
    assert main(["pseudo-label", str(VIDEO), "--out", str(out), "--K", K_TEXT,
                 "--max-frames", str(N_FRAMES), "--crop-size", "128"]) == 0
    return out


def test_confidence_rule():
    K = np.array([[500.0, 0, 100], [0, 500, 80], [0, 0, 1]])
    X = np.column_stack([np.linspace(-0.05, 0.05, 21), np.linspace(-0.04, 0.04, 21), np.full(21, 0.5)])
    uv = X @ K.T
    uv = uv[:, :2] / uv[:, 2:]
    np.testing.assert_allclose(joint_confidence(uv, X, K, 0.9), 0.9, rtol=1e-6)
    extent = np.max(uv.max(0) - uv.min(0))  # 100 px -> sigma 5 px
    moved = uv.copy()
    moved[3, 0] += 0.05 * extent
    conf = joint_confidence(moved, X, K, 0.8)
    assert conf[3] == pytest.approx(0.8 * np.exp(-0.5), rel=1e-4) and conf[4] == pytest.approx(0.8)
    assert np.all(joint_confidence(uv, X * [1, 1, -1], K, 1.0) == 0)  # behind the camera


def test_split_rule_by_frame_ranges():
    frames = np.arange(40)
    val = split_frames(frames, "val", block_frames=4, val_every=3, guard_frames=1)
    train = split_frames(frames, "train", block_frames=4, val_every=3, guard_frames=1)
    assert list(frames[val]) == [8, 9, 10, 11, 20, 21, 22, 23, 32, 33, 34, 35]
    # Guards: the last frame before and the first after every val block are in neither split.
    assert not train[[7, 12, 19, 24, 31, 36]].any() and train[[0, 6, 13, 18, 25]].all()
    assert not (val & train).any() and split_frames(frames, "all").all()
    with pytest.raises(ValueError, match="split"):
        split_frames(frames, "test")


def test_auto_blocks_give_a_short_clip_held_out_frames():
    clip = np.arange(325)  # the shared 13-s clip: with 250-frame blocks it had no 'val' frame
    assert not split_frames(clip, "val", block_frames=250).any()
    val, train = split_frames(clip, "val"), split_frames(clip, "train")
    assert list(clip[val]) == list(range(288, 320))  # 32-frame blocks, the 10th held out
    assert not (val & train).any() and train[:263].all() and not train[263:].any()  # 25-frame guards
    long = np.arange(10_000)  # long footage keeps 250-frame blocks
    assert list(np.flatnonzero(split_frames(long, "val"))[:2]) == [2250, 2251]
    assert split_frames(long, "val").sum() == 1000
    with pytest.raises(ValueError, match="block_frames"):
        split_frames(clip, "val", block_frames="short")


@needs_video
def test_pseudo_labels_match_the_footage(labelled):
    meta = json.loads((labelled / "meta.json").read_text())
    assert meta["frames"] == N_FRAMES and meta["calibrated"] is True and meta["count"] >= N_FRAMES - 2
    K = np.array(meta["K"])
    np.testing.assert_allclose(K, [[900, 0, 310], [0, 900, 540], [0, 0, 1]])
    frames = _frames(N_FRAMES)
    ds = build_dataset("footage", labelled, "all")
    assert len(ds) == meta["count"]
    for i in range(0, len(ds), 5):
        s = validate_sample(ds[i])
        rec = read_labels(sorted((labelled / "labels").glob("*.npy"))[i])
        # The crop is the frame region of crop_box, and K of the crop is that warp applied to K.
        M = crop_affine(rec["crop_box"], 128)
        np.testing.assert_allclose(s["K"], np.vstack([M @ K, [0, 0, 1]]), rtol=1e-5)
        expected = cv2.warpAffine(frames[int(rec["frame"])], M, (128, 128), flags=cv2.INTER_LINEAR)
        mse = np.mean((s["image"].astype(float) - expected) ** 2)
        assert 10 * np.log10(255 ** 2 / mse) > 30
        # The teacher 3D projects (through the crop K) onto the teacher 2D where confidence is high.
        p = s["joints_cam_m"] @ s["K"].T
        err = np.linalg.norm(p[:, :2] / p[:, 2:] - s["joints_2d"], axis=1)
        size = np.max(s["joints_2d"].max(0) - s["joints_2d"].min(0))
        sure = s["joints_conf"] > 0.6 * rec["score"]
        # conf > 0.6 * presence <=> error < 1.01 sigma; sigma = max(2 px, 5 % of the extent) in
        # the frame, scaled into the crop.
        scale = 128 / rec["crop_box"][2]
        sigma_crop = max(2 * scale, 0.05 * size)
        assert sure.sum() >= 10 and np.all(err[sure] < 1.02 * sigma_crop), (err[sure], sigma_crop)
        assert np.all(err[~sure] > 0.99 * sigma_crop)
        # MANO labels reproduce the vertices, and the hand fills the crop's centre.
        assert "verts_cam_m" in s and s["joints_2d"].min() > 0 and s["joints_2d"].max() < 128
        assert s["side"] in ("left", "right") and 0 < s["joints_conf"].max() <= 1
    batch = collate_samples([ds[0], ds[1]])
    assert batch["has_3d"].all() and batch["joints_conf"].shape == (2, 21)


@needs_video
def test_footage_splits_hold_out_frame_ranges(labelled):
    opts = dict(block_frames=4, val_every=2, guard_frames=1)
    train = build_dataset("footage", labelled, "train", **opts)
    val = build_dataset("footage", labelled, "val", **opts)
    f_train = {int(s["id"].split("/")[2]) for s in (train[i] for i in range(len(train)))}
    f_val = {int(s["id"].split("/")[2]) for s in (val[i] for i in range(len(val)))}
    assert f_val and f_train and not (f_val & f_train)
    assert all((f // 4) % 2 == 1 for f in f_val)
    assert all(abs(a - b) > 1 for a in f_train for b in f_val)  # guard frames between them
    # Dropping uncalibrated 3D does nothing here (the footage was calibrated).
    assert np.isfinite(build_dataset("footage", labelled, "all", uncalibrated_3d="drop")[0]["joints_cam_m"]).all()


@needs_video
def test_bag_source_with_camera_info(tmp_path):
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore

    from training.pseudo_label import pseudo_label

    store = get_typestore(Stores.ROS2_JAZZY)
    Image = store.types["sensor_msgs/msg/Image"]
    Info = store.types["sensor_msgs/msg/CameraInfo"]
    Header = store.types["std_msgs/msg/Header"]
    Time = store.types["builtin_interfaces/msg/Time"]
    RoI = store.types["sensor_msgs/msg/RegionOfInterest"]
    bag = tmp_path / "bag"
    frames = _frames(6)
    h, w = frames[0].shape[:2]
    with Writer(bag, version=9) as wr:
        c_img = wr.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=store)
        c_info = wr.add_connection("/cam/camera_info", "sensor_msgs/msg/CameraInfo", typestore=store)
        for i, rgb in enumerate(frames):
            t = 1_000_000_000 + i * 40_000_000
            hdr = Header(stamp=Time(sec=1, nanosec=i * 40_000_000), frame_id="cam")
            info = Info(header=hdr, height=h, width=w, distortion_model="plumb_bob", d=np.zeros(5),
                        k=np.array([800.0, 0, 300, 0, 800, 530, 0, 0, 1]), r=np.eye(3).ravel(),
                        p=np.zeros(12), binning_x=0, binning_y=0,
                        roi=RoI(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))
            wr.write(c_info, t, store.serialize_cdr(info, "sensor_msgs/msg/CameraInfo"))
            bgr = np.ascontiguousarray(rgb[..., ::-1])
            img = Image(header=hdr, height=h, width=w, encoding="bgr8", is_bigendian=0, step=w * 3,
                        data=bgr.reshape(-1))
            wr.write(c_img, t + 1, store.serialize_cdr(img, "sensor_msgs/msg/Image"))
    out = tmp_path / "from_bag"
    meta = pseudo_label(bag, out, crop_size=96, progress=False)
    assert meta["frames"] == 6 and meta["calibrated"] is True and meta["count"] >= 5
    np.testing.assert_allclose(meta["K"], [[800, 0, 300], [0, 800, 530], [0, 0, 1]])
    s = build_dataset("footage", out, "all")[0]
    rec = read_labels(out / "labels" / "00000000_0.npy")
    assert rec["t_s"] == 0.0 and read_labels(out / "labels" / "00000001_0.npy")["t_s"] == pytest.approx(0.04)
    # bgr8 was converted: the crop matches the RGB frame.
    M = crop_affine(rec["crop_box"], 96)
    expected = cv2.warpAffine(frames[0], M, (96, 96), flags=cv2.INTER_LINEAR)
    assert np.abs(s["image"].astype(float) - expected).mean() < 4
    with pytest.raises(ValueError, match="no image topic"):
        pseudo_label(bag, tmp_path / "x", topic="/other", progress=False)
    with pytest.raises(ValueError, match="already holds"):
        pseudo_label(bag, out, progress=False)
    (out / "meta.json").unlink()
    with pytest.raises(ValueError, match="unfinished run"):
        pseudo_label(bag, out, progress=False)


def test_bad_footage_is_refused(tmp_path):
    from training.pseudo_label import pseudo_label

    with pytest.raises(FileNotFoundError, match="no such video"):
        pseudo_label(tmp_path / "missing.mp4", tmp_path / "o", progress=False)
    with pytest.raises(FileNotFoundError, match="meta.json"):
        build_dataset("footage", tmp_path, "train")


@needs_video
def test_corrupt_label_is_named(labelled, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(labelled, copy)
    victim = sorted((copy / "labels").glob("*.npy"))[2]
    victim.write_bytes(b"\x93NUMPY garbage")
    ds = build_dataset("footage", copy, "all")
    with pytest.raises(ValueError, match=victim.name):
        ds[[f.name for f in ds.files].index(victim.name)]
    with pytest.raises(ValueError, match=victim.name):
        build_dataset("footage", copy, "all", min_score=0.1)
    victim.unlink()
    with pytest.raises(ValueError, match="incomplete"):
        build_dataset("footage", copy, "all")
