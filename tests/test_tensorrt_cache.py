"""TensorRT engine/timing cache logic that needs no GPU: keys and the on-disk engine files."""
from __future__ import annotations

import pytest

from hand_pose_core.backends.tensorrt_runner import (
    engine_cache_key, read_cached_engine, timing_cache_key, write_cached_engine)


def test_engine_roundtrip_and_corruption(tmp_path):
    path = tmp_path / "tensorrt" / "palm-fp16-abc.engine"
    assert read_cached_engine(path) is None  # absent
    write_cached_engine(path, b"engine-bytes")
    assert read_cached_engine(path) == b"engine-bytes"
    path.write_bytes(b"engine-bytez")  # flipped byte: corrupt -> rebuild
    assert read_cached_engine(path) is None
    write_cached_engine(path, b"new")
    path.with_suffix(".engine.sha256").unlink()  # digest missing = half-written
    assert read_cached_engine(path) is None


@pytest.mark.parametrize("field,value", [(0, "10.13.0"), (1, "NVIDIA H200"), (2, (8, 9))])
def test_timing_cache_key_tracks_trt_and_gpu(field, value):
    base = ["10.12.0", "NVIDIA H100 80GB HBM3", (9, 0)]
    other = list(base)
    other[field] = value
    assert timing_cache_key(*base) != timing_cache_key(*other)
    assert timing_cache_key(*base) == timing_cache_key(*base)


def test_engine_key_covers_model_hash_and_batch_profile():
    args = dict(trt_version="10.12.0", gpu_name="NVIDIA H100", compute_capability=(9, 0),
                onnx_sha256="a" * 64, precision="fp16", max_batch=32)
    k = engine_cache_key(**args)
    assert k != engine_cache_key(**{**args, "onnx_sha256": "b" * 64})
    assert k != engine_cache_key(**{**args, "max_batch": 64})
    assert k != engine_cache_key(**{**args, "precision": "fp32"})
