"""LiteRT backend (MediaPipe's .tflite networks in XNNPACK) against the torch port in onnxruntime,
the 'auto' backend choice, and the estimator's speed options."""
from __future__ import annotations

import numpy as np
import pytest

from hand_pose_core.backends import BackendUnavailableError, create_runner, resolve_auto_backend
from hand_pose_core.pipeline.threads import SingleThreadBlas

from test_bench import needs_litert  # noqa: E402  (same skip rule)


@needs_litert
@pytest.mark.parametrize("model", ["palm", "landmark"])
def test_litert_matches_onnxruntime(model):
    lite = create_runner(model, backend="litert")
    ort = create_runner(model, backend="onnxruntime")
    assert lite.output_names == ort.output_names and lite.input_shape == ort.input_shape
    x = np.random.default_rng(1).random((3, *lite.input_shape[1:]), dtype=np.float32)
    for name, a, b in zip(lite.output_names, lite(x), ort(x)):
        assert a.shape == b.shape and a.shape[0] == 3, name
        # pixel outputs (up to ~200 px): the torch port matches the TFLite kernels to ~1e-3
        np.testing.assert_allclose(a, b, atol=5e-3, rtol=1e-4, err_msg=name)


@needs_litert
def test_litert_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="CPU only"):
        create_runner("palm", backend="litert", device="cuda")
    with pytest.raises(ValueError, match="fp32"):
        create_runner("palm", backend="litert", precision="fp16")
    with pytest.raises(ValueError, match="unknown option"):
        create_runner("palm", backend="litert", max_batch=4)
    runner = create_runner("landmark", backend="litert")
    with pytest.raises(ValueError, match="does not match"):
        runner(np.zeros((1, 3, 192, 192), np.float32))


def test_auto_backend_choice():
    try:
        import ai_edge_litert.interpreter  # noqa: F401
        expected = "litert"
    except ImportError:
        expected = "onnxruntime"
    assert resolve_auto_backend("cpu", "palm") == expected
    assert resolve_auto_backend("cpu", "landmark") == expected
    import torch

    if not torch.cuda.is_available():
        assert resolve_auto_backend("auto", "palm") == expected
    assert resolve_auto_backend("cuda", "landmark") == "torch"


def test_litert_missing_package_names_it(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_litert(name, *a, **k):
        if name.startswith("ai_edge_litert"):
            raise ImportError("No module named 'ai_edge_litert'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_litert)
    from hand_pose_core.backends.litert_runner import import_litert

    with pytest.raises(BackendUnavailableError, match="pip install ai-edge-litert"):
        import_litert()


def test_single_thread_blas_limits_and_restores():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = [m["num_threads"] for m in threadpoolctl.threadpool_info() if m["user_api"] == "blas"]
    if not before:
        pytest.skip("no BLAS library loaded that threadpoolctl can see")
    with SingleThreadBlas():
        inside = [m["num_threads"] for m in threadpoolctl.threadpool_info() if m["user_api"] == "blas"]
    after = [m["num_threads"] for m in threadpoolctl.threadpool_info() if m["user_api"] == "blas"]
    assert inside == [1] * len(before) and after == before


def test_estimator_rejects_unknown_coarse_variant():
    from hand_pose_core.pipeline.estimator import HandPoseEstimator

    with pytest.raises(ValueError, match="coarse_variant"):
        HandPoseEstimator(coarse_variant="tiny", fit_mano=False, with_mesh=False)
