"""``hand-pose bench multicam``: two cameras per cycle, the node's several-camera path
(:class:`~hand_pose_core.pipeline.multi_stream.MultiStreamEstimator`: each network runs once per
round on the inputs of both streams) against two sequential estimator calls (one estimator per
camera), side by side in one run: in every cycle both variants run on the same two frames,
alternating which goes first, so machine load hits both alike.

Cameras: 'wrist' = the shared real video (620x1080, one hand), 'head' = the shared two-hand photo
(720x382) panning 2 px per frame. Prints per-cycle end-to-end and landmark-stage medians (p90) and
landmark-network calls per cycle for each backend, tracking and single-image mode, and appends
them with the machine and the command to ``docs/benchmarks.md`` (unless ``--no-append``).

    hand-pose bench multicam [--frames 60] [--backends litert onnxruntime] [--no-append]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def _streams(n: int):
    import cv2

    from hand_pose_core.frames import read_video_rgb

    from .data import real_data_dir

    real = real_data_dir()
    video = read_video_rgb(real / "asl_hand.25fps.mp4")
    video = [video[i % len(video)] for i in range(n)]
    photo = cv2.cvtColor(cv2.imread(str(real / "hands.jpg")), cv2.COLOR_BGR2RGB)
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
    from hand_pose_core.pipeline.multi_stream import MultiStreamEstimator

    video, head, K_wrist, K_head = _streams(frames + warmup)
    kw = dict(backend=backend, tracking=tracking)
    batched = MultiStreamEstimator(HandPoseEstimator(**kw), 2)
    seq = [HandPoseEstimator(**kw), HandPoseEstimator(**kw)]
    rec = {"batched": [], "sequential": [], "batched_calls": 0, "hands": 0}
    for i in range(frames + warmup):
        t_s = i / 30.0
        images, Ks = [video[i], head[i]], [K_wrist, K_head]
        order = ("batched", "sequential") if i % 2 == 0 else ("sequential", "batched")
        for variant in order:
            if variant == "batched":
                calls0 = sum(batched.batcher.calls.values())
                t0 = time.perf_counter()
                out = batched({k: (img, K, None, t_s) for k, (img, K) in enumerate(zip(images, Ks))})
                dt = (time.perf_counter() - t0) * 1e3
                errors = [r for r in out.values() if isinstance(r, Exception)]
                if errors:
                    raise errors[0]
                calls = sum(batched.batcher.calls.values()) - calls0
                n_hands = sum(len(h) for h in out.values())
            else:
                t0 = time.perf_counter()
                n_hands = sum(len(e(img, K, timestamp_s=t_s)) for e, img, K in zip(seq, images, Ks))
                dt = (time.perf_counter() - t0) * 1e3
            if i >= warmup:
                rec[variant].append(dt)
                if variant == "batched":
                    rec["batched_calls"] += calls
                    rec["hands"] += n_hands
    return rec


def main(argv: list[str] | None = None) -> int:
    import shlex
    import sys

    from . import DEFAULT_DOC, append_report, machine

    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="hand-pose bench multicam", description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=60, help="measured cycles per mode and backend")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--backends", nargs="+", default=["litert", "onnxruntime"])
    ap.add_argument("--output", type=Path, default=None, help=f"markdown file to append to (default {DEFAULT_DOC})")
    ap.add_argument("--no-append", action="store_true", help="print only")
    opts = ap.parse_args(argv)
    info = machine.machine_info()
    print(machine.describe(info))
    rows = [f"Two cameras per cycle, {opts.frames} cycles per row after {opts.warmup} warm-up cycles, mesh on, "
            "refine_passes 1; ms per cycle, median (p90). Batched = MultiStreamEstimator (the node with "
            "cameras:=wrist,head); network calls per cycle counted by its batcher (palm + landmark, refinement "
            "included; two separate estimators make up to twice as many). litert runs a batch item by item "
            "(its models have batch 1 baked in), so only the other backends can gain from the shared batch.", "",
            "| backend | mode | hands/cycle | 2 sequential estimator calls | MultiStreamEstimator (batched) | "
            "network calls/cycle, batched |",
            "|---|---|---|---|---|---|"]
    print("\n".join(rows))
    for backend in opts.backends:
        for tracking in (True, False):
            try:
                r = run(opts.frames, opts.warmup, tracking, backend)
            except Exception as exc:  # a backend that is not installed: say so, go on
                row = f"| {backend} | unavailable: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__} |"
                rows.append(row)
                print(row, flush=True)
                break
            n = opts.frames
            row = (f"| {backend} | {'tracking' if tracking else 'single images'} | {r['hands'] / n:.1f} | "
                   f"{_stats(r['sequential'])} | {_stats(r['batched'])} | {r['batched_calls'] / n:.2f} |")
            rows.append(row)
            print(row, flush=True)
    if not opts.no_append:
        out = opts.output or DEFAULT_DOC
        append_report(out, "two cameras, one node's batched streams vs sequential calls",
                      "hand-pose bench multicam " + " ".join(shlex.quote(a) for a in argv), info,
                      [("Several cameras: networks batched over the streams vs one estimator call per camera", rows)],
                      machine.load_average())
        print(f"appended to {out}")
    return 0
