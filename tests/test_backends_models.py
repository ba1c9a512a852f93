"""Backends on the real palm detector and hand landmark modules.

Uses the converted MediaPipe weights when they are already cached (never downloads: offline mode);
otherwise the same architectures with seeded random weights, which still checks that every op
exports to ONNX and runs identically in ONNX Runtime.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hand_pose_core.backends import INPUT_SHAPES, create_runner_for_module
from hand_pose_core.models import HandLandmark, LandmarkOutput, PalmDetector, PalmOutput

pytestmark = pytest.mark.heavy  # exports two real networks (~5-15 s on 2 shared cores)

MODULES = {"palm": (PalmDetector, "load_palm_detector"), "landmark": (HandLandmark, "load_hand_landmark")}


def _real_or_random(model: str) -> tuple[torch.nn.Module, str]:
    cls, loader = MODULES[model]
    try:
        from hand_pose_core import weights

        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("HAND_POSE_OFFLINE", "1")
            return getattr(weights, loader)("full"), "converted MediaPipe weights"
    except Exception:  # not cached here: weights are not what these tests are about
        torch.manual_seed(0)
        return cls("full").eval(), "random weights"


@pytest.fixture(scope="module")
def runners(tmp_path_factory):
    cache = tmp_path_factory.mktemp("backend_cache")
    out = {}
    for model in MODULES:
        module, source = _real_or_random(model)
        shape = INPUT_SHAPES[model]
        out[model] = (
            create_runner_for_module(module, shape, backend="torch", name=f"{model}_full"),
            create_runner_for_module(module, shape, backend="onnxruntime", name=f"{model}_full", cache_dir=cache),
            source, module, cache,
        )
    return out


@pytest.mark.parametrize("model", ["palm", "landmark"])
@pytest.mark.parametrize("batch", [1, 3])
def test_real_module_torch_vs_onnxruntime(runners, model, batch):
    torch_runner, ort_runner, source, _, _ = runners[model]
    x = np.random.default_rng(batch).random((batch, *INPUT_SHAPES[model][1:]), dtype=np.float32)
    a, b = torch_runner(x), ort_runner(x)
    fields = PalmOutput._fields if model == "palm" else LandmarkOutput._fields
    assert torch_runner.output_names == ort_runner.output_names == fields
    for name, ta, tb in zip(fields, a, b):
        assert ta.shape == tb.shape and ta.shape[0] == batch
        # outputs are in pixels (up to ~200): 1e-4 absolute plus 1e-4 relative
        np.testing.assert_allclose(tb, ta, atol=1e-4, rtol=1e-4, err_msg=f"{model}.{name} ({source})")


def test_real_output_shapes(runners):
    x = np.random.default_rng(0).random((2, 3, 192, 192), dtype=np.float32)
    assert [o.shape for o in runners["palm"][1](x)] == [(2, 2016, 18), (2, 2016, 1)]
    x = np.random.default_rng(0).random((2, 3, 224, 224), dtype=np.float32)
    assert [o.shape for o in runners["landmark"][1](x)] == [(2, 21, 3), (2,), (2,), (2, 21, 3)]


@pytest.mark.parametrize("model", ["palm", "landmark"])
def test_real_module_fp16_cast_close(runners, model):
    _, ort_runner, source, module, cache = runners[model]
    fp16 = create_runner_for_module(module, INPUT_SHAPES[model], backend="onnxruntime", precision="fp16",
                                    name=f"{model}_full", cache_dir=cache)
    x = np.random.default_rng(7).random((2, *INPUT_SHAPES[model][1:]), dtype=np.float32)
    for name, a, b in zip(ort_runner.output_names, ort_runner(x), fp16(x)):
        scale = float(np.abs(a).max()) + 1e-3
        err = float(np.abs(a - b).max())
        assert err <= 2e-3 * scale + 1e-3, f"{model}.{name}: fp16 error {err} vs scale {scale} ({source})"


@pytest.mark.parametrize("model,variant", [("palm", "full"), ("landmark", "lite")])
def test_create_runner_with_cached_weights(runners, monkeypatch, model, variant):
    from hand_pose_core.backends import create_runner
    from hand_pose_core.weights import WeightsUnavailableError, ensure_weights

    ensure_weights(variant=variant, progress=False)  # the only download; a fresh machine has none yet
    monkeypatch.setenv("HAND_POSE_OFFLINE", "1")  # create_runner itself must not download
    try:
        # same cache as the fixture: palm_full is found there, landmark_lite gets exported
        runner = create_runner(model, backend="onnxruntime", variant=variant, cache_dir=runners[model][4])
    except WeightsUnavailableError as exc:
        pytest.skip(f"MediaPipe weights not cached on this machine (run `hand-pose weights`): {exc}")
    assert runner.name == f"{model}_{variant}/onnxruntime/cpu/fp32"
    assert runner.input_shape == INPUT_SHAPES[model]
    x = np.random.default_rng(3).random(runner.input_shape, dtype=np.float32)
    ref = create_runner(model, backend="torch", variant=variant)
    for a, b in zip(ref(x), runner(x)):
        np.testing.assert_allclose(b, a, atol=1e-4, rtol=1e-4)
