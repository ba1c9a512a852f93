#!/usr/bin/env python3
"""Diffusion lift inference time per hand: ResNet condition once + DDIM steps, at 1, 4 and 10
steps, with diffusers' DDIMScheduler and with the direct DDIM update (same numbers), for 1 and
K hypotheses, in one process side by side.

    python scripts/bench_diffusion.py [--model FILE] [--repeats 30] [--threads 1] [--hypotheses 10]

Without --model the default configuration (resnet18, 128 px crop, 512-wide 4-block denoiser)
is benchmarked with random weights (timing does not depend on the weights). Prints one line per
setting: median and 10-90 % range in ms per hand (one hand per call, as in the estimator). The
numbers depend on the machine and its load; see docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="a diffusion_pose model file (default: random weights)")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--hypotheses", type=int, default=10)
    ap.add_argument("--steps", type=int, nargs="*", default=[1, 4, 10])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from hand_pose_core.models import create
    from hand_pose_core.models.checkpoint import load_model

    if args.model:
        model, _ = load_model(args.model)
    else:
        torch.manual_seed(0)
        model = create("diffusion_pose").eval()
    S = model.crop_size_px
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 255, (1, S, S, 3), dtype=np.uint8)
    uv = (rng.random((1, 21, 2)) * S * 0.6 + S * 0.2).astype(np.float32)

    def timed(fn):
        fn()  # warm-up (scheduler construction, allocator)
        ts = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn()
            ts.append((time.perf_counter() - t0) * 1e3)
        ts.sort()
        return statistics.median(ts), ts[len(ts) // 10], ts[(9 * len(ts)) // 10]

    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255
    u = torch.from_numpy(uv)
    with torch.no_grad():
        med, lo, hi = timed(lambda: model.condition(x, u, torch.ones(1, 21)))
    print(f"condition only (ResNet + 2D MLP, crop {S}): {med:.2f} ms [{lo:.2f}-{hi:.2f}]")
    # the library's own cost: one DDIM update on a (K, D) sample, diffusers vs written out
    sch = model.ddim_scheduler(4)
    t = int(sch.timesteps[1])
    xs = torch.randn(args.hypotheses, model.pose_dim)
    out = torch.randn_like(xs)
    a, a_prev = model.alphas_cumprod[t], model.alphas_cumprod[t - model.num_train_timesteps // 4]
    tt = torch.full((args.hypotheses,), t)

    def direct():
        x0 = model.predicted_x0(out, xs, tt)
        eps = (xs - a.sqrt() * x0) / (1 - a).sqrt()
        return a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps

    n = 2000
    for name, fn in (("diffusers DDIMScheduler.step", lambda: sch.step(out, t, xs, eta=0.0).prev_sample),
                     ("direct DDIM update", direct)):
        fn()
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        print(f"{name:30s}: {(time.perf_counter() - t0) / n * 1e6:7.1f} us per step")
    for K in (1, args.hypotheses):
        for steps in args.steps:
            for sampler in ("diffusers", "direct"):
                med, lo, hi = timed(lambda: model.sample(x, u, None, num_hypotheses=K, num_steps=steps,
                                                         seed=0, sampler=sampler))
                print(f"K={K:2d} steps={steps:2d} {sampler:9s}: {med:7.2f} ms per hand [{lo:.2f}-{hi:.2f}]")


if __name__ == "__main__":
    main()
