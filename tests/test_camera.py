"""Camera intrinsics: default K, validation errors, projection round trips, resizing."""
import math

import numpy as np
import pytest

from hand_pose_core import camera as cam
from hand_pose_core.camera import InvalidIntrinsicsError


def test_default_intrinsics_documented_values():
    K = cam.default_intrinsics(640, 480)
    assert K.dtype == np.float64 and K.shape == (3, 3)
    assert K[0, 0] == K[1, 1] == pytest.approx(1.2 * 640)
    assert (K[0, 2], K[1, 2]) == (319.5, 239.5)
    # portrait images use the long side too
    assert cam.default_intrinsics(480, 640)[0, 0] == pytest.approx(768.0)
    hfov = math.degrees(2 * math.atan(320 / K[0, 0]))
    assert 40 < hfov < 50


def test_resolve_intrinsics():
    K, calibrated = cam.resolve_intrinsics(None, 1280, 720)
    assert not calibrated and np.allclose(K, cam.default_intrinsics(1280, 720))
    K_user = cam.K_from_fxfycxcy(900.0, 905.0, 640.0, 360.0)
    K2, calibrated2 = cam.resolve_intrinsics(K_user.tolist(), 1280, 720)
    assert calibrated2 and np.array_equal(K2, K_user)
    with pytest.raises(InvalidIntrinsicsError, match="positive"):
        cam.resolve_intrinsics(cam.K_from_fxfycxcy(0, 0, 640, 360), 1280, 720)


@pytest.mark.parametrize(
    "K, match",
    [
        (np.eye(2), "3x3"),
        (np.full((3, 3), np.nan), "NaN"),
        (cam.K_from_fxfycxcy(np.inf, 500, 320, 240), "NaN or inf"),
        (cam.K_from_fxfycxcy(-500, 500, 320, 240), "positive"),
        (cam.K_from_fxfycxcy(500, 0, 320, 240), "positive"),
        (np.array([[500, 0, 320], [0, 500, 240], [0, 0, 2.0]]), "last row"),
        (cam.K_from_fxfycxcy(500, 50000, 320, 240), "implausible"),
        ("not a matrix", "not numeric"),
    ],
)
def test_validate_rejects(K, match):
    with pytest.raises(InvalidIntrinsicsError, match=match):
        cam.validate_intrinsics(K)


def test_validate_principal_point_vs_size():
    K = cam.K_from_fxfycxcy(500, 500, 5000, 240)
    cam.validate_intrinsics(K)  # fine without a size
    with pytest.raises(InvalidIntrinsicsError, match="outside"):
        cam.validate_intrinsics(K, 640, 480)
    with pytest.raises(InvalidIntrinsicsError, match="positive integers"):
        cam.validate_intrinsics(cam.default_intrinsics(640, 480), 0, 480)
    assert isinstance(InvalidIntrinsicsError("x"), ValueError)


def test_camera_info_k():
    k9 = [600.0, 0.0, 330.0, 0.0, 610.0, 250.0, 0.0, 0.0, 1.0]
    K = cam.K_from_camera_info_k(k9)
    assert K[0, 0] == 600 and K[1, 1] == 610 and K[0, 2] == 330 and K[1, 2] == 250
    with pytest.raises(InvalidIntrinsicsError, match="not calibrated"):
        cam.K_from_camera_info_k([0.0] * 9)
    with pytest.raises(InvalidIntrinsicsError, match="9 numbers"):
        cam.K_from_camera_info_k([1.0] * 8)


def test_project_unproject_round_trip():
    rng = np.random.default_rng(1)
    K = cam.K_from_fxfycxcy(700.0, 690.0, 330.0, 245.0)
    pts = np.stack([rng.uniform(-0.3, 0.3, (5, 7)), rng.uniform(-0.2, 0.2, (5, 7)),
                    rng.uniform(0.2, 2.0, (5, 7))], axis=-1)
    uv = cam.project(pts, K)
    assert uv.shape == (5, 7, 2)
    np.testing.assert_allclose(cam.unproject(uv, pts[..., 2], K), pts, atol=1e-12)
    # hand-computed pixel for one point
    np.testing.assert_allclose(cam.project([0.1, -0.05, 0.5], K), [330 + 140, 245 - 69])


def test_project_behind_camera_is_nan():
    uv = cam.project(np.array([[0.0, 0.0, -1.0], [0.0, 0.0, 1.0]]), cam.default_intrinsics(64, 48))
    assert np.all(np.isnan(uv[0])) and np.all(np.isfinite(uv[1]))


def test_scale_intrinsics_matches_resized_projection():
    K = cam.K_from_fxfycxcy(800.0, 800.0, 639.5, 359.5)
    K_half = cam.scale_intrinsics(K, 0.5, 0.5)
    assert K_half[0, 0] == 400.0 and K_half[0, 2] == pytest.approx(319.5)
    # a point's pixel in the resized image = sx*(u+0.5)-0.5
    p = np.array([0.07, -0.03, 0.6])
    uv, uv_half = cam.project(p, K), cam.project(p, K_half)
    np.testing.assert_allclose(uv_half, 0.5 * (uv + 0.5) - 0.5, atol=1e-9)
    with pytest.raises(ValueError):
        cam.scale_intrinsics(K, 0.0, 1.0)


@pytest.mark.parametrize("fx", [1e-9, 1.0, 1e6, 1e12])
def test_focal_length_implausible_for_the_image_size_is_refused(fx):
    K = cam.K_from_fxfycxcy(fx, fx, 319.5, 239.5)
    with pytest.raises(InvalidIntrinsicsError, match="implausible for a 640x480 image"):
        cam.validate_intrinsics(K, 640, 480)
    # the same check through every entry point that knows the size
    with pytest.raises(InvalidIntrinsicsError, match="implausible"):
        cam.resolve_intrinsics(K, 640, 480)
    with pytest.raises(InvalidIntrinsicsError, match="implausible"):
        cam.K_from_camera_info_k(K.reshape(-1).tolist(), 640, 480)


def test_plausible_focal_lengths_pass():
    for fx in (0.05 * 640, 300.0, 768.0, 5000.0, 100 * 640):
        cam.validate_intrinsics(cam.K_from_fxfycxcy(fx, fx, 319.5, 239.5), 640, 480)
    # principal point far outside through the camera_info path too
    with pytest.raises(InvalidIntrinsicsError, match="outside"):
        cam.K_from_camera_info_k([600, 0, 1e5, 0, 600, 240, 0, 0, 1], 640, 480)
