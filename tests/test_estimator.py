"""HandPoseEstimator end to end with the real converted MediaPipe weights (torch backend, CPU).

Real images come from ../shared/data/real (tests skip when it is absent). The 2D target is
the issue's: median error <= 2 px against the MediaPipe reference landmarks of the shared
video (``asl_hand.full.json``, MediaPipe's output, not ground truth).
"""
import json
import os
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
torch = pytest.importorskip("torch")

from hand_pose_core.frames import read_video_rgb  # noqa: E402
from hand_pose_core.pipeline.estimator import HandPoseEstimator  # noqa: E402
from hand_pose_core.types import Hand  # noqa: E402

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
needs_real = pytest.mark.skipif(
    not (REAL / "asl_hand.25fps.mp4").is_file(),
    reason=f"real hand footage not found at {REAL} (../shared/data/real); real-data tests skipped")

VIDEO_STEP = 5  # every 5th of 325 frames keeps the video tests short
FPS = 25.0


def _estimator(**kw) -> HandPoseEstimator:
    from hand_pose_core.weights import WeightsUnavailableError

    torch.set_num_threads(2)
    try:
        return HandPoseEstimator(**kw)
    except WeightsUnavailableError as exc:
        if os.environ.get("HAND_POSE_OFFLINE"):
            pytest.skip(f"offline and the MediaPipe weights are not cached: {exc}")
        raise


@pytest.fixture(scope="module")
def est_static():
    return _estimator(tracking=False, fit_mano=False, with_mesh=False)


@pytest.fixture(scope="module")
def hands_image():
    if not (REAL / "hands.jpg").is_file():
        pytest.skip(f"real hand footage not found at {REAL} (../shared/data/real)")
    return cv2.cvtColor(cv2.imread(str(REAL / "hands.jpg")), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def video():
    """(frames RGB list, reference landmarks [N, 21, 3] in pixel-centre coordinates)."""
    if not (REAL / "asl_hand.25fps.mp4").is_file():
        pytest.skip(f"real hand footage not found at {REAL} (../shared/data/real)")
    frames = read_video_rgb(REAL / "asl_hand.25fps.mp4")
    ref = np.array(json.loads((REAL / "asl_hand.full.json").read_text()), np.float64)
    assert len(frames) == ref.shape[0] == 325
    # the reference is MediaPipe's continuous convention (pixel i spans [i, i+1)); ours has
    # pixel centres at integers (OpenCV / ROS CameraInfo)
    ref[..., :2] -= 0.5
    return frames, ref


# -- input validation and basic behaviour (fast) ---------------------------------------------
@pytest.mark.parametrize("bad,match", [
    (np.zeros((48, 64, 3), np.float32), "uint8"),
    (np.zeros((48, 64), np.uint8), r"\(H, W, 3\)"),
    (np.zeros((48, 64, 4), np.uint8), r"\(H, W, 3\)"),
    (np.zeros((0, 64, 3), np.uint8), "empty"),
    ([[0, 0, 0]], "numpy array"),
])
def test_bad_images_raise_clear_errors(est_static, bad, match):
    with pytest.raises(ValueError, match=match):
        est_static(bad)


def test_bad_intrinsics_and_options_raise(est_static):
    img = np.zeros((48, 64, 3), np.uint8)
    K = np.array([[np.nan, 0, 32], [0, 100, 24], [0, 0, 1]])
    with pytest.raises(ValueError):
        est_static(img, K)
    with pytest.raises(ValueError, match="max_hands"):
        HandPoseEstimator(max_hands=0)
    with pytest.raises(ValueError, match="min_presence_score"):
        HandPoseEstimator(min_presence_score=1.5)
    with pytest.raises(ValueError, match="with_mesh"):
        HandPoseEstimator(fit_mano=False, with_mesh=True)
    with pytest.raises(ValueError, match="variant"):
        HandPoseEstimator(variant="huge")


def test_blank_and_noise_images_give_no_hands(est_static):
    assert est_static(np.zeros((480, 640, 3), np.uint8)) == []
    assert est_static(np.full((300, 200, 3), 255, np.uint8)) == []
    assert set(est_static.last_timings_ms) == {"palm", "landmark", "metric3d", "mano", "total"}
    assert est_static.last_timings_ms["palm"] > 0 and est_static.last_timings_ms["landmark"] == 0


# -- one real photo -------------------------------------------------------------------------
def test_two_real_hands_with_all_fields(hands_image):
    est = _estimator(tracking=False)  # MANO fit + mesh (synthetic MANO-format model)
    h, w = hands_image.shape[:2]
    hands = est(hands_image)
    assert len(hands) == 2
    # one hand in each half of the photo
    assert sorted(hd.joints_2d[:, 0].mean() < w / 2 for hd in hands) == [False, True]
    # two left hands (backs to the camera, the right one upside down); MediaPipe 0.10.14
    # labels both "Right" because its label assumes a mirrored image
    assert [hd.side for hd in hands] == ["left", "left"]
    for hd in hands:
        assert isinstance(hd, Hand) and hd.side in ("left", "right")
        assert 0.5 <= hd.score <= 1 and 0.5 <= hd.handedness_score <= 1
        assert hd.joints_2d.shape == (21, 2) and hd.joints_2d.dtype == np.float32
        u, v = hd.joints_2d[:, 0], hd.joints_2d[:, 1]
        inside = (u >= -5) & (v >= -5) & (u < w + 5) & (v < h + 5)
        assert inside.all()
        span = hd.joints_2d.max(0) - hd.joints_2d.min(0)
        assert 150 < span.max() < 400  # hands fill about half the photo's height
        # fingertips farther from the wrist than their knuckles (a spread hand)
        d = np.linalg.norm(hd.joints_2d - hd.joints_2d[0], axis=1)
        assert (d[[8, 12, 16, 20]] > d[[5, 9, 13, 17]]).all()
        assert hd.joints_3d.shape == (21, 3) and (hd.joints_3d[:, 2] > 0).all()
        assert hd.calibrated is False  # no K given: default guess
        assert hd.pose.shape == (48,) and hd.shape.shape == (10,) and hd.trans.shape == (3,)
        assert hd.vertices.shape == (778, 3) and hd.faces.shape == (1538, 3)
        assert np.isfinite(hd.vertices).all() and (hd.vertices[:, 2] > 0).all()
        assert hd.world_m.shape == (21, 3) and len(hd.roi) == 4
        # the fitted MANO joints stay near the placed network joints
        assert np.linalg.norm(hd.joints_3d - hd.extras["joints_3d_placed_m"], axis=1).mean() < 0.02
    for key in ("palm", "landmark", "metric3d", "mano", "total"):
        assert est.last_timings_ms[key] > 0
    # a calibrated K is reported as such; halving the focal length halves the depth
    f = 1.2 * max(w, h)
    K = np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]])
    z1 = np.mean([hd.extras["joints_3d_placed_m"][:, 2].mean() for hd in est(hands_image, K)])
    K2 = K.copy()
    K2[0, 0] = K2[1, 1] = f / 2
    hands2 = est(hands_image, K2)
    assert all(hd.calibrated for hd in hands2)
    z2 = np.mean([hd.extras["joints_3d_placed_m"][:, 2].mean() for hd in hands2])
    assert z2 == pytest.approx(z1 / 2, rel=0.05)


