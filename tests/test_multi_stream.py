"""Several camera streams through one estimator's networks (hand_pose_core.pipeline.multi_stream):
the same hands as separate estimators, with each network called once per round on all streams'
inputs (real networks, onnxruntime)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from hand_pose_core.pipeline.estimator import HandPoseEstimator
from hand_pose_core.pipeline.multi_stream import MultiStreamEstimator


def _estimator(**kw):
    from hand_pose_core.weights import WeightsUnavailableError

    try:
        return HandPoseEstimator(**kw)
    except WeightsUnavailableError as e:
        pytest.skip(f"MediaPipe weights unavailable: {e}")


@pytest.fixture(scope="module")
def images():
    from hand_pose_core.samples import builtin_sample_image

    try:
        rgb = cv2.cvtColor(cv2.imread(str(builtin_sample_image(fetch=False))), cv2.COLOR_BGR2RGB)
    except Exception as e:
        pytest.skip(f"built-in sample image not available: {e}")
    # two "cameras": the photo, and a shifted, mirrored copy of it
    other = np.ascontiguousarray(np.roll(rgb[:, ::-1], 40, axis=1))
    return rgb, other


def test_streams_match_separate_estimators_with_one_network_call_per_round(images):
    a, b = images
    kw = dict(max_hands=2, tracking=True, fit_mano=True, with_mesh=False)
    ref = [_estimator(**kw), _estimator(**kw)]
    multi = MultiStreamEstimator(_estimator(**kw), 2)
    rounds = 6
    for r in range(rounds):
        frames = {0: (a, None, None, r / 30.0), 1: (b, None, None, r / 30.0)}
        if r == 3:
            del frames[1]  # camera 1 has no new frame in this round
        out = multi(frames)
        assert set(out) == set(frames)
        for i, (img, K, depth, t) in frames.items():
            expect = ref[i](img, K, depth, timestamp_s=t)
            got = out[i]
            assert not isinstance(got, Exception), got
            assert len(got) == len(expect) >= 1
            for x, y in zip(expect, got):
                assert x.side == y.side
                np.testing.assert_allclose(y.joints_2d, x.joints_2d, atol=1e-3)
                np.testing.assert_allclose(y.joints_3d, x.joints_3d, atol=1e-4)
    calls = multi.batcher.calls
    palm = sum(v for k, v in calls.items() if k.startswith("palm"))
    landmark = sum(v for k, v in calls.items() if k.startswith("landmark"))
    # one palm call per round (never one per camera), landmark calls per round: 1 + refinement
    assert palm <= rounds, calls
    assert landmark <= 2 * rounds, calls
    assert max(multi.batcher.batch_sizes) >= 2  # crops of both cameras in one batch


def test_one_stream_failing_does_not_stop_the_other(images):
    a, _ = images
    multi = MultiStreamEstimator(_estimator(max_hands=1, tracking=False, fit_mano=False, with_mesh=False), 2)
    out = multi({0: (a, None, None, 0.0), 1: (np.zeros((4, 4), np.uint8), None, None, 0.0)})
    assert isinstance(out[1], ValueError) and "shape" in str(out[1])
    assert len(out[0]) == 1
    with pytest.raises(ValueError, match="n_streams"):
        MultiStreamEstimator(multi.base, 0)
