"""The dynamo ONNX exporter (the default) against the legacy TorchScript exporter: onnxruntime
must give the same outputs within 1e-4, with a dynamic batch (the condition for keeping it)."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from hand_pose_core.backends import export_onnx
from hand_pose_core.backends.onnx_export import DEFAULT_EXPORTER, module_key
from test_backends import LMK_SHAPE, PALM_SHAPE, TinyLandmark, TinyPalm, _seeded


def _run(path, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": x})


def _both(module, shape, tmp_path):
    names_d = export_onnx(module, tmp_path / "d.onnx", shape, exporter="dynamo")
    names_l = export_onnx(module, tmp_path / "l.onnx", shape, exporter="legacy")
    assert names_d == names_l
    return tmp_path / "d.onnx", tmp_path / "l.onnx"


@pytest.mark.parametrize("cls,shape", [(TinyPalm, PALM_SHAPE), (TinyLandmark, LMK_SHAPE)])
def test_dynamo_matches_legacy(tmp_path, cls, shape):
    module = _seeded(cls)
    d, l = _both(module, shape, tmp_path)
    graph = onnx.load(str(d)).graph
    assert [i.name for i in graph.input] == ["image"]
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic (dynamic) batch
    x = np.random.default_rng(0).random((3, *shape[1:]), dtype=np.float32)
    with torch.inference_mode():
        ref = [t.numpy() for t in torch.utils._pytree.tree_leaves(module.eval()(torch.from_numpy(x)))]
    for a, b, r in zip(_run(d, x), _run(l, x), ref):
        assert a.shape == b.shape == r.shape
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=0)
        np.testing.assert_allclose(a, r, atol=1e-4, rtol=1e-4)


def test_exporter_is_part_of_the_cache_key_and_validated(tmp_path):
    module = _seeded(TinyPalm)
    assert DEFAULT_EXPORTER == "dynamo"
    assert module_key(module, PALM_SHAPE, exporter="dynamo") != module_key(module, PALM_SHAPE, exporter="legacy")
    with pytest.raises(ValueError, match="unknown exporter"):
        export_onnx(module, tmp_path / "x.onnx", PALM_SHAPE, exporter="jit")


@pytest.mark.heavy
def test_real_landmark_network_dynamo_matches_legacy(tmp_path):
    try:
        from hand_pose_core import weights

        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("HAND_POSE_OFFLINE", "1")
            module = weights.load_hand_landmark("full")
    except Exception:
        from hand_pose_core.models import HandLandmark

        torch.manual_seed(0)
        module = HandLandmark("full").eval()
    d, l = _both(module, (1, 3, 224, 224), tmp_path)
    x = np.random.default_rng(1).random((2, 3, 224, 224), dtype=np.float32)
    for a, b in zip(_run(d, x), _run(l, x)):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=0)