def test_max_hands_is_respected(hands_image):
    est = _estimator(max_hands=1, tracking=False, fit_mano=False, with_mesh=False)
    assert len(est(hands_image)) == 1


def test_tracking_skips_the_palm_detector_until_reset(hands_image):
    est = _estimator(max_hands=2, tracking=True, fit_mano=False, with_mesh=False)
    first = est(hands_image, timestamp_s=0.0)
    assert len(first) == 2 and est.last_timings_ms["palm"] > 0
    second = est(hands_image, timestamp_s=0.04)
    assert len(second) == 2 and est.last_timings_ms["palm"] == 0.0  # both hands tracked
    for a in first:  # the same hands again, at the same place
        assert min(np.abs(a.joints_2d - b.joints_2d).mean() for b in second) < 3.0
    est.reset()
    est(hands_image, timestamp_s=0.08)
    assert est.last_timings_ms["palm"] > 0


@needs_real
def test_tracking_dedups_detections_and_recovers_lost_hands(video):
    frames, ref = video
    est = _estimator(max_hands=2, tracking=True, fit_mano=False, with_mesh=False)
    counts = []
    for i in range(8):
        hands = est(frames[i], timestamp_s=i / FPS)
        counts.append(len(hands))
        # one hand tracked, max_hands=2: the detector keeps looking, and its detection of
        # the tracked hand must not come back as a second hand
        assert est.last_timings_ms["palm"] > 0
    assert counts == [1] * 8
    blank = np.zeros_like(frames[0])
    assert est(blank, timestamp_s=8 / FPS) == []  # the tracked hand is lost
    (hand,) = est(frames[9], timestamp_s=9 / FPS)  # and found again by the detector
    assert np.median(np.linalg.norm(hand.joints_2d - ref[9, :, :2], axis=1)) < 3.0


# -- the real video -----------------------------------------------------------------------
def _run_video(est, frames, ref, step=VIDEO_STEP):
    errs, hands_out = [], []
    for i in range(0, len(frames), step):
        hands = est(frames[i], timestamp_s=i / FPS)
        assert len(hands) == 1, f"frame {i}: {len(hands)} hands"
        hands_out.append(hands[0])
        errs.append(np.linalg.norm(hands[0].joints_2d - ref[i, :, :2], axis=1))
    return np.concatenate(errs), hands_out


