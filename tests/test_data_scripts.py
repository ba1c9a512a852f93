"""The data scripts run: the data-loader benchmark and the dataset picture grid."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]


def _script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_benchmark_dataloader_prints_a_rate(capsys):
    assert _script("benchmark_dataloader").main(["--unique", "4", "--samples", "16", "--workers", "0",
                                                 "--batch", "8", "--crop", "64"]) == 0
    out = capsys.readouterr().out
    assert "CPU per image" in out and "data loader:" in out and "images/s (0 workers, batch 8, 64x64, augmented" in out


def test_show_dataset_draws_reader_crops_and_augmentations(tmp_path):
    from tests.test_datasets_native import write_freihand

    (tmp_path / "fh").mkdir()
    write_freihand(tmp_path / "fh")
    show = _script("show_dataset")
    assert show.main(["freihand", str(tmp_path / "fh"), "--n", "3", "--cols", "2", "--crop", "64",
                      "--train", "--out", str(tmp_path / "grid.png")]) == 0
    assert cv2.imread(str(tmp_path / "grid.png")).shape == (128, 128, 3)  # 3 tiles + 1 blank in 2x2
    assert show.main(["freihand", str(tmp_path / "fh"), "--n", "2", "--crop", "48", "--augmentations",
                      "--out", str(tmp_path / "aug.png")]) == 0
    assert cv2.imread(str(tmp_path / "aug.png")).shape == (96, 48 * 11, 3)
