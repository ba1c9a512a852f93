#!/usr/bin/env python3
"""Benchmark the hand tracker on the CPU: per-stage latency and 2D agreement with MediaPipe.

Frames: the shared real video (../shared/data/real/asl_hand.25fps.mp4, 620x1080 portrait).
For timing, each frame is letterboxed to 640x480 the way a landscape camera would frame it:
scaled by 480/1080 (to 276x480, cv2.INTER_AREA) and centred between black bars. Timing runs
go over consecutive frames (tracking mode needs them) after a short warm-up.

Accuracy: the estimator runs on the native-resolution frames and its 2D joints are compared
with the MediaPipe reference landmarks (asl_hand.full.json; MediaPipe's continuous pixel
convention, shifted by -0.5 px to our pixel-centre convention).

If ``mediapipe`` is importable (not a project dependency), the legacy ``mp.solutions.hands``
(model_complexity=1) is timed on the same frames, static_image_mode True and False.

    python scripts/benchmark_tracker.py [--frames 150] [--backends torch onnxruntime]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real"
STAGES = ("palm", "landmark", "metric3d", "mano", "total")


def letterbox_to(frame: np.ndarray, width: int = 640, height: int = 480) -> np.ndarray:
    """Scale to fit inside width x height (aspect kept, INTER_AREA) and centre on black."""
    import cv2

    h, w = frame.shape[:2]
    s = min(width / w, height / h)
    nw, nh = int(round(w * s)), int(round(h * s))
    small = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA)
    out = np.zeros((height, width, 3), np.uint8)
    y0, x0 = (height - nh) // 2, (width - nw) // 2
    out[y0:y0 + nh, x0:x0 + nw] = small
    return out


def stats(values_ms) -> tuple[float, float]:
    v = np.asarray(values_ms, float)
    return float(np.median(v)), float(np.percentile(v, 90))


def time_estimator(frames, warmup: int, **kw) -> dict[str, list[float]]:
    from hand_pose_core.pipeline.estimator import HandPoseEstimator

    est = HandPoseEstimator(**kw)
    for i, f in enumerate(frames[:warmup]):
        est(f, timestamp_s=i / 25.0)
    est.reset()
    rec: dict[str, list[float]] = {k: [] for k in STAGES}
    rec["wall"] = []
    rec["hands"] = []
    for i, f in enumerate(frames):
        t0 = time.perf_counter()
        hands = est(f, timestamp_s=i / 25.0)
        rec["wall"].append((time.perf_counter() - t0) * 1e3)
        rec["hands"].append(len(hands))
        for k in STAGES:
            rec[k].append(est.last_timings_ms.get(k, 0.0))
    return rec


def agreement(frames, ref_px, step: int, **kw) -> tuple[float, float, int]:
    """Median and p90 2D error (px) vs. the reference, and the number of missed frames."""
    from hand_pose_core.pipeline.estimator import HandPoseEstimator

    est = HandPoseEstimator(fit_mano=False, with_mesh=False, **kw)
    errs, missed = [], 0
    for i in range(0, len(frames), step):
        hands = est(frames[i], timestamp_s=i / 25.0)
        if not hands:
            missed += 1
            continue
        errs.append(np.linalg.norm(hands[0].joints_2d - ref_px[i], axis=1))
    e = np.concatenate(errs) if errs else np.array([np.nan])
    return float(np.median(e)), float(np.percentile(e, 90)), missed


MEDIAPIPE_TIMER = Path(__file__).with_name("benchmark_mediapipe.py")


def mediapipe_runs(frames, warmup: int, max_hands: int, python: str | None = None,
                   video: Path | None = None, step: int = 1):
    """Time MediaPipe's legacy hands solution (and get its 2D joints on the native video).

    In-process when ``python`` is None and mediapipe is importable; else in ``python``.
    Returns None when MediaPipe is unavailable.
    """
    if python is None:
        try:
            import mediapipe  # noqa: F401
        except ImportError:
            return None
        sys.path.insert(0, str(MEDIAPIPE_TIMER.parent))
        from benchmark_mediapipe import time_mediapipe

        return time_mediapipe(frames, warmup, max_hands, str(video) if video else None, step)
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        npy = Path(tmp) / "frames.npy"
        np.save(npy, np.stack(frames))
        proc = subprocess.run(
            [python, str(MEDIAPIPE_TIMER), str(npy), str(warmup), str(max_hands),
             str(video) if video else "", str(step)],
            capture_output=True, text=True)
    marker = [ln for ln in proc.stdout.splitlines() if ln.startswith("MPJSON")]
    if proc.returncode != 0 or not marker:
        print(f"  mediapipe ({python}) failed: {proc.stderr.strip()[-500:]}", file=sys.stderr)
        return None
    return json.loads(marker[-1][len("MPJSON"):])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", type=Path, default=REAL / "asl_hand.25fps.mp4")
    ap.add_argument("--reference", type=Path, default=REAL / "asl_hand.full.json")
    ap.add_argument("--frames", type=int, default=150,
                    help="consecutive frames timed per configuration")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--max-hands", type=int, default=1)
    ap.add_argument("--backends", nargs="+", default=["torch", "onnxruntime"])
    ap.add_argument("--mediapipe-python", default=None,
                    help="python of a separate venv with mediapipe installed (default: this "
                         "interpreter, when it can import mediapipe)")
    ap.add_argument("--refine-passes", type=int, default=1,
                    help="HandPoseEstimator refine_passes (0 = MediaPipe's single pass)")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--accuracy-step", type=int, default=1,
                    help="use every N-th native frame for the 2D agreement (1 = all 325)")
    args = ap.parse_args(argv)

    import torch

    from hand_pose_core.frames import read_video_rgb

    torch.set_num_threads(args.threads)
    if not args.video.is_file():
        print(f"video not found: {args.video} (the shared real footage, ../shared/data/real)",
              file=sys.stderr)
        return 2
    native = read_video_rgb(args.video)
    frames = [letterbox_to(f) for f in native[: args.frames]]
    h0, w0 = native[0].shape[:2]
    print(f"frames: {len(frames)} of {len(native)} ({w0}x{h0} letterboxed to 640x480), "
          f"warm-up {args.warmup}, max_hands={args.max_hands}, "
          f"refine_passes={args.refine_passes}, "
          f"torch threads={torch.get_num_threads()}")

    rows = []
    for backend in args.backends:
        try:
            for tracking in (False, True):
                for mesh in (False, True):
                    rec = time_estimator(frames, args.warmup, max_hands=args.max_hands,
                                         backend=backend, tracking=tracking, fit_mano=mesh,
                                         with_mesh=mesh, refine_passes=args.refine_passes)
                    rows.append((f"ours/{backend}", "tracking" if tracking else "static",
                                 "yes" if mesh else "no", rec))
        except Exception as exc:  # e.g. a backend that this machine lacks
            print(f"  {backend}: skipped ({type(exc).__name__}: {exc})")

    mp_res = mediapipe_runs(frames, args.warmup, args.max_hands, args.mediapipe_python,
                            args.video if args.reference.is_file() else None, args.accuracy_step)
    if mp_res is not None:
        for mode in ("static", "tracking"):
            rows.append((f"mediapipe {mp_res['version']}", mode, "n/a", {"wall": mp_res[mode]}))

    head = f"{'system':<18}{'mode':<10}{'mesh':<6}" + "".join(
        f"{k + ' p50/p90':>20}" for k in ("palm", "landmark", "metric3d", "mano", "total", "wall"))
    print("\nlatency per 640x480 frame, ms (median / p90)")
    print(head)
    print("-" * len(head))
    for system, mode, mesh, rec in rows:
        cells = []
        for k in ("palm", "landmark", "metric3d", "mano", "total", "wall"):
            if k in rec:
                p50, p90 = stats(rec[k])
                cells.append(f"{p50:9.1f} /{p90:7.1f}  ")
            else:
                cells.append(f"{'-':>18}  ")
        print(f"{system:<18}{mode:<10}{mesh:<6}" + "".join(f"{c:>20}" for c in cells))
    print("(palm is 0 on frames where tracking skipped the detector; 'total' is the estimator's "
          "own clock, 'wall' the caller's)")

    if args.reference.is_file():
        ref = np.array(json.loads(args.reference.read_text()), np.float64)[..., :2] - 0.5
        print(f"\n2D agreement with the MediaPipe reference at native {w0}x{h0} "
              f"(every {args.accuracy_step}. frame), px")
        print(f"{'system':<18}{'mode':<10}{'median':>8}{'p90':>8}{'missed':>8}")
        for tracking in (True, False):
            med, p90, missed = agreement(native, ref, args.accuracy_step, max_hands=1,
                                         backend=args.backends[0], tracking=tracking,
                                         refine_passes=args.refine_passes)
            print(f"{'ours/' + args.backends[0]:<18}{'tracking' if tracking else 'static':<10}"
                  f"{med:8.2f}{p90:8.2f}{missed:8d}")
        for mode in ("tracking", "static"):
            if mp_res is None or f"joints_{mode}" not in mp_res:
                continue
            got = mp_res[f"joints_{mode}"]
            idx = list(range(0, len(native), args.accuracy_step))
            errs = [np.linalg.norm(np.asarray(got[str(i)]) - ref[i], axis=1)
                    for i in idx if str(i) in got]
            e = np.concatenate(errs) if errs else np.array([np.nan])
            print(f"{'mediapipe':<18}{mode:<10}{np.median(e):8.2f}{np.percentile(e, 90):8.2f}"
                  f"{len(idx) - len(errs):8d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