@needs_real
@pytest.mark.heavy
@pytest.mark.parametrize("tracking", [True, False], ids=["tracking", "static"])
def test_video_matches_mediapipe_reference_and_says_right(video, tracking):
    frames, ref = video
    est = _estimator(max_hands=1, tracking=tracking, fit_mano=False, with_mesh=False)
    errs, hands = _run_video(est, frames, ref)
    print(f"tracking={tracking}: median {np.median(errs):.2f} px, "
          f"p90 {np.percentile(errs, 90):.2f} px")
    assert np.median(errs) <= 2.0
    assert np.percentile(errs, 90) <= 6.0
    # a real right hand filmed by an ordinary (non-mirrored) camera
    assert {h.side for h in hands} == {"right"}
    # and the same images seen in a mirror
    est_m = _estimator(max_hands=1, tracking=False, fit_mano=False, with_mesh=False, mirrored=True)
    assert est_m(frames[0])[0].side == "left"


@needs_real
@pytest.mark.heavy
def test_video_tracking_at_full_frame_rate_reproduces_mediapipe(video):
    # the reference was made by MediaPipe's tracker on every frame: with the same crops
    # (same ROI rules and sampling) the port should agree far below a pixel
    frames, ref = video
    est = _estimator(max_hands=1, tracking=True, fit_mano=False, with_mesh=False)
    errs, _ = _run_video(est, frames[:100], ref, step=1)
    print(f"25 fps tracking: median {np.median(errs):.2f} px, p90 {np.percentile(errs, 90):.2f} px")
    assert np.median(errs) <= 0.5
    assert np.percentile(errs, 90) <= 1.5


@needs_real
@pytest.mark.heavy
def test_video_3d_is_metric_and_in_front_of_the_camera(video):
    frames, ref = video
    # frames far apart, so each one on its own (static mode, cold MANO fits)
    est = _estimator(max_hands=1, tracking=False, fit_mano=True, with_mesh=False)
    h, w = frames[0].shape[:2]
    f = 1.2 * max(w, h)  # the README's stand-in intrinsics
    K = np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]])
    palm_w, lengths, depths, reproj, fit_gap = [], [], [], [], []
    for i in range(0, len(frames), 4 * VIDEO_STEP):
        (hand,) = est(frames[i], K, timestamp_s=i / FPS)
        assert hand.calibrated and (hand.joints_3d[:, 2] > 0).all()
        palm_w.append(np.linalg.norm(hand.joints_3d[5] - hand.joints_3d[17]))
        lengths.append(np.linalg.norm(hand.joints_3d[9] - hand.joints_3d[0]))
        depths.append(hand.joints_3d[:, 2].mean())
        placed = hand.extras["joints_3d_placed_m"]
        p = placed @ K.T  # the placed joints project back onto the 2D joints
        reproj.append(np.median(np.linalg.norm(p[:, :2] / p[:, 2:] - hand.joints_2d, axis=1)))
        fit_gap.append(np.linalg.norm(hand.joints_3d - placed, axis=1).mean())
    print(f"palm width {np.median(palm_w):.3f} m, wrist-middle MCP {np.median(lengths):.3f} m, "
          f"depth {np.median(depths):.2f} m, reprojection {np.median(reproj):.1f} px, "
          f"MANO-to-placed {1000 * np.median(fit_gap):.1f} mm")
    assert 0.06 <= np.median(palm_w) <= 0.10  # index-to-pinky knuckle span
    assert 0.07 <= np.median(lengths) <= 0.13  # wrist to middle knuckle
    assert 0.2 < np.median(depths) < 2.0 and np.ptp(depths) < 0.5  # arm's length, steady
    assert np.median(reproj) < 12.0  # rigid placement of the network's own 3D shape
    assert np.median(fit_gap) < 0.01  # MANO fit follows the placed joints (within 1 cm)


@needs_real
@pytest.mark.heavy
def test_smoothing_reduces_jitter(video):
    frames, _ = video
    seg = frames[:40]
    motion = {}
    for smoothing in (False, True):
        est = _estimator(max_hands=1, tracking=True, fit_mano=False, with_mesh=False,
                         smoothing=smoothing, smoothing_min_cutoff=0.5, smoothing_beta=1.0)
        uv = np.stack([est(f, timestamp_s=i / FPS)[0].joints_2d for i, f in enumerate(seg)])
        motion[smoothing] = np.abs(np.diff(uv, n=2, axis=0)).mean()  # acceleration ~ jitter
    print(f"jitter {motion}")
    assert motion[True] < 0.8 * motion[False]
