"""RGB-D fusion (hand_pose_core.pipeline.depth_fusion) on hands rendered with real offscreen OpenGL
(moderngl EGL) and degraded like a structured-light camera (holes, projector shadow, mixed edge
pixels, disparity quantisation, axial noise)."""
from __future__ import annotations

import numpy as np
import pytest

from hand_pose_core.camera import project
from hand_pose_core.pipeline.depth_fusion import depth_to_metres, fuse_hand_depth, surface_depths
from hand_pose_core.pipeline.metric3d import place_hand_in_camera

pytest.importorskip("moderngl")


@pytest.fixture(scope="module")
def scenes():
    from rgbd_render import render_or_skip

    return render_or_skip(7, 10, size_range=(0.8, 1.25))


def test_depth_conventions_and_errors():
    mm = np.array([[0, 500], [1000, 65535]], np.uint16)
    m = depth_to_metres(mm)
    assert m.dtype == np.float32 and np.isnan(m[0, 0]) and m[0, 1] == pytest.approx(0.5)
    f = depth_to_metres(np.array([[np.nan, 0.0], [-1.0, 0.75]], np.float32))
    assert np.isnan(f[:, 0]).all() and np.isnan(f[0, 1]) and f[1, 1] == pytest.approx(0.75)
    with pytest.raises(ValueError, match="aligned to the colour image"):
        depth_to_metres(np.ones((240, 320), np.float32), (480, 640))
    with pytest.raises(ValueError, match="float32 .metres. or uint16"):
        depth_to_metres(np.ones((4, 4), np.int32))
    with pytest.raises(ValueError, match="2D"):
        depth_to_metres(np.ones((4, 4, 3), np.float32))


def test_surface_depth_rejects_background_and_mixed_pixels():
    d = np.full((40, 40), 1.50, np.float32)  # wall
    d[:, 15:25] = 0.60                        # a finger 10 px wide
    d[:, 14] = 1.0                            # mixed pixels at its left edge
    d[5:8, 18:21] = np.nan                    # a hole on it
    z = surface_depths(d, np.array([[16.0, 10.0], [20.0, 6.0], [35.0, 10.0], [20.0, -30.0]]),
                       np.array([4, 4, 3, 3]), 0.015, 3)
    assert z[0] == pytest.approx(0.60) and z[1] == pytest.approx(0.60) and z[2] == pytest.approx(1.5)
    assert np.isnan(z[3])  # outside the image


def _rgb_placement(h, rng, rel_noise_m=0.006, uv_noise_px=1.5):
    """What the RGB pipeline gives: the 2D joints with landmark noise, and the network's metric
    joints, which carry an average hand size (the rendered hand is 0.8-1.25x that)."""
    J = h.joints_cam_m
    uv = project(J, h.K) + rng.normal(0.0, uv_noise_px, (21, 2))
    world = (J - J.mean(0)) / h.scale + rng.normal(0.0, rel_noise_m, (21, 3))
    return uv, place_hand_in_camera(uv, world, h.K).joints_cam_m


def test_depth_removes_the_hand_size_guess(scenes):
    rng = np.random.default_rng(3)
    err_rgb, err_depth = [], []
    for h in scenes:
        uv, P = _rgb_placement(h, rng)
        r = fuse_hand_depth(P, uv, depth_to_metres(h.depth_mm), h.K)
        assert r.used, r.reason
        assert abs(r.scale / h.scale - 1.0) < 0.08, (r.scale, h.scale)  # the size mismatch, measured
        err_rgb.append(np.linalg.norm(P - h.joints_cam_m, axis=1).mean())
        err_depth.append(np.linalg.norm(r.joints_cam_m - h.joints_cam_m, axis=1).mean())
        # every joint lies on the camera ray of its detected 2D joint: it reprojects exactly onto it
        np.testing.assert_allclose(project(r.joints_cam_m, h.K), uv, atol=1e-6)
    err_rgb, err_depth = np.array(err_rgb) * 1e3, np.array(err_depth) * 1e3
    print(f"\nmean joint error, RGB only {err_rgb.mean():.1f} mm, with depth {err_depth.mean():.1f} mm")
    assert err_depth.mean() <= 10.0, err_depth
    assert err_rgb.mean() > 2 * err_depth.mean(), (err_rgb, err_depth)


