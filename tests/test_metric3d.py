"""Metric 3D placement: synthetic hands seen by a known camera, and real MediaPipe output."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hand_pose_core.camera import K_from_fxfycxcy, default_intrinsics, project
from hand_pose_core.kinematics.forward_kinematics import (
    TEMPLATE_JOINTS_M,
    ForwardKinematics21,
    bone_lengths,
)
from hand_pose_core.kinematics.rotations import axis_angle_to_matrix
from hand_pose_core.pipeline.metric3d import (
    Placement,
    initial_translation,
    place_hand_in_camera,
    place_hands_in_camera,
)

K = K_from_fxfycxcy(600.0, 600.0, 319.5, 239.5)  # 640x480 webcam, ~56 deg horizontal FOV


def _rot(axis, angle_deg):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    return axis_angle_to_matrix(torch.tensor(axis * np.deg2rad(angle_deg))).numpy()


def _hand(rng, curl=0.5, flat=False):
    """Hand-centred metric landmarks of a right hand with random finger flexion."""
    aa = np.zeros((21, 3))
    if not flat:
        aa[1:, 0] = rng.uniform(0.0, curl, size=20)  # flex about x: fingers curl towards -z/+z
    fk = ForwardKinematics21()
    L = torch.as_tensor(bone_lengths(TEMPLATE_JOINTS_M)) * rng.uniform(0.85, 1.15)
    j = fk(L, axis_angle_to_matrix(torch.as_tensor(aa))).numpy()
    return j - j.mean(0)


def _scene(rng, depth, angle_deg, noise_px=1.0, flat=False):
    world = _hand(rng, flat=flat)
    R = _rot(rng.normal(size=3), angle_deg)
    t = np.array([rng.uniform(-0.2, 0.2) * depth, rng.uniform(-0.15, 0.15) * depth, depth])
    joints_cam = world @ R.T + t
    uv = project(joints_cam, K) + rng.normal(scale=noise_px, size=(21, 2))
    return uv, world, joints_cam, R, t


@pytest.mark.parametrize("depth", [0.2, 0.35, 0.6, 1.0])
@pytest.mark.parametrize("angle", [0.0, 25.0, 60.0])
def test_noise_free_recovery_is_exact(depth, angle):
    rng = np.random.default_rng(int(depth * 100 + angle))
    uv, world, joints_cam, R, t = _scene(rng, depth, angle, noise_px=0.0)
    pl = place_hand_in_camera(uv, world, K)
    assert isinstance(pl, Placement)
    assert pl.reproj_err_px < 1e-3
    np.testing.assert_allclose(pl.joints_cam_m, joints_cam, atol=1e-5)
    np.testing.assert_allclose(pl.R, R, atol=1e-4)
    np.testing.assert_allclose(pl.t_m, t, atol=1e-5)


@pytest.mark.parametrize("depth, tol_mm", [(0.3, 3.0), (0.45, 5.0), (0.6, 6.0)])
def test_one_px_noise_gives_few_mm(depth, tol_mm):
    rng = np.random.default_rng(7)
    errs = []
    for _ in range(40):
        uv, world, joints_cam, _, _ = _scene(rng, depth, rng.uniform(0, 40), noise_px=1.0)
        pl = place_hand_in_camera(uv, world, K)
        errs.append(np.linalg.norm(pl.joints_cam_m - joints_cam, axis=1).mean() * 1e3)
        assert 0.5 < pl.reproj_err_px < 2.0  # ~1 px noise, 6 of 42 dof absorbed
    errs = np.array(errs)
    assert np.median(errs) < tol_mm / 2, errs
    assert np.max(errs) < 2.5 * tol_mm, errs


@pytest.mark.parametrize("angle", [10.0, 25.0, 40.0])
def test_lm_from_identity_converges_up_to_40_degrees(angle):
    rng = np.random.default_rng(int(angle))
    for _ in range(10):
        uv, world, joints_cam, R, _ = _scene(rng, 0.5, angle, noise_px=0.0)
        pl = place_hand_in_camera(uv, world, K, solver="lm")
        assert pl.method == "lm_from_identity"
        np.testing.assert_allclose(pl.joints_cam_m, joints_cam, atol=1e-5)


def test_flat_hand_at_large_angle_not_mirrored():
    # A flat hand is nearly a planar target: a local solver can fall into the mirrored pose.
    rng = np.random.default_rng(3)
    for _ in range(20):
        uv, world, joints_cam, _, _ = _scene(rng, 0.5, 65.0, noise_px=0.0, flat=True)
        pl = place_hand_in_camera(uv, world, K)
        np.testing.assert_allclose(pl.joints_cam_m, joints_cam, atol=1e-4)


def test_depth_scales_with_focal_length():
    """A pipeline that ignored K would report the same depth for both cameras."""
    rng = np.random.default_rng(11)
    uv, world, joints_cam, _, t = _scene(rng, 0.5, 20.0, noise_px=0.0)
    pl = place_hand_in_camera(uv, world, K)
    assert pl.t_m[2] == pytest.approx(0.5, abs=1e-4)
    K_long = K.copy()
    K_long[0, 0] *= 2.0
    K_long[1, 1] *= 2.0
    pl_long = place_hand_in_camera(uv, world, K_long)
    # same pixels through a 2x focal length: the hand must be ~2x farther away
    assert pl_long.t_m[2] / pl.t_m[2] == pytest.approx(2.0, rel=0.03)
    # and the principal point moves the hand sideways
    K_shift = K.copy()
    K_shift[0, 2] += 60.0
    pl_shift = place_hand_in_camera(uv, world, K_shift)
    assert pl_shift.t_m[0] == pytest.approx(t[0] - 60.0 / 600.0 * 0.5, abs=5e-3)


def test_initial_translation_closed_form():
    rng = np.random.default_rng(5)
    uv, world, joints_cam, _, t = _scene(rng, 0.4, 0.0, noise_px=0.0)
    np.testing.assert_allclose(initial_translation(uv, world, K), t, atol=1e-9)


def test_rotation_modes():
    rng = np.random.default_rng(9)
    uv, world, joints_cam, _, t = _scene(rng, 0.5, 0.0, noise_px=0.5)
    for mode in ("identity", "fixed"):
        pl = place_hand_in_camera(uv, world, K, rotation=mode)
        assert np.array_equal(pl.R, np.eye(3)) and pl.method == mode
        np.testing.assert_allclose(pl.t_m, t, atol=5e-3)
    # GN over t improves (or keeps) the reprojection error of the linear guess
    fixed = place_hand_in_camera(uv, world, K, rotation="fixed")
    ident = place_hand_in_camera(uv, world, K, rotation="identity")
    assert ident.reproj_err_px <= fixed.reproj_err_px + 1e-9
    # with a rotated hand, trusting R = I leaves a large error; solving fixes it
    uv, world, _, _, _ = _scene(rng, 0.5, 35.0, noise_px=0.0)
    assert place_hand_in_camera(uv, world, K, rotation="identity").reproj_err_px > 5.0
    assert place_hand_in_camera(uv, world, K).reproj_err_px < 1e-3


def test_always_in_front_of_camera_on_garbage():
    rng = np.random.default_rng(13)
    for _ in range(50):
        uv = rng.uniform(0, 640, size=(21, 2))
        world = rng.normal(scale=0.05, size=(21, 3))
        pl = place_hand_in_camera(uv, world, K)
        assert np.isfinite(pl.joints_cam_m).all() and np.isfinite(pl.reproj_err_px)
        assert pl.t_m[2] > 0 and pl.joints_cam_m[:, 2].min() > 0
    # world landmarks mirrored in depth (a sign bug upstream) still land in front
    uv, world, _, _, _ = _scene(rng, 0.5, 0.0, noise_px=0.0)
    pl = place_hand_in_camera(uv, world * np.array([1, 1, -1]), K)
    assert pl.joints_cam_m[:, 2].min() > 0


def test_bad_input_raises():
    rng = np.random.default_rng(0)
    uv, world, _, _, _ = _scene(rng, 0.5, 0.0)
    bad_uv = uv.copy()
    bad_uv[3, 1] = np.nan
    with pytest.raises(ValueError, match="uv_px contains NaN"):
        place_hand_in_camera(bad_uv, world, K)
    with pytest.raises(ValueError, match="world_m contains NaN"):
        place_hand_in_camera(uv, world * np.inf, K)
    with pytest.raises(ValueError, match="degenerate uv_px"):
        place_hand_in_camera(np.full((21, 2), 100.0), world, K)
    with pytest.raises(ValueError, match="degenerate world_m"):
        place_hand_in_camera(uv, world * 1e-3, K)  # millimetres given as metres... /1000
    with pytest.raises(ValueError, match=r"shape \[N, 2\]"):
        place_hand_in_camera(uv[:, :1], world, K)
    with pytest.raises(ValueError, match="joints but"):
        place_hand_in_camera(uv[:20], world, K)
    with pytest.raises(ValueError, match="focal"):
        place_hand_in_camera(uv, world, K_from_fxfycxcy(0.0, 600.0, 320.0, 240.0))
    with pytest.raises(ValueError, match="rotation must be"):
        place_hand_in_camera(uv, world, K, rotation="magic")
    with pytest.raises(ValueError, match="solver must be"):
        place_hand_in_camera(uv, world, K, solver="magic")


def test_batched_matches_single():
    rng = np.random.default_rng(21)
    scenes = [_scene(rng, d, 20.0) for d in (0.3, 0.7)]
    uv = np.stack([s[0] for s in scenes])
    world = np.stack([s[1] for s in scenes])
    out = place_hands_in_camera(uv, world, K)
    assert len(out) == 2
    for pl, s in zip(out, scenes):
        single = place_hand_in_camera(s[0], s[1], K)
        np.testing.assert_allclose(pl.joints_cam_m, single.joints_cam_m)
    # one K per hand
    Ks = np.stack([K, K * np.array([[2, 1, 1], [1, 2, 1], [1, 1, 1]])])
    out2 = place_hands_in_camera(uv, world, Ks)
    assert out2[1].t_m[2] == pytest.approx(2 * out[1].t_m[2], rel=0.05)
    assert place_hands_in_camera(np.zeros((0, 21, 2)), np.zeros((0, 21, 3)), K) == []
    with pytest.raises(ValueError, match="intrinsics for"):
        place_hands_in_camera(uv, world, np.stack([K] * 3))


REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"


def _real_sequence():
    if not (REAL / "asl_hand.full.json").exists():
        pytest.skip(f"real footage not found at {REAL} (shared test data; absent on user machines)")
    uv = np.array(json.loads((REAL / "asl_hand.full.json").read_text()), dtype=np.float64)
    world = np.array(json.loads((REAL / "asl_hand_3d.full.json").read_text()), dtype=np.float64)
    return uv[..., :2], world


def test_real_mediapipe_sequence_placed_plausibly():
    """MediaPipe 2D + world landmarks of a real 620x1080 video, default (guessed) K."""
    uv, world = _real_sequence()
    K_default = default_intrinsics(620, 1080)
    out = place_hands_in_camera(uv, world, K_default)
    z = np.array([p.t_m[2] for p in out])
    err = np.array([p.reproj_err_px for p in out])
    angle = np.array([np.degrees(np.arccos(np.clip((np.trace(p.R) - 1) / 2, -1, 1))) for p in out])
    # a hand signing at arm's length from a phone camera
    assert 0.3 < z.min() and z.max() < 1.2, (z.min(), z.max())
    # MediaPipe's image and world landmarks disagree by a few px; the fit must not be far worse
    assert np.median(err) < 15.0 and err.max() < 30.0, (np.median(err), err.max())
    # world landmarks are roughly camera-aligned: no flipped or wild rotations
    assert angle.max() < 30.0
    assert min(p.joints_cam_m[:, 2].min() for p in out) > 0.1
    # depth is temporally consistent (25 fps, no 10 cm jumps)
    assert np.percentile(np.abs(np.diff(z)), 99) < 0.1
    # a 1.5x longer focal length puts the same hand 1.5x farther away
    z_long = np.array([p.t_m[2] for p in place_hands_in_camera(
        uv[::25], world[::25], K_default * np.array([[1.5, 1, 1], [1, 1.5, 1], [1, 1, 1]]))])
    np.testing.assert_allclose(z_long / z[::25], 1.5, rtol=0.05)
