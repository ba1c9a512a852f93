"""HandPoseEstimator.estimate_many (several cameras' latest frames, one landmark batch per pass)
against one estimator call per image, on real footage (../shared/data/real; skipped when absent).

The batched call must give each image what a separate estimator gives it alone (tracking state
kept per stream), while running the landmark network once per pass for all images."""
import os
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from hand_pose_core.pipeline.estimator import HandPoseEstimator  # noqa: E402

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
VIDEO = REAL / "asl_hand.25fps.mp4"
FRAMES = 12  # every 4th frame of the video's start: tracked hands and one refinement per new palm


def _estimator(**kw) -> HandPoseEstimator:
    from hand_pose_core.weights import WeightsUnavailableError

    # onnxruntime by default: it runs a real batch (litert, the CPU 'auto' choice, loops over it)
    kw.setdefault("backend", "onnxruntime")
    try:
        return HandPoseEstimator(fit_mano=False, with_mesh=False, **kw)
    except WeightsUnavailableError as exc:
        if os.environ.get("HAND_POSE_OFFLINE"):
            pytest.skip(f"offline and the MediaPipe weights are not cached: {exc}")
        raise


@pytest.fixture(scope="module")
def two_cameras():
    """Two real streams: the video ('wrist') and the two-hand photo with small shifts ('head')."""
    if not VIDEO.is_file() or not (REAL / "hands.jpg").is_file():
        pytest.skip(f"real hand footage not found at {REAL} (../shared/data/real is only on CI/dev machines)")
    from hand_pose_core.frames import read_video_rgb

    video = read_video_rgb(VIDEO)[: 4 * FRAMES: 4]
    photo = cv2.cvtColor(cv2.imread(str(REAL / "hands.jpg")), cv2.COLOR_BGR2RGB)
    head = [np.roll(photo, 3 * i, axis=1) for i in range(FRAMES)]  # a slowly panning camera
    h, w = video[0].shape[:2]
    K_wrist = np.array([[1.2 * max(w, h), 0, (w - 1) / 2], [0, 1.2 * max(w, h), (h - 1) / 2], [0, 0, 1]])
    h, w = photo.shape[:2]
    K_head = np.array([[700.0, 0, (w - 1) / 2], [0, 700.0, (h - 1) / 2], [0, 0, 1]])
    return video, head, K_wrist, K_head


def _assert_same_hands(batched, alone, what):
    assert len(batched) == len(alone), (what, len(batched), len(alone))
    for hb, ha in zip(batched, alone):
        assert hb.side == ha.side and hb.calibrated == ha.calibrated, what
        np.testing.assert_allclose(hb.joints_2d, ha.joints_2d, atol=1e-2, err_msg=f"{what}: 2D (px)")
        np.testing.assert_allclose(hb.joints_3d, ha.joints_3d, atol=1e-4, err_msg=f"{what}: 3D (m)")
        assert abs(hb.score - ha.score) < 1e-4, what


def test_estimate_many_equals_one_call_per_image_with_one_landmark_batch_per_pass(two_cameras):
    video, head, K_wrist, K_head = two_cameras
    many = _estimator()
    wrist_alone, head_alone = _estimator(), _estimator()
    shared_batches = 0
    n_hands = [0, 0]
    for i in range(FRAMES):
        t = i / 25.0
        got = many.estimate_many([video[i], head[i]], [K_wrist, K_head], timestamps_s=[t, t + 0.001],
                                 streams=["wrist", "head"])
        batches = list(many.last_landmark_batches)
        calls_before = wrist_alone.counters["landmark_calls"], head_alone.counters["landmark_calls"]
        a = wrist_alone(video[i], K_wrist, timestamp_s=t)
        b = head_alone(head[i], K_head, timestamp_s=t + 0.001)
        _assert_same_hands(got[0], a, f"frame {i} wrist")
        _assert_same_hands(got[1], b, f"frame {i} head")
        n_hands[0] += len(a)
        n_hands[1] += len(b)
        # one network call per pass for both images: as many calls as the image needing the
        # most passes alone, never the sum
        calls_alone = (wrist_alone.counters["landmark_calls"] - calls_before[0],
                       head_alone.counters["landmark_calls"] - calls_before[1])
        assert len(batches) == max(calls_alone), (i, batches, calls_alone)
        shared_batches += sum(1 for b in batches if b[0] > 0 and b[1] > 0)
        assert len(many.last_timings_ms_per_image) == 2
    assert n_hands[0] >= FRAMES - 1 and n_hands[1] >= 2 * (FRAMES - 1), n_hands  # real hands found
    assert shared_batches >= FRAMES, shared_batches  # crops of both cameras in one call each frame
    assert many.counters["calls"] == FRAMES and many.counters["images"] == 2 * FRAMES
    assert many.counters["landmark_calls_multi_image"] == shared_batches
    assert many.counters["landmark_crops"] == (wrist_alone.counters["landmark_crops"]
                                               + head_alone.counters["landmark_crops"])


def test_streams_keep_separate_tracking_state_and_reset_per_stream(two_cameras):
    video, head, K_wrist, K_head = two_cameras
    est = _estimator()
    est.estimate_many([video[0], head[0]], [K_wrist, K_head], streams=["wrist", "head"])
    assert est.last_timings_ms_per_image[0]["palm"] > 0 and est.last_timings_ms_per_image[1]["palm"] > 0
    # the photo's two hands are tracked: no palm detection for 'head'; the video's one hand
    # (max_hands=2) keeps the detector running for 'wrist'
    est.estimate_many([video[1], head[1]], [K_wrist, K_head], streams=["wrist", "head"])
    assert est.last_timings_ms_per_image[1]["palm"] == 0.0
    # __call__ has its own state: the streams' tracked hands do not leak into it
    est(head[2], K_head)
    assert est.last_timings_ms["palm"] > 0
    est.reset(stream="head")
    est.estimate_many([head[2]], [K_head], streams=["head"])
    assert est.last_timings_ms_per_image[0]["palm"] > 0  # forgotten: detected again


def test_estimate_many_refuses_mismatched_arguments():
    est = _estimator()
    img = np.zeros((48, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="Ks has 1 entries for 2 images"):
        est.estimate_many([img, img], [None])
    with pytest.raises(ValueError, match="distinct"):
        est.estimate_many([img, img], streams=["a", "a"])
    with pytest.raises(ValueError, match="uint8"):
        est.estimate_many([img, img.astype(np.float32)])
    assert est.estimate_many([img, img]) == [[], []]


def test_estimate_many_with_torch_preprocessing_crops_every_frame_into_one_batch(two_cameras):
    """The torch pre-processing path (the GPU one, run on the CPU device): each frame uploaded
    once, the crops of both frames in one batch, the same hands as one call per image."""
    pytest.importorskip("torch")
    video, head, K_wrist, K_head = two_cameras
    many = _estimator(preprocess="torch")
    alone = [_estimator(preprocess="torch") for _ in range(2)]
    assert many.preprocess == "torch"
    for i in range(3):
        got = many.estimate_many([head[i], video[i]], [K_head, K_wrist], timestamps_s=[i / 25.0] * 2)
        _assert_same_hands(got[0], alone[0](head[i], K_head, timestamp_s=i / 25.0), f"frame {i} head")
        _assert_same_hands(got[1], alone[1](video[i], K_wrist, timestamp_s=i / 25.0), f"frame {i} wrist")
        assert many.last_landmark_batches[0] == (2, 1), many.last_landmark_batches