def test_fallback_when_depth_is_missing_or_disagrees(scenes):
    rng = np.random.default_rng(4)
    h = scenes[0]
    uv, P = _rgb_placement(h, rng)
    holes = np.zeros_like(h.depth_mm)
    r = fuse_hand_depth(P, uv, depth_to_metres(holes), h.K)
    assert not r.used and "no depth under the hand" in r.reason
    np.testing.assert_array_equal(r.joints_cam_m, P)  # the RGB placement, untouched
    far = depth_to_metres((h.depth_mm.astype(np.float32) * 3.0).clip(0, 65535).astype(np.uint16))
    r = fuse_hand_depth(P, uv, far, h.K)
    assert not r.used and "disagrees" in r.reason
    flat_wall = np.full(h.depth_mm.shape, 2.5, np.float32)  # a depth image of another scene
    r = fuse_hand_depth(P, uv, flat_wall, h.K)
    assert not r.used and r.reason


def test_estimator_takes_an_aligned_depth_image(scenes):
    from hand_pose_core.pipeline.estimator import HandPoseEstimator
    from hand_pose_core.weights import WeightsUnavailableError

    try:
        est = HandPoseEstimator(tracking=False, max_hands=1, fit_mano=False, with_mesh=False)
    except WeightsUnavailableError as e:
        pytest.skip(f"MediaPipe weights unavailable: {e}")
    h = scenes[0]
    with pytest.raises(ValueError, match="aligned"):
        est(h.rgb, h.K, np.zeros((10, 10), np.uint16))
    with pytest.raises(TypeError, match="timestamp_s="):
        est(h.rgb, h.K, 0.5)
    errs = []
    for h in scenes[:6]:
        rgb_only = est(h.rgb, h.K)
        fused = est(h.rgb, h.K, h.depth_mm)  # uint16 millimetres, as a driver publishes it
        if not rgb_only:
            continue  # the landmark network does not find every rendered hand
        assert not rgb_only[0].depth_used and "depth_fusion" not in rgb_only[0].extras
        info = fused[0].extras["depth_fusion"]
        assert fused[0].depth_used == info["used"] and (info["used"] or info["reason"])
        if fused[0].depth_used:
            errs.append([np.linalg.norm(x[0].joints_3d - h.joints_cam_m, axis=1).mean() for x in (rgb_only, fused)])
        # the same joints in metres as float32 depth
        again = est(h.rgb, h.K, h.depth_mm.astype(np.float32) / 1000.0)
        np.testing.assert_allclose(again[0].joints_3d, fused[0].joints_3d, atol=2e-3)  # float rounding at cluster edges
    assert len(errs) >= 2, errs
    errs = np.array(errs) * 1e3
    print(f"\nestimator on renders: RGB only {errs[:, 0].mean():.0f} mm, with depth {errs[:, 1].mean():.0f} mm")
    assert errs[:, 1].mean() < 0.6 * errs[:, 0].mean(), errs


def test_a_joint_in_a_hole_takes_the_readings_of_its_bones(scenes):
    from hand_pose_core.pipeline.depth_fusion import DepthFusionConfig

    h = scenes[1]
    J = h.joints_cam_m
    uv = project(J, h.K)
    world = (J - J.mean(0)) / h.scale
    world[8, 2] += 0.03  # the network puts the index tip 3 cm too deep
    P = place_hand_in_camera(uv, world, h.K).joints_cam_m
    depth = depth_to_metres(h.depth_mm)
    u, v = np.rint(uv[8]).astype(int)
    depth[v - 6:v + 7, u - 6:u + 7] = np.nan  # no reading under the tip
    errs = {}
    for nb in (False, True):
        r = fuse_hand_depth(P, uv, depth, h.K, DepthFusionConfig(neighbour_readings=nb))
        assert r.used and np.isnan(r.surface_z_m[8])
        errs[nb] = abs(r.joints_cam_m[8, 2] - J[8, 2])
    assert errs[True] < 0.012 and errs[True] < 0.5 * errs[False], errs
