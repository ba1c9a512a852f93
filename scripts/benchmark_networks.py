#!/usr/bin/env python3
"""Time the palm and landmark networks alone (batch 1) per backend on this machine.

    python scripts/benchmark_networks.py [--runs 60] [--threads 2]

Prints the median latency in ms for torch, onnxruntime (worker threads not spinning, the
project's default) and onnxruntime with spinning (onnxruntime's own default), running palm
and landmark back to back as the tracker does.
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def _median_ms(runner_a, runner_b, shape_a, shape_b, runs: int) -> tuple[float, float]:
    xa = np.random.default_rng(0).random(shape_a, dtype=np.float32)
    xb = np.random.default_rng(1).random(shape_b, dtype=np.float32)
    for _ in range(5):
        runner_a(xa), runner_b(xb)
    ta, tb = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        runner_a(xa)
        t1 = time.perf_counter()
        runner_b(xb)
        tb.append(time.perf_counter() - t1)
        ta.append(t1 - t0)
    return float(np.median(ta) * 1e3), float(np.median(tb) * 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variant", default="full", choices=["full", "lite"])
    args = parser.parse_args()

    import torch

    from hand_pose_core.backends import create_runner

    torch.set_num_threads(args.threads)
    configs = {
        "torch": {},
        "onnxruntime": {"threads": args.threads},
        "onnxruntime (spinning)": {"threads": args.threads, "spin": True},
    }
    print(f"variant={args.variant} threads={args.threads} runs={args.runs}; median ms")
    print(f"{'backend':<24}{'palm':>8}{'landmark':>10}")
    for label, options in configs.items():
        backend = label.split()[0]
        palm = create_runner("palm", backend=backend, variant=args.variant, **options)
        landmark = create_runner("landmark", backend=backend, variant=args.variant, **options)
        p, l = _median_ms(palm, landmark, palm.input_shape, landmark.input_shape, args.runs)
        print(f"{label:<24}{p:8.1f}{l:10.1f}")


if __name__ == "__main__":
    main()
