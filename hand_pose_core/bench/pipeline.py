"""End-to-end estimator timing per stage, side by side with MediaPipe's solution, and the 2D
agreement with the reference landmarks of the shared video.

Configurations: single images (tracking off: palm detector + landmarks on every frame) on
640x480 and 256x256 frames, and video tracking on 640x480 frames; each with the MANO mesh
(the default) and without. Each repeat times every configuration over the same consecutive
frames, in a shuffled order, MediaPipe's included (its process stays up between requests), so
all systems see the same load; the reported p50 is the median over repeats of each repeat's
median, the p99 is over all frames of all repeats.
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


def _time_ours(cfg: PipeConfig, frames: list[np.ndarray], warmup: int) -> dict[str, list[float]]:
    from hand_pose_core.pipeline.estimator import HandPoseEstimator

    if cfg.estimator is None:
        cfg.estimator = HandPoseEstimator(**cfg.kwargs)
    est = cfg.estimator
    for i, f in enumerate(frames[:warmup]):
        est(f, timestamp_s=i / 25.0)
    est.reset()
    rec: dict[str, list[float]] = {k: [] for k in (*STAGES, "wall")}
    for i, f in enumerate(frames):
        t0 = time.perf_counter()
        est(f, timestamp_s=i / 25.0)
        rec["wall"].append((time.perf_counter() - t0) * 1e3)
        for k in STAGES:
            rec[k].append(est.last_timings_ms.get(k, 0.0))
    return rec


def run(configs: list[PipeConfig], frame_sets: dict, repeats: int, warmup: int = 5,
        mediapipe=None, seed: int = 0) -> list[PipeConfig]:
    """Time every configuration ``repeats`` times (shuffled order per repeat). With a
    :class:`~.mediapipe_client.MediaPipeSolution`, its static and tracking modes join the
    rotation. Returns the configurations (MediaPipe's appended)."""
    configs = list(configs)
    if mediapipe is not None:
        for key in frame_sets:
            for tracking in ((False, True) if key == "640x480" else (False,)):
                configs.append(PipeConfig(f"MediaPipe {mediapipe.version}", key, tracking, None))
    rng = np.random.default_rng(seed)
    for _ in range(repeats):
        for i in rng.permutation(len(configs)):
            cfg = configs[i]
            frames = frame_sets[cfg.frames_key]
            if cfg.mesh is None:
                cfg.rounds.append({"wall": mediapipe.time(frames, static=not cfg.tracking, warmup=warmup)})
            else:
                cfg.rounds.append(_time_ours(cfg, frames, warmup))
    return configs


def p50(cfg: PipeConfig, key: str) -> float:
    return median_of_medians([r[key] for r in cfg.rounds if key in r])


def table(configs: list[PipeConfig]) -> list[str]:
    """Markdown rows: per-stage p50 (ms), end-to-end wall p50/p99 and the ratio to MediaPipe
    in the same input and mode."""
    mp = {(c.frames_key, c.tracking): p50(c, "wall") for c in configs if c.mesh is None}
    rows = ["| system | input | mode | mesh | palm | landmark | metric 3D | MANO fit | wall p50 | wall p99 | vs MediaPipe |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in configs:
        wall = p50(c, "wall")
        p99 = summarize([v for r in c.rounds for v in r["wall"]])["p99"]
        ref = mp.get((c.frames_key, c.tracking))
        ratio = f"{wall / ref:.2f}x" if ref and c.mesh is not None else ""
        stages = ([f"{p50(c, k):.1f}" for k in ("palm", "landmark", "metric3d", "mano")]
                  if c.mesh is not None else ["", "", "", ""])
        mesh = "-" if c.mesh is None else ("yes" if c.mesh else "no")
        rows.append(f"| {c.system} | {c.frames_key} | {c.mode} | {mesh} | " + " | ".join(stages)
                    + f" | **{wall:.1f}** | {p99:.1f} | {ratio} |")
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
