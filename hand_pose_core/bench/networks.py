"""Network latency and throughput per backend, precision and batch size, on real inputs.

Every configuration is built first (unavailable ones are reported with the reason), then the
configurations are run round-robin, in a shuffled order each round, so that load from other
processes spreads evenly over them. Per configuration: p50 and p99 latency of one call and the
throughput (items per second at the p50 latency).

Backend 'litert' runs the original MediaPipe ``.tflite`` networks in TFLite's XNNPACK runtime,
the runtime MediaPipe itself uses: the reference for the networks' speed.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .stats import summarize

NETWORKS = ("palm", "landmark")


@dataclass
class NetConfig:
    network: str
    backend: str
    precision: str
    batch: int
    device: str
    run: Callable[[], object] | None = None
    skipped: str = ""
    times_ms: list[float] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.network}/{self.backend}/{self.device}/{self.precision}/b{self.batch}"


def _tile(x: np.ndarray, batch: int) -> np.ndarray:
    reps = -(-batch // len(x))
    return np.ascontiguousarray(np.concatenate([x] * reps)[:batch])


def build_configs(backends, precisions, batches, device: str, inputs: dict[str, np.ndarray],
                  threads: int = 2) -> list[NetConfig]:
    """One NetConfig per (network, backend, precision, batch); ``skipped`` says why one cannot run."""
    from hand_pose_core.backends import create_runner

    configs: list[NetConfig] = []
    for network in NETWORKS:
        for backend in backends:
            for precision in precisions:
                try:
                    options = {"threads": threads} if backend in ("onnxruntime", "litert") else {}
                    if backend == "tensorrt":
                        options = {"max_batch": max(batches)}
                    runner = create_runner(network, backend=backend, device=device, precision=precision, **options)
                    err = ""
                except Exception as exc:  # unavailable backend/precision on this machine
                    runner, err = None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
                for batch in batches:
                    cfg = NetConfig(network, backend, precision, batch, device, skipped=err)
                    if runner is not None:
                        x = _tile(inputs[network], batch)
                        cfg.run = (lambda r=runner, x=x: r(x))
                    configs.append(cfg)
    return configs


def run_configs(configs: list[NetConfig], runs: int, warmup: int = 3, seed: int = 0) -> None:
    """Round-robin timing (shuffled order per round); fills ``times_ms``.

    torch CPU configurations are timed in a phase of their own: after each call its OpenMP
    threads keep spinning for a while, which would slow whichever runtime runs next."""
    active = [c for c in configs if c.run is not None]
    groups = [[c for c in active if not (c.backend == "torch" and c.device == "cpu")],
              [c for c in active if c.backend == "torch" and c.device == "cpu"]]
    rng = np.random.default_rng(seed)
    for group in groups:
        for c in group:
            for _ in range(warmup):
                c.run()
        for _ in range(runs):
            for i in rng.permutation(len(group)):
                c = group[i]
                t0 = time.perf_counter()
                c.run()
                c.times_ms.append((time.perf_counter() - t0) * 1e3)


def table(configs: list[NetConfig]) -> list[str]:
    """Markdown table rows (header included)."""
    rows = ["| network | backend | device | precision | batch | p50 ms | p99 ms | items/s |",
            "|---|---|---|---|---|---|---|---|"]
    for c in configs:
        if c.run is None:
            rows.append(f"| {c.network} | {c.backend} | {c.device} | {c.precision} | {c.batch} | "
                        f"unavailable: {c.skipped} | | |")
            continue
        s = summarize(c.times_ms)
        rows.append(f"| {c.network} | {c.backend} | {c.device} | {c.precision} | {c.batch} | "
                    f"{s['p50']:.2f} | {s['p99']:.2f} | {c.batch * 1e3 / s['p50']:.0f} |")
    return rows
