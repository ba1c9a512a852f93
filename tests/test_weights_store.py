"""The safetensors weight cache, its errors and the `hand-pose weights` subcommand."""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from hand_pose_core.weights import (WeightsUnavailableError, ensure_tflite, ensure_weights,
                                    load_hand_landmark, load_palm_detector, load_state_dict,
                                    weights_command)


@pytest.fixture(scope="session")
def tflite_dir() -> Path:
    """Directory with the four source models in the normal cache (downloads at most once)."""
    try:
        paths = ensure_tflite(progress=False)
    except WeightsUnavailableError as exc:
        if os.environ.get("HAND_POSE_OFFLINE"):
            pytest.skip(f"offline and the MediaPipe models are not cached: {exc}")
        raise
    return next(iter(paths.values())).parent


@pytest.fixture
def empty_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("HAND_POSE_CACHE_DIR", str(cache))
    monkeypatch.delenv("HAND_POSE_OFFLINE", raising=False)
    return cache


def test_offline_and_not_cached_says_what_to_do(empty_cache, monkeypatch):
    with pytest.raises(WeightsUnavailableError) as exc:
        ensure_weights(offline=True, progress=False)
    msg = str(exc.value)
    assert "pip download --no-deps mediapipe==0.10.14" in msg
    assert "hand-pose weights --source" in msg and str(empty_cache) in msg
    assert "HAND_POSE_OFFLINE" in msg
    monkeypatch.setenv("HAND_POSE_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError, match="offline"):
        load_palm_detector("full")
    assert not any(empty_cache.rglob("*.safetensors"))


def test_convert_from_source_then_reuse_cache(empty_cache, tflite_dir, monkeypatch):
    paths = ensure_weights(source=tflite_dir, progress=False)
    assert sorted(paths) == ["hand_landmark_full", "hand_landmark_lite", "palm_detection_full",
                             "palm_detection_lite"]
    for name, path in paths.items():
        manifest = json.loads((empty_cache / f"{name}.json").read_text())
        assert path.name == f"{name}-{manifest['sha256'][:12]}.safetensors"
        assert manifest["variant"] == name.rsplit("_", 1)[1] and manifest["converter_version"] >= 1
    stamps = {p: p.stat().st_mtime_ns for p in empty_cache.rglob("*") if p.is_file()}
    # Second use, offline: served from the cache, nothing rewritten.
    monkeypatch.setenv("HAND_POSE_OFFLINE", "1")
    assert ensure_weights(progress=False) == paths
    model = load_hand_landmark("lite")
    assert not model.training and isinstance(model.presence, torch.nn.Linear)
    assert {p: p.stat().st_mtime_ns for p in empty_cache.rglob("*") if p.is_file()} == stamps


def test_corrupt_cached_file_is_reconverted(empty_cache, tflite_dir, monkeypatch):
    paths = ensure_weights(source=tflite_dir, variant="lite", progress=False)
    good = load_state_dict("palm_detection_lite")
    target = paths["palm_detection_lite"]
    data = bytearray(target.read_bytes())
    data[100:120] = b"\xff" * 20  # damage the header
    target.write_bytes(bytes(data))
    monkeypatch.setenv("HAND_POSE_OFFLINE", "1")  # must recover from the cached .tflite
    again = load_state_dict("palm_detection_lite")
    assert again.keys() == good.keys()
    assert all(torch.equal(again[k], good[k]) for k in good)
    # A flipped weight byte (valid safetensors, wrong content) is caught by the SHA-256 check.
    data = bytearray(target.read_bytes())
    data[-5] ^= 0x55
    target.write_bytes(bytes(data))
    assert torch.equal(load_state_dict("palm_detection_lite")["stem.conv.weight"],
                       good["stem.conv.weight"])


def test_source_errors_are_clear(empty_cache, tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        ensure_weights(source=tmp_path / "nope.whl", progress=False)
    bogus = tmp_path / "mediapipe-0.10.14-py3-none-any.whl"
    bogus.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable wheel"):
        ensure_weights(source=bogus, progress=False)
    odd = tmp_path / "my_model.tflite"
    odd.write_bytes(b"x")
    with pytest.raises(ValueError, match="unknown model file name"):
        ensure_weights(source=odd, progress=False)
    with pytest.raises(ValueError, match="variant"):
        ensure_weights(variant="medium", offline=True)


def test_weights_command(empty_cache, tflite_dir, capsys):
    assert weights_command(["--offline"]) == 1
    assert "hand-pose weights --source" in capsys.readouterr().err
    one = tflite_dir / "hand_landmark_full.tflite"
    assert weights_command(["--source", str(one), "--variant", "full"]) == 0
    out = capsys.readouterr().out
    assert "hand_landmark_full" in out and "converted" in out and str(empty_cache) in out
    assert "palm_detection_full" not in out  # only the given file was converted
    assert weights_command(["--source", str(tflite_dir), "--variant", "full"]) == 0
    out = capsys.readouterr().out
    assert "palm_detection_full" in out and "hand_landmark_full     cached" in out


@pytest.mark.heavy
@pytest.mark.parametrize("name", ["palm_detection_full", "palm_detection_lite",
                                  "hand_landmark_full", "hand_landmark_lite"])
def test_onnx_export_of_converted_models(name, tflite_dir, tmp_path, monkeypatch):
    """Each converted module exports with a dynamic batch and runs in ONNX Runtime."""
    ort = pytest.importorskip("onnxruntime")
    monkeypatch.setenv("HAND_POSE_CACHE_DIR", str(tmp_path / "cache"))
    ensure_weights(source=tflite_dir / f"{name}.tflite", progress=False)
    kind, variant = name.rsplit("_", 1)
    model = load_palm_detector(variant) if kind == "palm_detection" else load_hand_landmark(variant)
    size = 192 if kind == "palm_detection" else 224
    torch.manual_seed(0)
    path = tmp_path / f"{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.rand(1, 3, size, size),), str(path), dynamo=False,
                          input_names=["image"], dynamic_axes={"image": {0: "batch"}},
                          opset_version=17)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.rand(2, 3, size, size)
    got = sess.run(None, {"image": x.numpy()})
    with torch.no_grad():
        want = model(x)
    for g, w in zip(got, want, strict=True):
        # 1e-4 absolute plus 1e-6 of the output's range: float32 convolutions summed in another
        # order differ by that much on outputs whose values reach ~200 px (seen: 1.5e-4 on a
        # 0.2-valued element next to 200 px ones, on an AMD EPYC host); 1e-5 relative on top.
        scale = float(np.abs(w.numpy()).max())
        np.testing.assert_allclose(g, w.numpy(), atol=1e-4 + 1e-6 * scale, rtol=1e-5)


def test_failed_download_says_what_to_do(empty_cache, tmp_path, monkeypatch):
    # A real pip run that cannot reach any index (no mocks): the error must explain the fix.
    (tmp_path / "no_wheels").mkdir()
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "no_wheels"))
    with pytest.raises(WeightsUnavailableError) as exc:
        ensure_weights(variant="lite", progress=False)
    msg = str(exc.value)
    assert "with pip failed" in msg
    assert "hand-pose weights --source" in msg and "pip download --no-deps" in msg
    assert not [p for p in empty_cache.iterdir() if p.name.startswith("download")]


