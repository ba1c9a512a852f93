"""Two cameras per cycle: ``HandPoseEstimator.estimate_many`` (hand crops of both images in one
landmark batch) against two sequential estimator calls (one estimator per camera), side by side
in one run: for each cycle both variants run on the same two frames, alternating which goes
first, so machine load hits both alike.

Cameras: 'wrist' = the shared real video (620x1080, one hand), 'head' = the shared two-hand photo
(720x382) panning 2 px per frame. Prints per-cycle end-to-end and landmark-stage medians (p90).

    PYTHONPATH=. python scripts/benchmark_multicam.py [--frames 60] [--backend onnxruntime]
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"


def _streams(n: int):
    import cv2

    from hand_pose_core.frames import read_video_rgb

    video = read_video_rgb(REAL / "asl_hand.25fps.mp4")
    video = [video[i % len(video)] for i in range(n)]
    photo = cv2.cvtColor(cv2.imread(str(REAL / "hands.jpg")), cv2.COLOR_BGR2RGB)
    head = [np.roll(photo, 2 * i, axis=1) for i in range(n)]
    vh, vw = video[0].shape[:2]
    ph, pw = photo.shape[:2]
    K_wrist = np.array([[1.2 * max(vw, vh), 0, (vw - 1) / 2], [0, 1.2 * max(vw, vh), (vh - 1) / 2], [0, 0, 1]])
    K_head = np.array([[700.0, 0, (pw - 1) / 2], [0, 700.0, (ph - 1) / 2], [0, 0, 1]])
    return video, head, K_wrist, K_head


def _stats(values) -> str:
    a = np.asarray(values, np.float64)
    return f"{np.median(a):6.1f} ({np.percentile(a, 90):6.1f})"


def run(frames: int, warmup: int, tracking: bool, backend: str) -> dict:
    from hand_pose_core.pipeline.estimator import HandPoseEstimator

    video, head, K_wrist, K_head = _streams(frames + warmup)
    kw = dict(backend=backend, tracking=tracking)
    batched = HandPoseEstimator(**kw)
    seq = [HandPoseEstimator(**kw), HandPoseEstimator(**kw)]
    rec = {"batched": [], "sequential": [], "batched_landmark": [], "sequential_landmark": [],
           "batched_calls": 0, "sequential_calls": 0, "crops": 0}
    for i in range(frames + warmup):
        t_s = i / 30.0
        images, Ks = [video[i], head[i]], [K_wrist, K_head]
        order = ("batched", "sequential") if i % 2 == 0 else ("sequential", "batched")
        for variant in order:
            if variant == "batched":
                calls0 = batched.counters["landmark_calls"]
                t0 = time.perf_counter()
                hands = batched.estimate_many(images, Ks, timestamps_s=[t_s, t_s], streams=["wrist", "head"])
                dt = (time.perf_counter() - t0) * 1e3
                lm = batched.last_timings_ms["landmark"]
                calls = batched.counters["landmark_calls"] - calls0
            else:
                calls0 = sum(e.counters["landmark_calls"] for e in seq)
                t0 = time.perf_counter()
                hands = [e(img, K, timestamp_s=t_s) for e, img, K in zip(seq, images, Ks)]
                dt = (time.perf_counter() - t0) * 1e3
                lm = sum(e.last_timings_ms["landmark"] for e in seq)
                calls = sum(e.counters["landmark_calls"] for e in seq) - calls0
            if i >= warmup:
                rec[variant].append(dt)
                rec[f"{variant}_landmark"].append(lm)
                rec[f"{variant}_calls"] += calls
                if variant == "batched":
                    rec["crops"] += sum(len(h) for h in hands)
    return rec


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=60, help="measured cycles per mode")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--backend", default="onnxruntime")
    opts = ap.parse_args()
    import onnxruntime
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.machine()) if Path("/proc/cpuinfo").is_file() else platform.machine()
    print(f"machine: {cpu}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, "
          f"Python {platform.python_version()}, onnxruntime {onnxruntime.__version__}, torch {torch.__version__}")
    print(f"two cameras per cycle, {opts.frames} cycles per mode, backend {opts.backend}, mesh on, "
          "refine_passes 1; ms median (p90)")
    print("| mode | hands/cycle | 2 sequential calls | estimate_many (batched) | landmark stage: sequential | "
          "batched | landmark calls/cycle: sequential | batched |")
    print("|---|---|---|---|---|---|---|---|")
    for tracking in (True, False):
        r = run(opts.frames, opts.warmup, tracking, opts.backend)
        n = opts.frames
        print(f"| {'tracking' if tracking else 'static'} | {r['crops'] / n:.1f} | {_stats(r['sequential'])} | "
              f"{_stats(r['batched'])} | {_stats(r['sequential_landmark'])} | {_stats(r['batched_landmark'])} | "
              f"{r['sequential_calls'] / n:.2f} | {r['batched_calls'] / n:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
