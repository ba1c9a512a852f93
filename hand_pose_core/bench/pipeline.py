"""End-to-end estimator timing per stage, side by side with MediaPipe's solution, and the 2D
agreement with the reference landmarks of the shared video.

Configurations: single images (tracking off: palm detector + landmarks on every frame) on
640x480 and 256x256 frames, and video tracking on 640x480 frames; each with the MANO mesh
(the default) and without. Interleaved frame by frame: for every frame index, every
configuration (MediaPipe's included: its process keeps one ``Hands`` per mode and times each
call alone) processes that frame, in a shuffled order, so load from other processes falls on
all systems alike; each configuration keeps its own tracking state. A repeat starts every
configuration fresh (new tracks, a new MediaPipe ``Hands``) after ``warmup`` untimed frames.
The reported p50 is the median over repeats of each repeat's median; p99 over all frames.
Besides wall time, the process CPU time of each call (all threads; MediaPipe's measured in its
own process) is reported: on a machine shared with other work it shows the work done rather
than the time spent waiting for a core.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .stats import median_of_medians, summarize

STAGES = ("palm", "landmark", "metric3d", "mano", "total")


@dataclass
class PipeConfig:
    system: str
    frames_key: str
    tracking: bool
    mesh: bool | None  # None: MediaPipe (no mesh)
    kwargs: dict = field(default_factory=dict)
    estimator: object = None
    rounds: list[dict[str, list[float]]] = field(default_factory=list)

    @property
    def mode(self) -> str:
        return "tracking" if self.tracking else "single image"


def build(backends, device: str, precision: str, frame_sets: dict, mesh_options=(True, False),
          estimator_kwargs: dict | None = None) -> list[PipeConfig]:
    configs = []
    for backend in backends:
        for key in frame_sets:
            for tracking in ((False, True) if key == "640x480" else (False,)):
                for mesh in mesh_options:
                    configs.append(PipeConfig(f"ours/{backend}", key, tracking, mesh, dict(
                        backend=backend, device=device, precision=precision, tracking=tracking,
                        fit_mano=mesh, with_mesh=mesh, max_hands=1, **(estimator_kwargs or {}))))
    return configs


def _step_ours(cfg: PipeConfig, frame: np.ndarray, index: int, rec: dict | None) -> None:
    est = cfg.estimator
    c0, t0 = time.process_time(), time.perf_counter()
    est(frame, timestamp_s=index / 25.0)
    wall = (time.perf_counter() - t0) * 1e3
    cpu = (time.process_time() - c0) * 1e3
    if rec is not None:
        rec["wall"].append(wall)
        rec["cpu"].append(cpu)
        for k in STAGES:
            rec[k].append(est.last_timings_ms.get(k, 0.0))


def run(configs: list[PipeConfig], frame_sets: dict, repeats: int, warmup: int = 5,
        mediapipe=None, seed: int = 0) -> list[PipeConfig]:
    """Time every configuration ``repeats`` times, interleaved frame by frame (shuffled order
    per frame). With a :class:`~.mediapipe_client.MediaPipeSolution`, its static and tracking
    modes join. Returns the configurations (MediaPipe's appended)."""
    from hand_pose_core.pipeline.estimator import HandPoseEstimator

    configs = list(configs)
    if mediapipe is not None:
        for key in frame_sets:
            mediapipe.load(key, frame_sets[key])
            for tracking in ((False, True) if key == "640x480" else (False,)):
                configs.append(PipeConfig(f"MediaPipe {mediapipe.version}", key, tracking, None))
    for cfg in configs:
        if cfg.mesh is not None and cfg.estimator is None:
            cfg.estimator = HandPoseEstimator(**cfg.kwargs)
    rng = np.random.default_rng(seed)
    n = min(len(v) for v in frame_sets.values())
    for _ in range(repeats):
        handles = {}
        recs = []
        for cfg in configs:
            if cfg.mesh is None:
                handles[id(cfg)] = mediapipe.open(static=not cfg.tracking)
            else:
                cfg.estimator.reset()
            rec = {k: [] for k in (*STAGES, "wall", "cpu")}
            cfg.rounds.append(rec)
            recs.append(rec)
        for index in range(-warmup, n):
            i = index % n  # warm-up on the last frames, then time from the first
            for j in rng.permutation(len(configs)):
                cfg, rec = configs[j], (recs[j] if index >= 0 else None)
                # tracking continues from the warm-up frames for both systems (MediaPipe's
                # Hands cannot be reset): the jump to frame 0 makes both re-detect
                if cfg.mesh is None:
                    ms, cpu = mediapipe.step(handles[id(cfg)], cfg.frames_key, i)
                    if rec is not None:
                        rec["wall"].append(ms)
                        rec["cpu"].append(cpu)
                else:
                    _step_ours(cfg, frame_sets[cfg.frames_key][i], i, rec)
    return configs


def p50(cfg: PipeConfig, key: str) -> float:
    return median_of_medians([r[key] for r in cfg.rounds if key in r])


def table(configs: list[PipeConfig]) -> list[str]:
    """Markdown rows: per-stage p50 (ms), end-to-end wall p50/p99, CPU p50 and the ratios to
    MediaPipe in the same input and mode."""
    mp = {(c.frames_key, c.tracking): (p50(c, "wall"), p50(c, "cpu")) for c in configs if c.mesh is None}
    rows = ["| system | input | mode | mesh | palm | landmark | metric 3D | MANO fit | wall p50 | wall p99 | "
            "vs MediaPipe (wall) | CPU p50 | vs MediaPipe (CPU) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in configs:
        wall, cpu = p50(c, "wall"), p50(c, "cpu")
        p99 = summarize([v for r in c.rounds for v in r["wall"]])["p99"]
        ref = mp.get((c.frames_key, c.tracking))
        ratio = f"{wall / ref[0]:.2f}x" if ref and c.mesh is not None else ""
        ratio_cpu = f"{cpu / ref[1]:.2f}x" if ref and c.mesh is not None and ref[1] > 0 else ""
        stages = ([f"{p50(c, k):.1f}" for k in ("palm", "landmark", "metric3d", "mano")]
                  if c.mesh is not None else ["", "", "", ""])
        mesh = "-" if c.mesh is None else ("yes" if c.mesh else "no")
        rows.append(f"| {c.system} | {c.frames_key} | {c.mode} | {mesh} | " + " | ".join(stages)
                    + f" | **{wall:.1f}** | {p99:.1f} | {ratio} | {cpu:.1f} | {ratio_cpu} |")
    return rows


def agreement(native, ref, tracking: bool, step: int = 1, **kwargs) -> tuple[float, float, int]:
    """Median and p90 2D error (px) of our first hand vs the reference, and missed frames."""
    from hand_pose_core.pipeline.estimator import HandPoseEstimator

    est = HandPoseEstimator(fit_mano=False, with_mesh=False, max_hands=1, tracking=tracking, **kwargs)
    errs, missed = [], 0
    for i in range(0, len(native), step):
        hands = est(native[i], timestamp_s=i / 25.0)
        if not hands:
            missed += 1
            continue
        errs.append(np.linalg.norm(hands[0].joints_2d - ref[i], axis=1))
    e = np.concatenate(errs) if errs else np.array([np.nan])
    return float(np.median(e)), float(np.percentile(e, 90)), missed


def mediapipe_agreement(got: dict, ref, n: int, step: int = 1) -> tuple[float, float, int]:
    idx = list(range(0, n, step))
    errs = [np.linalg.norm(np.asarray(got[str(i)]) - ref[i], axis=1) for i in idx if str(i) in got]
    e = np.concatenate(errs) if errs else np.array([np.nan])
    return float(np.median(e)), float(np.percentile(e, 90)), len(idx) - len(errs)
