"""Backend plumbing tests on small stand-in conv nets with random weights (model-agnostic).

Real ONNX Runtime, real torch.onnx export, real files in tmp_path caches; no GPU needed.
"""
from __future__ import annotations

import os
import sys
from typing import NamedTuple

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from hand_pose_core.backends import (
    BackendUnavailableError,
    cache_root,
    cast_model_to_fp16,
    create_runner,
    create_runner_for_module,
    engine_cache_key,
    export_onnx,
)
from hand_pose_core.backends.tensorrt_runner import import_tensorrt, uses_strongly_typed

PALM_SHAPE = (1, 3, 32, 32)
LMK_SHAPE = (1, 3, 24, 24)


class TinyPalm(nn.Module):
    """Palm-detector-like ops: conv, PReLU, max-pool, bilinear resize, concat, reshape."""

    def __init__(self, anchors_per_cell: int = 2) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.act = nn.PReLU(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.down = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.up_proj = nn.Conv2d(16, 8, 1)
        self.reg = nn.Conv2d(8, anchors_per_cell * 18, 1)
        self.cls = nn.Conv2d(8, anchors_per_cell, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.act(self.stem(x))
        f = f + self.dw(f)
        g = F.max_pool2d(self.down(f), 1)
        f = f + F.interpolate(self.up_proj(g), scale_factor=2.0, mode="bilinear", align_corners=False)
        b = x.shape[0]
        reg = self.reg(f).permute(0, 2, 3, 1).reshape(b, -1, 18)
        cls = self.cls(f).permute(0, 2, 3, 1).reshape(b, -1, 1)
        return reg, cls


class TinyLandmarkOutput(NamedTuple):
    landmarks: torch.Tensor
    presence: torch.Tensor
    handedness: torch.Tensor
    world_landmarks: torch.Tensor


class TinyLandmark(nn.Module):
    """Landmark-network-like ops: conv + ReLU6, spatial mean, linear heads, sigmoid."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU6(),
                                  nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.ReLU6())
        self.lmk = nn.Linear(16, 63)
        self.flags = nn.Linear(16, 2)
        self.world = nn.Linear(16, 63)

    def forward(self, x: torch.Tensor) -> TinyLandmarkOutput:
        f = self.body(x).mean(dim=(2, 3))
        flags = torch.sigmoid(self.flags(f))
        b = x.shape[0]
        return TinyLandmarkOutput(self.lmk(f).reshape(b, 21, 3) * 24.0, flags[:, 0], flags[:, 1],
                                  self.world(f).reshape(b, 21, 3) * 0.01)


def _seeded(cls, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    m = cls()
    with torch.no_grad():  # PReLU slopes away from the 0.25 default so the op matters
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m


def _images(shape, batch: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((batch, *shape[1:]), dtype=np.float32)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    # any runner that forgets cache_dir must not write into the user's real cache
    monkeypatch.setenv("HAND_POSE_CACHE_DIR", str(tmp_path / "env_cache"))


@pytest.mark.parametrize("cls,shape", [(TinyPalm, PALM_SHAPE), (TinyLandmark, LMK_SHAPE)])
@pytest.mark.parametrize("batch", [1, 3])
def test_torch_and_onnxruntime_agree(tmp_path, cls, shape, batch):
    module = _seeded(cls)
    ref = create_runner_for_module(module, shape, backend="torch")
    ort_runner = create_runner_for_module(module, shape, backend="onnxruntime", cache_dir=tmp_path)
    x = _images(shape, batch)
    a, b = ref(x), ort_runner(x)
    assert len(a) == len(b) >= 2
    for ta, tb in zip(a, b):
        assert ta.dtype == tb.dtype == np.float32
        assert ta.shape == tb.shape and ta.shape[0] == batch
        np.testing.assert_allclose(ta, tb, atol=1e-4, rtol=1e-4)
    assert ref.output_names == ort_runner.output_names
    assert ort_runner.input_shape == (1, *shape[1:])


def test_namedtuple_outputs_flattened_in_field_order(tmp_path):
    module = _seeded(TinyLandmark)
    x = _images(LMK_SHAPE, 2)
    expected = module.eval()(torch.from_numpy(x))
    for backend in ("torch", "onnxruntime"):
        runner = create_runner_for_module(module, LMK_SHAPE, backend=backend, cache_dir=tmp_path)
        assert runner.output_names == TinyLandmarkOutput._fields
        outs = runner(x)
        assert [o.shape for o in outs] == [(2, 21, 3), (2,), (2,), (2, 21, 3)]
        for got, want in zip(outs, expected):
            np.testing.assert_allclose(got, want.detach().numpy(), atol=1e-4)


def test_explicit_output_names_and_runner_name(tmp_path):
    runner = create_runner_for_module(_seeded(TinyPalm), PALM_SHAPE, backend="onnxruntime", cache_dir=tmp_path,
                                      name="palm_test", output_names=("box_regressors", "score_logits"))
    assert runner.output_names == ("box_regressors", "score_logits")
    assert runner.name == "palm_test/onnxruntime/cpu/fp32"


def test_onnxruntime_threads_do_not_spin_unless_asked(tmp_path):
    """Two sessions run back to back per frame; spinning idle threads of one starve the other."""
    quiet = create_runner_for_module(_seeded(TinyPalm), PALM_SHAPE, backend="onnxruntime", cache_dir=tmp_path)
    spinning = create_runner_for_module(_seeded(TinyPalm), PALM_SHAPE, backend="onnxruntime", cache_dir=tmp_path,
                                        spin=True)
    key = "session.intra_op.allow_spinning"
    assert quiet.session.get_session_options().get_session_config_entry(key) == "0"
    assert spinning.session.get_session_options().get_session_config_entry(key) == "1"


def test_export_onnx_graph(tmp_path):
    path = tmp_path / "sub" / "palm.onnx"
    names = export_onnx(_seeded(TinyPalm), path, PALM_SHAPE)
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == ["image"]
    assert tuple(o.name for o in model.graph.output) == names == ("output_0", "output_1")
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    batch_dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param and not batch_dim.HasField("dim_value")
    assert [p.name for p in tmp_path.joinpath("sub").iterdir()] == ["palm.onnx"]  # no temp files left


def test_export_keeps_callers_module_untouched(tmp_path):
    module = _seeded(TinyPalm).train()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    torch.manual_seed(123)
    create_runner_for_module(module, PALM_SHAPE, backend="onnxruntime", cache_dir=tmp_path)
    create_runner_for_module(module, PALM_SHAPE, backend="torch")
    after_rng = torch.rand(3)
    torch.manual_seed(123)
    assert torch.equal(after_rng, torch.rand(3)), "export advanced the caller's global RNG"
    assert module.training
    for k, v in module.state_dict().items():
        assert torch.equal(v, before[k])


def _onnx_files(root):
    return sorted((root / "onnx").glob("*.onnx"))


def test_onnx_cache_reused_and_invalidated_by_weights(tmp_path):
    module = _seeded(TinyPalm)
    r1 = create_runner_for_module(module, PALM_SHAPE, backend="onnxruntime", cache_dir=tmp_path)
    st1 = os.stat(r1.onnx_path)
    r2 = create_runner_for_module(module, PALM_SHAPE, backend="onnxruntime", cache_dir=tmp_path)
    st2 = os.stat(r2.onnx_path)
    assert r2.onnx_path == r1.onnx_path
    assert (st2.st_ino, st2.st_mtime_ns) == (st1.st_ino, st1.st_mtime_ns), "second create re-exported"
    assert _onnx_files(tmp_path) == [r1.onnx_path]

    with torch.no_grad():
        module.reg.bias.add_(1.0)
    r3 = create_runner_for_module(module, PALM_SHAPE, backend="onnxruntime", cache_dir=tmp_path)
    assert r3.onnx_path != r1.onnx_path
    x = _images(PALM_SHAPE, 1)
    ref = create_runner_for_module(module, PALM_SHAPE, backend="torch")(x)
    np.testing.assert_allclose(r3(x)[0], ref[0], atol=1e-4)  # new weights are what runs
    assert len(_onnx_files(tmp_path)) == 2


def test_onnx_cache_key_covers_input_size(tmp_path):
    module = _seeded(TinyPalm)
    a = create_runner_for_module(module, (1, 3, 32, 32), backend="onnxruntime", cache_dir=tmp_path)
    b = create_runner_for_module(module, (1, 3, 64, 64), backend="onnxruntime", cache_dir=tmp_path)
    assert a.onnx_path != b.onnx_path
    assert b(_images((1, 3, 64, 64), 1))[0].shape == (1, 64 * 64 // 4 * 2, 18)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip_byte"])
def test_corrupt_cached_onnx_is_reexported(tmp_path, damage):
    module = _seeded(TinyLandmark)
    path = create_runner_for_module(module, LMK_SHAPE, backend="onnxruntime", cache_dir=tmp_path).onnx_path
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not an onnx file")
    else:
        i = len(data) - 100  # inside the weights: still parses, silently wrong without the checksum
        path.write_bytes(data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:])
    runner = create_runner_for_module(module, LMK_SHAPE, backend="onnxruntime", cache_dir=tmp_path)
    assert runner.onnx_path == path and path.read_bytes() == data
    x = _images(LMK_SHAPE, 1)
    ref = create_runner_for_module(module, LMK_SHAPE, backend="torch")(x)
    for got, want in zip(runner(x), ref):
        np.testing.assert_allclose(got, want, atol=1e-4)


def test_cache_root_env_override(tmp_path, monkeypatch):
    monkeypatch.setenv("HAND_POSE_CACHE_DIR", str(tmp_path / "envroot"))
    assert cache_root() == tmp_path / "envroot"
    assert cache_root(tmp_path / "explicit") == tmp_path / "explicit"
    runner = create_runner_for_module(_seeded(TinyPalm), PALM_SHAPE, backend="onnxruntime")
    assert runner.onnx_path.parent == tmp_path / "envroot" / "onnx"
    monkeypatch.delenv("HAND_POSE_CACHE_DIR")
    assert cache_root().name == "hand_pose_ros"


@pytest.mark.parametrize("kwargs,needle", [
    ({"backend": "tensorflow"}, "backend 'tensorflow'; choose one of: torch, onnxruntime, tensorrt"),
    ({"device": "gpu"}, "device 'gpu'; choose one of: cpu, cuda, auto"),
    ({"precision": "int8"}, "precision 'int8'; choose one of: fp32, fp16"),
    ({"backend": "torch", "threads": 4}, "unknown option(s) ['threads'] for backend 'torch'"),
])
def test_bad_choices_raise_clear_errors(kwargs, needle):
    with pytest.raises(ValueError) as err:
        create_runner_for_module(_seeded(TinyPalm), PALM_SHAPE, **kwargs)
    assert needle in str(err.value)


@pytest.mark.parametrize("kwargs,needle", [
    ({"model": "face"}, "model 'face'; choose one of: palm, landmark"),
    ({"model": "palm", "variant": "heavy"}, "variant 'heavy'; choose one of: full, lite"),
    ({"model": "palm", "backend": "openvino"}, "backend 'openvino'"),
])
def test_create_runner_bad_choices(kwargs, needle):
    with pytest.raises(ValueError, match="choose one of") as err:
        create_runner(**kwargs)
    assert needle in str(err.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_cuda_without_cuda_is_a_clear_error(tmp_path, backend):
    with pytest.raises(BackendUnavailableError, match="cuda"):
        create_runner_for_module(_seeded(TinyPalm), PALM_SHAPE, backend=backend, device="cuda", cache_dir=tmp_path)


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_auto_device(tmp_path, backend):
    runner = create_runner_for_module(_seeded(TinyPalm), PALM_SHAPE, backend=backend, device="auto", cache_dir=tmp_path)
    assert runner.device in ("cpu", "cuda")
    if not torch.cuda.is_available():
        assert runner.device == "cpu"
    assert runner(_images(PALM_SHAPE, 1))[0].shape == (1, 16 * 16 * 2, 18)


def test_torch_fp16_on_cpu_is_refused():
    with pytest.raises(ValueError, match="fp16.*not supported on the CPU"):
        create_runner_for_module(_seeded(TinyPalm), PALM_SHAPE, backend="torch", device="cpu", precision="fp16")


@pytest.mark.parametrize("bad,needle", [
    (np.full((1, 3, 32, 32), np.nan, np.float32), "NaN"),
    (np.zeros((1, 3, 31, 32), np.float32), "does not match"),
    (np.zeros((3, 32, 32), np.float32), "does not match"),
    (np.zeros((0, 3, 32, 32), np.float32), "B >= 1"),
    (np.zeros((1, 3, 32, 32), np.uint8), "not floating point"),
])
@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_bad_inputs_raise(tmp_path, backend, bad, needle):
    runner = create_runner_for_module(_seeded(TinyPalm), PALM_SHAPE, backend=backend, cache_dir=tmp_path)
    with pytest.raises(ValueError, match=needle):
        runner(bad)


def test_float64_input_is_accepted(tmp_path):
    runner = create_runner_for_module(_seeded(TinyPalm), PALM_SHAPE, backend="onnxruntime", cache_dir=tmp_path)
    x = _images(PALM_SHAPE, 1)
    np.testing.assert_allclose(runner(x.astype(np.float64))[0], runner(x)[0], atol=1e-6)


# ---------------------------------------------------------------- fp16 cast (for TensorRT)

@pytest.mark.parametrize("cls,shape", [(TinyPalm, PALM_SHAPE), (TinyLandmark, LMK_SHAPE)])
def test_fp16_cast_graph_close_to_fp32(tmp_path, cls, shape):
    module = _seeded(cls)
    fp32 = create_runner_for_module(module, shape, backend="onnxruntime", cache_dir=tmp_path)
    fp16 = create_runner_for_module(module, shape, backend="onnxruntime", precision="fp16", cache_dir=tmp_path)
    x = _images(shape, 3)
    for a, b in zip(fp32(x), fp16(x)):
        assert b.dtype == np.float32 and a.shape == b.shape
        scale = float(np.abs(a).max()) + 1e-3
        assert np.abs(a - b).max() <= 5e-3 * scale + 1e-3
        assert np.abs(a - b).max() > 0, "fp16 graph gave bit-identical results: was it cast at all?"


def test_fp16_cast_structure(tmp_path):
    path = tmp_path / "palm.onnx"
    export_onnx(_seeded(TinyPalm), path, PALM_SHAPE)
    src = onnx.load(str(path))
    cast = cast_model_to_fp16(src)
    f32, f16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
    # fp32 at the boundary, fp16 inside
    assert all(v.type.tensor_type.elem_type == f32 for v in list(cast.graph.input) + list(cast.graph.output))
    conv_weights = {n.input[1] for n in cast.graph.node if n.op_type == "Conv"}
    inits = {i.name: i.data_type for i in cast.graph.initializer}
    assert conv_weights and all(inits[w] == f16 for w in conv_weights)
    # Resize scales must stay fp32 (the op requires it)
    resize_scales = [n.input[2] for n in cast.graph.node if n.op_type == "Resize" and len(n.input) > 2 and n.input[2]]
    consts = {o: n for n in cast.graph.node if n.op_type == "Constant" for o in n.output}
    for s in resize_scales:
        dt = inits[s] if s in inits else consts[s].attribute[0].t.data_type
        assert dt == f32
    # the source model is not modified in place
    assert all(i.data_type == f32 for i in src.graph.initializer if i.name in conv_weights)


def test_fp16_cast_refuses_subgraphs():
    from onnx import helper

    then_g = helper.make_graph([helper.make_node("Identity", ["x"], ["y1"])], "t", [],
                               [helper.make_tensor_value_info("y1", onnx.TensorProto.FLOAT, [1])])
    node = helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=then_g)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("c", onnx.TensorProto.BOOL, [])],
                          [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    with pytest.raises(ValueError, match="subgraph"):
        cast_model_to_fp16(helper.make_model(g))


# ---------------------------------------------------------------- TensorRT (no GPU/TRT here)

_KEY = dict(trt_version="10.13.0.35", gpu_name="NVIDIA H100 80GB HBM3", compute_capability=(9, 0),
            onnx_sha256="ab" * 32, precision="fp16", max_batch=8)


@pytest.mark.parametrize("field,value", [
    ("trt_version", "10.13.2.6"), ("trt_version", "10.7.0.23"), ("gpu_name", "NVIDIA H200"),
    ("compute_capability", (8, 9)), ("onnx_sha256", "cd" * 32), ("precision", "fp32"), ("max_batch", 4),
])
def test_engine_cache_key_changes(field, value):
    base = engine_cache_key(**_KEY)
    assert engine_cache_key(**_KEY) == base  # deterministic
    assert engine_cache_key(**{**_KEY, field: value}) != base


def test_engine_cache_key_rejects_bad_precision():
    with pytest.raises(ValueError, match="precision"):
        engine_cache_key(**{**_KEY, "precision": "int4"})


def test_strongly_typed_version_switch():
    assert uses_strongly_typed("10.12.0.36") and uses_strongly_typed("11.0.0")
    assert not uses_strongly_typed("10.11.0.33") and not uses_strongly_typed("8.6.1")


def test_missing_tensorrt_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # makes `import tensorrt` raise ImportError
    with pytest.raises(BackendUnavailableError, match="pip install tensorrt-cu12"):
        import_tensorrt()
    with pytest.raises(BackendUnavailableError, match="backend='onnxruntime'"):
        create_runner_for_module(_seeded(TinyPalm), PALM_SHAPE, backend="tensorrt", device="cuda", cache_dir=tmp_path)


def test_tensorrt_refuses_cpu(tmp_path):
    with pytest.raises(ValueError, match="CUDA GPUs only"):
        create_runner_for_module(_seeded(TinyPalm), PALM_SHAPE, backend="tensorrt", device="cpu", cache_dir=tmp_path)
