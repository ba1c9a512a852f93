"""`hand-pose bench multicam`: two real camera streams, the node's batched several-camera path
(MultiStreamEstimator) vs two sequential estimator calls, appended as a table with the machine and
the command (real footage from ../shared/data/real; skipped where it is absent)."""
from __future__ import annotations

import pytest

from hand_pose_core.bench import data, main as bench_main

needs_real = pytest.mark.skipif(
    not (data.real_data_dir() / "asl_hand.25fps.mp4").is_file() or not (data.real_data_dir() / "hands.jpg").is_file(),
    reason=f"real footage not found at {data.real_data_dir()} (../shared/data/real is only on CI/dev machines)")


@needs_real
@pytest.mark.heavy
def test_multicam_rows_appended_with_machine_and_command(tmp_path):
    out = tmp_path / "bench.md"
    out.write_text("# Benchmarks\n")
    rc = bench_main(["multicam", "--frames", "2", "--warmup", "0", "--backends", "onnxruntime", "tensorrt",
                     "--output", str(out)])
    assert rc == 0
    text = out.read_text()
    assert text.startswith("# Benchmarks\n")  # appended, not overwritten
    assert "Command: `hand-pose bench multicam --frames 2 --warmup 0 --backends onnxruntime tensorrt --output " in text
    assert "Machine:" in text and "Versions:" in text
    assert "| tensorrt | unavailable:" in text  # needs CUDA: named, not crashed
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in text.splitlines() if ln.startswith("| onnxruntime")]
    assert [r[1] for r in rows] == ["tracking", "single images"]
    for _, mode, hands, seq, batched, calls in rows:
        assert float(hands) == 3.0, (mode, hands)  # the video's hand + the photo's two, every cycle
        assert float(seq.split()[0]) > 0 and float(batched.split()[0]) > 0
        # one palm batch over both images (when any needs it) + one landmark batch per pass:
        # separate estimators would make up to 2 palm + 4 landmark calls per cycle
        assert 2.0 <= float(calls) <= 3.0, (mode, calls)
