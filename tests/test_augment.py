"""Augmentations keep image, mask, depth, 2D, 3D, K and MANO consistent (training.augment)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hand_pose_core.camera import validate_intrinsics
from training.augment import NO_RANDOM, AugmentedDataset, build_transform, sample_rng
from training.augment_geometry import apply_geometry, crop_affine, CropGeometry
from training.datasets.sample import validate_sample

H, W = 240, 320
K_SRC = np.array([[500.0, 0, 150.0], [0, 530.0, 110.0], [0, 0, 1]], np.float32)  # fx != fy
DISC_R = 4


def _colours():
    rng = np.random.default_rng(7)
    return rng.integers(40, 256, (21, 3)).astype(np.uint8)


def project(K, X):
    p = X @ np.asarray(K, np.float64).T
    return p[:, :2] / p[:, 2:3]


def make_sample(seed=0):
    """Joints on a jittered grid (>= 12 px apart), back-projected at random depths; each joint is
    a coloured disc in the image, in the mask and in the depth map (its own z)."""
    rng = np.random.default_rng(seed)
    gx, gy = np.meshgrid(np.arange(7) * 14.0, np.arange(3) * 14.0)
    uv = np.stack([gx.ravel(), gy.ravel()], 1) + rng.uniform(-1, 1, (21, 2)) + [110.0, 90.0]
    z = rng.uniform(0.45, 0.55, 21)
    Kinv = np.linalg.inv(K_SRC.astype(np.float64))
    X = (np.concatenate([uv, np.ones((21, 1))], 1) @ Kinv.T) * z[:, None]
    image = np.full((H, W, 3), 30, np.uint8)
    mask = np.zeros((H, W), np.uint8)
    depth = np.zeros((H, W), np.float32)
    yy, xx = np.mgrid[0:H, 0:W]
    cols = _colours()
    for j in range(21):
        disc = (xx - uv[j, 0]) ** 2 + (yy - uv[j, 1]) ** 2 <= DISC_R ** 2
        image[disc] = cols[j]
        mask[disc] = 1
        depth[disc] = z[j]
    verts = X[rng.integers(0, 21, 778)] + rng.normal(0, 0.005, (778, 3))
    return validate_sample({
        "image": image, "K": K_SRC.copy(), "joints_cam_m": X.astype(np.float32),
        "joints_2d": uv.astype(np.float32), "visible": np.ones(21, bool), "side": "right",
        "id": f"test/{seed}", "mask": mask, "depth_m": depth, "verts_cam_m": verts.astype(np.float32),
    })


def check_consistent(out, size, *, check_pixels=True):
    assert out["image"].shape == (size, size, 3) and out["image"].dtype == np.uint8
    K = np.asarray(out["K"], np.float64)
    assert abs(K[0, 1]) < 1e-6 and np.allclose(K[2], [0, 0, 1])
    # exactly upper triangular (no 1e-14 rounding residue): the core's intrinsics check accepts
    # it, so the metric placement from K works on augmented crops
    validate_intrinsics(out["K"])
    np.testing.assert_allclose(K[0, 0], K[1, 1], rtol=1e-5)  # square pixels in every crop
    uv = project(K, np.asarray(out["joints_cam_m"], np.float64))
    np.testing.assert_allclose(uv, out["joints_2d"], atol=2e-3)  # 3D projects onto the 2D
    inside = np.all((out["joints_2d"] > 1) & (out["joints_2d"] < size - 2), axis=1)
    assert inside.sum() >= 15, "the crop should frame the hand"
    if not check_pixels:
        return
    cols = _colours()
    r = np.round(out["joints_2d"][inside]).astype(int)
    assert np.all(out["mask"][r[:, 1], r[:, 0]] == 1), "mask not aligned with the joints"
    z = np.asarray(out["joints_cam_m"])[inside, 2]
    np.testing.assert_allclose(out["depth_m"][r[:, 1], r[:, 0]], z, atol=1e-6)
    got = out["image"][r[:, 1], r[:, 0]].astype(int)
    assert np.abs(got - cols[inside].astype(int)).max() <= 3, "image not aligned with the joints"


def test_crop_only_is_consistent_and_keeps_3d():
    s = make_sample()
    out = build_transform({"crop_size": 224, "upright": False}, train=False)(s)
    check_consistent(out, 224)
    np.testing.assert_array_equal(out["joints_cam_m"], s["joints_cam_m"])  # pure crop: 3D unchanged
    np.testing.assert_array_equal(out["verts_cam_m"], s["verts_cam_m"])
    # the joints' box (longest side) fills 1 / crop_scale of the crop, centred
    j = out["joints_2d"]
    ext = (j.max(0) - j.min(0)).max()
    assert abs(ext - 224 / 1.6) < 1.0
    centre = (j.max(0) + j.min(0)) / 2
    np.testing.assert_allclose(centre, [111.5, 111.5], atol=1.0)


def test_crop_upright_rotates_3d_and_points_fingers_up():
    s = make_sample()
    out = build_transform({"crop_size": 128}, train=False)(s)
    check_consistent(out, 128)
    d = out["joints_2d"][9] - out["joints_2d"][0]
    assert d[1] < 0 and abs(d[0]) < 1e-3 * abs(d[1]) + 1e-3
    # rotation about the optical axis: z and distances kept
    np.testing.assert_allclose(out["joints_cam_m"][:, 2], s["joints_cam_m"][:, 2], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(out["joints_cam_m"], axis=1),
                               np.linalg.norm(s["joints_cam_m"], axis=1), atol=1e-6)


SINGLE = {
    "scale": {"scale_jitter": 0.4},
    "translation": {"trans_jitter": 0.2},
    "rotation": {"rot_deg": 180.0},
    "flip": {"flip_prob": 1.0},
    "color": {"color_prob": 1.0},
    "blur": {"blur_prob": 1.0},
    "motion_blur": {"motion_blur_prob": 1.0},
    "noise": {"noise_prob": 1.0},
    "background": {"bg_prob": 1.0},
    "clutter": {"clutter_prob": 1.0},
}
GEOMETRIC = {"scale", "translation", "rotation", "flip"}


@pytest.mark.parametrize("name", sorted(SINGLE))
def test_each_augmentation_keeps_labels_consistent(name):
    s = make_sample(1)
    base_cfg = {"crop_size": 160, "upright": False}
    ref = build_transform(base_cfg, train=False)(s)
    tf = build_transform({**base_cfg, **NO_RANDOM, **SINGLE[name]}, train=True)
    changed = 0
    for seed in range(4):
        out = tf(s, np.random.default_rng(seed))
        check_consistent(out, 160, check_pixels=name in GEOMETRIC)
        if name in GEOMETRIC:
            changed += not np.allclose(out["joints_2d"], ref["joints_2d"], atol=1e-3)
            # verts follow the joints (the same orthogonal map)
            R = np.linalg.lstsq(s["joints_cam_m"].astype(np.float64), out["joints_cam_m"].astype(np.float64),
                                rcond=None)[0].T
            np.testing.assert_allclose(out["verts_cam_m"], s["verts_cam_m"] @ R.T, atol=1e-5)
        else:  # appearance only: geometry exactly that of the plain crop
            for key in ("K", "joints_2d", "joints_cam_m", "depth_m"):
                np.testing.assert_array_equal(out[key], ref[key])
            assert out["side"] == ref["side"]
            changed += not np.array_equal(out["image"], ref["image"])
            if name == "clutter":
                assert np.all(out["mask"] <= ref["mask"])  # occluders only remove hand pixels
                keep = out["mask"] == 1
                np.testing.assert_array_equal(out["image"][keep], ref["image"][keep])
            else:
                np.testing.assert_array_equal(out["mask"], ref["mask"])
            if name == "background":
                keep = ref["mask"] == 1
                np.testing.assert_array_equal(out["image"][keep], ref["image"][keep])
                assert not np.array_equal(out["image"][~keep], ref["image"][~keep])
    assert changed >= 3, f"{name} did not change the sample"


def test_flip_swaps_side_and_mirrors():
    s = make_sample(2)
    base = {"crop_size": 160, "upright": False}
    ref = build_transform(base, train=False)(s)
    out = build_transform({**base, **NO_RANDOM, "flip_prob": 1.0}, train=True)(s, 0)
    assert out["side"] == "left"
    np.testing.assert_allclose(out["joints_cam_m"], ref["joints_cam_m"] * [-1, 1, 1], atol=1e-7)
    np.testing.assert_allclose(out["joints_2d"][:, 0], 159 - ref["joints_2d"][:, 0], atol=1e-4)
    np.testing.assert_allclose(out["K"][0, 2], 159 - ref["K"][0, 2], atol=1e-3)
    np.testing.assert_array_equal(out["mask"], ref["mask"][:, ::-1])


def test_rotation_rotates_3d_about_optical_axis():
    s = make_sample(3)
    base = {"crop_size": 160, "upright": False}
    ref = build_transform(base, train=False)(s)
    out = build_transform({**base, **NO_RANDOM, "rot_deg": 90.0}, train=True)(s, 5)
    a, b = ref["joints_cam_m"].astype(np.float64), out["joints_cam_m"].astype(np.float64)
    np.testing.assert_allclose(b[:, 2], a[:, 2], atol=1e-6)
    ang_a = np.arctan2(a[:, 1], a[:, 0])
    ang_b = np.arctan2(b[:, 1], b[:, 0])
    d = np.angle(np.exp(1j * (ang_b - ang_a)))
    assert np.ptp(d) < 1e-4 and abs(d[0]) > 1e-3  # one common rotation angle, not zero
    # the 2D turned by the same angle about the crop centre
    c = np.array([79.5, 79.5])
    ang2a = np.arctan2(*(ref["joints_2d"] - c)[:, ::-1].T)
    ang2b = np.arctan2(*(out["joints_2d"] - c)[:, ::-1].T)
    np.testing.assert_allclose(np.angle(np.exp(1j * (ang2b - ang2a))), d, atol=1e-3)


def test_all_augmentations_together_and_determinism():
    s = make_sample(4)
    cfg = {"crop_size": 96, "rot_deg": 180, "flip_prob": 0.5, "bg_prob": 0.5, "clutter_prob": 0.5,
           "blur_prob": 0.5, "noise_prob": 0.5}
    tf = build_transform(cfg, train=True)
    for seed in range(6):
        a = tf(s, sample_rng(1, 2, seed))
        b = tf(s, sample_rng(1, 2, seed))
        check_consistent(a, 96, check_pixels=False)
        for key in ("image", "K", "joints_2d", "joints_cam_m", "mask", "depth_m", "verts_cam_m"):
            assert np.array_equal(a[key], b[key]), key
        assert a["side"] == b["side"]
    x = tf(s, sample_rng(1, 2, 0))["image"]
    y = tf(s, sample_rng(1, 3, 0))["image"]
    assert not np.array_equal(x, y)
    # the source sample is not modified in place
    np.testing.assert_array_equal(s["image"], make_sample(4)["image"])


def test_augmented_dataset_is_reproducible_per_epoch():
    base = [make_sample(i) for i in range(3)]
    tf = build_transform({"crop_size": 64}, train=True)
    ds = AugmentedDataset(base, tf, seed=9)
    ds.set_epoch(1)
    first = [ds[i]["image"] for i in range(3)]
    ds.set_epoch(2)
    assert not np.array_equal(ds[0]["image"], first[0])
    ds.set_epoch(1)
    assert all(np.array_equal(ds[i]["image"], first[i]) for i in range(3))


def test_bad_config_and_missing_rng_are_refused():
    with pytest.raises(ValueError, match="unknown augmentation option"):
        build_transform({"rotation": 10})
    with pytest.raises(ValueError, match="probability"):
        build_transform({"flip_prob": 2})
    with pytest.raises(ValueError, match="Generator"):
        build_transform({}, train=True)(make_sample())


def test_mano_parameters_follow_rotation_and_flip():
    from hand_pose_core.mano.layer import ManoLayer
    from hand_pose_core.mano.synthetic import synthetic_mano

    layers = {side: ManoLayer(model=synthetic_mano(side), use_pca=False, flat_hand_mean=False,
                              side=side, dtype=torch.float64, tip_vertex_ids="smplx") for side in ("right", "left")}

    def mano(side, pose, shape, trans):
        v, j = layers[side](torch.as_tensor(pose, dtype=torch.float64)[None],
                            torch.as_tensor(shape, dtype=torch.float64)[None])
        return v[0].numpy() / 1000 + trans, j[0].numpy() / 1000 + trans

    rng = np.random.default_rng(0)
    pose = rng.normal(0, 0.3, 48)
    shape = rng.normal(0, 1, 10)
    trans = np.array([0.02, -0.01, 0.5])
    verts, joints = mano("right", pose, shape, trans)
    K = np.array([[600.0, 0, 160], [0, 600.0, 120], [0, 0, 1]], np.float32)
    s = {"image": np.zeros((240, 320, 3), np.uint8), "K": K, "joints_cam_m": joints.astype(np.float32),
         "joints_2d": project(K, joints).astype(np.float32), "visible": np.ones(21, bool),
         "side": "right", "id": "mano", "verts_cam_m": verts.astype(np.float32),
         "mano_pose": pose.astype(np.float32), "mano_shape": shape.astype(np.float32),
         "mano_trans": trans.astype(np.float32)}
    for cfg, seed in (({"rot_deg": 180.0}, 0), ({"flip_prob": 1.0}, 0), ({"rot_deg": 180.0, "flip_prob": 1.0}, 3)):
        out = build_transform({"crop_size": 128, **NO_RANDOM, **cfg}, train=True)(s, seed)
        check_consistent(out, 128, check_pixels=False)
        v2, j2 = mano(out["side"], out["mano_pose"], out["mano_shape"], out["mano_trans"].astype(np.float64))
        np.testing.assert_allclose(v2, out["verts_cam_m"], atol=2e-6)
        np.testing.assert_allclose(j2, out["joints_cam_m"], atol=2e-6)


def test_geometry_keeps_depth_values_and_refuses_nothing_silently():
    s = make_sample(5)
    M, R = crop_affine(CropGeometry(centre_q=np.array([0.0, 0.0]), side_q=200.0, angle_rad=0.3), s["K"], 100)
    out = apply_geometry(s, M, R, 100)
    vals = set(np.unique(out["depth_m"])) - {0.0}
    assert vals <= set(np.unique(s["depth_m"]))  # nearest neighbour: no blended depths


def test_side_option_mirrors_other_side_only():
    s = make_sample(6)
    tf = build_transform({"crop_size": 96, "upright": False, "side": "left"}, train=False)
    out = tf(s)
    assert out["side"] == "left"
    check_consistent(out, 96, check_pixels=True)
    ref = build_transform({"crop_size": 96, "upright": False}, train=False)(s)
    np.testing.assert_allclose(out["joints_cam_m"], ref["joints_cam_m"] * [-1, 1, 1], atol=1e-7)
    left = dict(s, side="left")
    np.testing.assert_array_equal(tf(left)["image"], ref["image"])  # already left: untouched
    with pytest.raises(ValueError, match="exclude"):
        build_transform({"side": "right", "flip_prob": 0.5})


def test_rotvec_conversions_match_scipy_including_near_pi():
    from scipy.spatial.transform import Rotation

    from training.augment_geometry import matrix_to_rotvec, rotvec_to_matrix

    rng = np.random.default_rng(0)
    axes = rng.normal(size=(40, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.concatenate([rng.uniform(0, np.pi, 30), [0.0, 1e-8, 1e-5, np.pi - 1e-3, np.pi - 1e-5,
                                                         np.pi - 1e-7, np.pi, 2.0, 3.0, 0.5]])
    for rv in axes * angles[:, None]:
        R = rotvec_to_matrix(rv)
        np.testing.assert_allclose(R, Rotation.from_rotvec(rv).as_matrix(), atol=1e-12)
        np.testing.assert_allclose(rotvec_to_matrix(matrix_to_rotvec(R)), R, atol=1e-9)


def test_loader_batches_identical_with_0_and_2_workers():
    from torch.utils.data import DataLoader

    from training.augment import worker_init
    from training.datasets.collate import collate_samples

    base = [make_sample(i) for i in range(6)]
    ds = AugmentedDataset(base, build_transform({"crop_size": 48, "rot_deg": 90, "noise_prob": 0.5,
                                                 "clutter_prob": 0.5}, train=True), seed=3)
    ds.set_epoch(4)
    runs = []
    for workers in (0, 2):
        loader = DataLoader(ds, batch_size=3, num_workers=workers, collate_fn=collate_samples,
                            worker_init_fn=worker_init if workers else None)
        runs.append([b for b in loader])
    for a, b in zip(*runs):
        for key in ("image", "K", "joints_2d", "joints_cam_m", "mask"):
            assert torch.equal(a[key], b[key]), key


def test_background_images_from_a_folder(tmp_path):
    import cv2

    (tmp_path / "bg").mkdir()
    cv2.imwrite(str(tmp_path / "bg" / "red.png"), np.full((300, 400, 3), (0, 0, 255), np.uint8))  # BGR
    cv2.imwrite(str(tmp_path / "bg" / "sub.png"), np.full((50, 60, 3), (255, 0, 0), np.uint8))
    s = make_sample(7)
    tf = build_transform({"crop_size": 64, **NO_RANDOM, "bg_prob": 1.0, "backgrounds": str(tmp_path / "bg")},
                         train=True)
    seen = set()
    for seed in range(8):
        out = tf(s, seed)
        outside = out["image"][out["mask"] == 0]
        colours = {tuple(c) for c in np.unique(outside, axis=0)}
        assert len(colours) == 1 and colours <= {(255, 0, 0), (0, 0, 255)}  # RGB red or blue
        seen |= colours
    assert len(seen) == 2  # both images used
    with pytest.raises(FileNotFoundError, match="background folder not found"):
        build_transform({"bg_prob": 1.0, "backgrounds": str(tmp_path / "nope")}, train=True)  # at once
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no background images"):
        build_transform({"bg_prob": 1.0, "backgrounds": str(tmp_path / "empty")}, train=True)(s, 0)


class _ThreadsAfterTransform:
    def __init__(self, tf, sample):
        self.tf, self.sample = tf, sample

    def __len__(self):
        return 2

    def __getitem__(self, i):
        import cv2

        self.tf(self.sample)
        return cv2.getNumThreads()


def test_opencv_single_threaded_inside_loader_workers_only():
    import cv2
    from torch.utils.data import DataLoader

    before = cv2.getNumThreads()
    ds = _ThreadsAfterTransform(build_transform({"crop_size": 32}), make_sample(8))
    # a forked worker keeps the parent's OpenCV setting: reconfiguring OpenCV's copied thread
    # pool after fork can deadlock (training.augment._set_opencv_threads_safely)
    got = [int(x) for x in DataLoader(ds, batch_size=None, num_workers=1)]
    assert got == [before, before]
    ds[0]  # in the main process: left alone
    assert cv2.getNumThreads() == before


def test_opencv_single_threaded_in_spawned_workers():
    """A process that imported training.augment itself (a spawned worker) sets one thread."""
    import subprocess
    import sys

    code = ("import cv2\nfrom training.augment import worker_init\nworker_init(0)\n"
            "print(cv2.getNumThreads())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "1"