def _damaged_copy(src: Path, dest: Path) -> Path:
    """A copy of a .tflite with one weight byte changed: still a valid flatbuffer that converts."""
    data = bytearray(src.read_bytes())
    data[len(data) // 2] ^= 0x40
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(bytes(data))
    return dest


def test_damaged_cached_tflite_is_refused_on_conversion(empty_cache, tflite_dir, monkeypatch):
    from hand_pose_core.weights import WeightsIntegrityError, read_tflite

    bad = _damaged_copy(tflite_dir / "hand_landmark_lite.tflite",
                        empty_cache / "tflite" / "hand_landmark_lite.tflite")
    read_tflite(bad)  # the damage is invisible to the parser: only the hash can tell
    good = empty_cache / "tflite" / "palm_detection_lite.tflite"
    good.write_bytes((tflite_dir / "palm_detection_lite.tflite").read_bytes())
    monkeypatch.setenv("HAND_POSE_OFFLINE", "1")
    with pytest.raises(WeightsIntegrityError) as exc:
        ensure_weights(variant="lite", progress=False, source=None)
    msg = str(exc.value)
    assert str(bad) in msg and "hand-pose weights --force" in msg and "SHA-256" in msg
    assert not any(empty_cache.glob("hand_landmark_lite*.safetensors"))
    # the subcommand reports the same, exit code 1
    assert weights_command(["--variant", "lite"]) == 1
    # --force drops the damaged file and fetches it again (offline here: the fetch is refused,
    # which proves the damaged file was not used)
    with pytest.raises(WeightsUnavailableError, match="offline"):
        ensure_weights(variant="lite", progress=False, force=True)
    assert not bad.exists()
    # with a good source the cache recovers
    monkeypatch.delenv("HAND_POSE_OFFLINE")
    paths = ensure_weights(source=tflite_dir, variant="lite", progress=False, force=True)
    assert sorted(paths) == ["hand_landmark_lite", "palm_detection_lite"]


def test_cached_weights_from_unknown_source_are_not_used(empty_cache, tflite_dir, monkeypatch):
    """A manifest whose source hash is not the known model (e.g. left by a version that did not
    verify) is never served: the damaged .tflite behind it is refused."""
    from hand_pose_core.paths import file_sha256
    from hand_pose_core.weights import WeightsIntegrityError

    ensure_weights(source=tflite_dir, variant="lite", progress=False)
    bad = _damaged_copy(tflite_dir / "palm_detection_lite.tflite",
                        empty_cache / "tflite" / "palm_detection_lite.tflite")
    manifest_path = empty_cache / "palm_detection_lite.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["sha256"] = file_sha256(bad)
    manifest_path.write_text(json.dumps(manifest))
    monkeypatch.setenv("HAND_POSE_OFFLINE", "1")
    with pytest.raises(WeightsIntegrityError, match="palm_detection_lite"):
        load_palm_detector("lite")


def test_damaged_source_never_enters_the_cache(empty_cache, tflite_dir, tmp_path):
    from hand_pose_core.weights import WeightsIntegrityError

    bad = _damaged_copy(tflite_dir / "palm_detection_full.tflite",
                        tmp_path / "src" / "palm_detection_full.tflite")
    with pytest.raises(WeightsIntegrityError) as exc:
        ensure_weights(source=bad, progress=False)
    assert str(bad) in str(exc.value) and "--source" in str(exc.value)
    assert not (empty_cache / "tflite" / "palm_detection_full.tflite").exists()
    with pytest.raises(WeightsIntegrityError):
        ensure_weights(source=bad.parent, progress=False)


def test_cache_files_have_one_mode(empty_cache, tflite_dir):
    """Every published cache file gets 0o666 & ~umask (tested with umask 027, so 0640), whichever
    writer made it: .tflite copies, safetensors, manifests, ONNX exports and their digests."""
    from hand_pose_core.backends.onnx_export import cached_onnx

    old = os.umask(0o027)
    try:
        ensure_weights(source=tflite_dir / "palm_detection_lite.tflite", progress=False)
        cached_onnx(torch.nn.Conv2d(3, 2, 3), (1, 3, 8, 8), name="tiny")
    finally:
        os.umask(old)
    files = [p for p in empty_cache.rglob("*") if p.is_file()]
    kinds = {p.suffix for p in files}
    assert {".tflite", ".safetensors", ".json", ".onnx", ".sha256"} <= kinds
    modes = {p.relative_to(empty_cache).as_posix(): oct(p.stat().st_mode & 0o777) for p in files}
    assert set(modes.values()) == {"0o640"}, modes
