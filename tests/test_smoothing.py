"""One-Euro filter behaviour on synthetic signals."""
import numpy as np
import pytest

from hand_pose_core.pipeline.smoothing import OneEuroFilter

FPS = 30.0


def _run(f, xs, ts):
    return np.stack([f.filter(x, t) for x, t in zip(xs, ts)])


def test_constant_input_passes_through():
    f = OneEuroFilter(min_cutoff=1.0, beta=0.5)
    x = np.random.default_rng(0).normal(size=(21, 3))
    ts = np.arange(50) / FPS
    out = _run(f, [x] * 50, ts)
    np.testing.assert_allclose(out, np.broadcast_to(x, out.shape), atol=1e-12)
    assert out.shape == (50, 21, 3)


def test_noise_variance_reduced_on_static_signal():
    rng = np.random.default_rng(1)
    truth = np.full((21, 3), 0.4)
    noisy = truth + rng.normal(scale=0.005, size=(300, 21, 3))
    out = _run(OneEuroFilter(min_cutoff=1.0, beta=0.0), noisy, np.arange(300) / FPS)
    raw_var = np.var(noisy[50:] - truth)
    out_var = np.var(out[50:] - truth)
    # first-order low-pass at 1 Hz sampled at 30 Hz: alpha ~0.17 -> variance ratio ~0.1
    assert out_var < 0.2 * raw_var


def test_beta_reduces_lag_on_fast_ramp():
    ts = np.arange(60) / FPS
    speed = 2.0  # units per second
    ramp = (speed * ts)[:, None]
    lag_slow = ramp[-1] - _run(OneEuroFilter(min_cutoff=0.5, beta=0.0), ramp, ts)[-1]
    lag_fast = ramp[-1] - _run(OneEuroFilter(min_cutoff=0.5, beta=5.0), ramp, ts)[-1]
    assert lag_fast[0] < 0.25 * lag_slow[0]
    # with beta the lag is below one frame of motion
    assert lag_fast[0] < speed / FPS


def test_reset_and_backwards_time():
    f = OneEuroFilter(min_cutoff=0.1)
    f.filter(np.zeros(3), 0.0)
    assert np.all(f.filter(np.ones(3), 0.1) < 0.5)
    f.reset()
    assert not f.initialized
    np.testing.assert_array_equal(f.filter(np.ones(3) * 7, 0.2), np.ones(3) * 7)
    # time going backwards resets: new sample passes through
    np.testing.assert_array_equal(f.filter(np.ones(3) * -2, 0.05), np.ones(3) * -2)


def test_duplicate_timestamp_is_skipped():
    f = OneEuroFilter(min_cutoff=0.5)
    f.filter(np.zeros(2), 1.0)
    y = f.filter(np.ones(2), 1.1)
    np.testing.assert_array_equal(f.filter(np.full(2, 100.0), 1.1), y)
    # the skipped sample did not enter the state
    np.testing.assert_allclose(f.filter(np.ones(2), 1.2), _two_steps(), atol=1e-12)


def _two_steps():
    g = OneEuroFilter(min_cutoff=0.5)
    g.filter(np.zeros(2), 1.0)
    g.filter(np.ones(2), 1.1)
    return g.filter(np.ones(2), 1.2)


def test_bad_input_raises_and_keeps_state():
    f = OneEuroFilter()
    f.filter(np.zeros(4), 0.0)
    with pytest.raises(ValueError, match="NaN"):
        f.filter(np.array([0, np.nan, 0, 0]), 0.1)
    with pytest.raises(ValueError, match="timestamp"):
        f.filter(np.zeros(4), float("nan"))
    with pytest.raises(ValueError, match="shape"):
        f.filter(np.zeros(5), 0.2)
    np.testing.assert_array_equal(f.filter(np.zeros(4), 0.3), np.zeros(4))
    with pytest.raises(ValueError, match="min_cutoff"):
        OneEuroFilter(min_cutoff=0.0)
    with pytest.raises(ValueError, match="beta"):
        OneEuroFilter(beta=-1.0)


def test_output_does_not_alias_input():
    f = OneEuroFilter()
    x = np.zeros(3)
    y = f.filter(x, 0.0)
    x[:] = 5.0
    assert np.all(y == 0.0)


def test_real_landmark_stream_jitter_reduced():
    """MediaPipe world landmarks of a real 25 fps video: smoothing cuts frame-to-frame jerk."""
    import json
    from pathlib import Path

    real = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
    path = real / "asl_hand_3d.full.json"
    if not path.exists():
        pytest.skip(f"real footage not found at {path.parent} (shared test data)")
    world = np.array(json.loads(path.read_text()), dtype=np.float64)  # [325, 21, 3] metres
    ts = np.arange(len(world)) / 25.0
    out = _run(OneEuroFilter(min_cutoff=1.5, beta=10.0), world, ts)

    def jerk(x):  # RMS second difference: high-frequency jitter
        return np.sqrt(np.mean(np.diff(x, n=2, axis=0) ** 2))

    assert jerk(out) < 0.7 * jerk(world)
    # and it still follows the hand: mean deviation well under a finger width (~1.5 cm)
    assert np.mean(np.linalg.norm(out - world, axis=-1)) < 0.01
