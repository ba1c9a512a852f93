"""`hand-pose bench`: the report it writes, its inputs, the LiteRT backend, thread settings.

Real runtimes (onnxruntime, LiteRT/XNNPACK), real files; the MediaPipe rows need MediaPipe's
own venv (.venv-bench, made by scripts/benchmark.sh) and are skipped without it.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from hand_pose_core.bench import data, main as bench_main
from hand_pose_core.bench.mediapipe_client import find_mediapipe_python
from hand_pose_core.bench.stats import median_of_medians, summarize


def _tflite_cached() -> bool:
    try:
        import ai_edge_litert.interpreter  # noqa: F401
        from hand_pose_core.weights import ensure_tflite

        ensure_tflite(("palm_detection_full", "hand_landmark_full"), offline=True, progress=False)
        return True
    except Exception:
        return False


needs_litert = pytest.mark.skipif(not _tflite_cached(), reason="ai-edge-litert or the cached .tflite files missing")


@pytest.fixture()
def frame_folder(tmp_path):
    """Four 320x240 frames: the real hands photo when present, else textured noise."""
    real = data.real_data_dir() / "hands.jpg"
    rng = np.random.default_rng(0)
    base = cv2.imread(str(real)) if real.is_file() else rng.integers(0, 255, (240, 320, 3), np.uint8)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(4):
        img = cv2.resize(np.roll(base, 3 * i, axis=1), (320, 240))
        cv2.imwrite(str(folder / f"{i:03d}.png"), img)
    return folder


def test_stats():
    s = summarize([1.0, 2.0, 3.0, 100.0])
    assert s["p50"] == 2.5 and s["n"] == 4 and 90 < s["p99"] <= 100
    assert np.isnan(summarize([])["p50"])
    assert median_of_medians([[1, 2, 3], [10, 10, 10], [2, 2, 2]]) == 2.0


def test_frame_sets_shapes():
    frame = np.full((1080, 620, 3), 200, np.uint8)
    sets = data.frame_sets([frame] * 2, None, 2)
    assert sets["640x480"][0].shape == (480, 640, 3) and sets["256x256"][0].shape == (256, 256, 3)
    lb = sets["640x480"][0]
    assert lb[:, :100].max() == 0 and lb[240, 320].min() == 200  # black bars, image centred
    joints = np.array([[10.0, 1000.0]] * 21)  # hand at the bottom: the crop clamps to the image
    crop = data.square_crop(np.arange(1080)[:, None, None].repeat(620, 1).repeat(3, 2).astype(np.uint8), 64, joints)
    assert crop.shape == (64, 64, 3)


def test_missing_footage_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="benchmark footage not found"):
        data.load_native(tmp_path / "nope.mp4")


@needs_litert
def test_networks_report_appended_with_machine_and_command(tmp_path, frame_folder):
    out = tmp_path / "bench.md"
    out.write_text("# Benchmarks\n")
    rc = bench_main(["networks", "--backends", "litert", "onnxruntime", "--batch", "1,2", "--runs", "2",
                     "--frames", "4", "--video", str(frame_folder), "--output", str(out), "--title", "test"])
    assert rc == 0
    text = out.read_text()
    assert text.startswith("# Benchmarks\n")  # appended, not overwritten
    assert "Command: `hand-pose bench networks --backends litert onnxruntime --batch 1,2" in text
    assert "Machine:" in text and "onnxruntime" in text and "Versions:" in text
    rows = [ln for ln in text.splitlines() if ln.startswith("| palm") or ln.startswith("| landmark")]
    assert len(rows) == 2 * 2 * 2  # networks x backends x batches
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        p50, p99, items = float(cells[5]), float(cells[6]), float(cells[7])
        assert 0 < p50 <= p99 and items > 0


def test_unavailable_backend_is_reported_not_fatal(tmp_path, frame_folder):
    out = tmp_path / "bench.md"
    rc = bench_main(["networks", "--backends", "tensorrt", "--batch", "1", "--runs", "1", "--frames", "2",
                     "--video", str(frame_folder), "--output", str(out)])
    assert rc == 0
    assert "unavailable:" in out.read_text()  # tensorrt needs CUDA: named, not crashed


@needs_litert
def test_pipeline_rows_for_single_images_and_tracking(tmp_path, frame_folder):
    out = tmp_path / "bench.md"
    rc = bench_main(["pipeline", "--backends", "litert", "--frames", "3", "--repeat", "1", "--no-mesh-rows",
                     "--no-mediapipe", "--video", str(frame_folder), "--output", str(out)])
    assert rc == 0
    rows = [ln for ln in out.read_text().splitlines() if ln.startswith("| ours/litert")]
    assert [tuple(c.strip() for c in r.strip("|").split("|")[1:4]) for r in rows] == [
        ("640x480", "single image", "yes"), ("640x480", "tracking", "yes"), ("256x256", "single image", "yes")]


def test_bad_arguments_exit_with_usage(capsys):
    with pytest.raises(SystemExit) as err:
        bench_main(["networks", "--batch", "0,8"])
    assert err.value.code == 2
    assert "batch sizes must be integers >= 1" in capsys.readouterr().err


def test_bench_package_does_not_import_rclpy():
    code = ("import sys, hand_pose_core.bench, hand_pose_core.cli; "
            "assert 'rclpy' not in sys.modules and 'hand_pose_ros' not in sys.modules; print('ok')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr


def test_fit_subcommand_prints_times(capsys):
    assert bench_main(["fit", "--hands", "1", "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert "hands=1 cold:" in out and "hands=1 warm:" in out and "residual" in out


@pytest.mark.heavy
@pytest.mark.skipif(find_mediapipe_python() is None, reason="MediaPipe's venv (.venv-bench) not built here")
def test_mediapipe_rows_side_by_side(tmp_path, frame_folder):
    out = tmp_path / "bench.md"
    rc = bench_main(["pipeline", "--backends", "litert", "--frames", "3", "--repeat", "1", "--no-mesh-rows",
                     "--video", str(frame_folder), "--output", str(out)])
    assert rc == 0
    text = out.read_text()
    mp_rows = [ln for ln in text.splitlines() if ln.startswith("| MediaPipe 0.10")]
    assert len(mp_rows) == 3
    ours = [ln for ln in text.splitlines() if ln.startswith("| ours/litert")]
    assert all(ln.count("x |") == 2 for ln in ours)  # wall and CPU ratios to MediaPipe filled in
