"""Benchmark of :class:`~hand_pose_core.mano.fit.ManoFitter` (prints numbers, asserts nothing).

    hand-pose bench fit [--hands 1 2] [--repeats 50]

Fits synthetic right hands (random pose and shape, 0.5 m from a 600 px camera, with 2D
keypoints) cold, then warm-started from the fit of a slightly different previous frame, and
prints the median wall and CPU time per hand.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from hand_pose_core.mano.fit import ManoFitter
from hand_pose_core.mano.layer import ManoLayer
from hand_pose_core.mano.synthetic import synthetic_mano
from hand_pose_core.pipeline.threads import SingleThreadBlas


def benchmark(n_hands: int = 1, repeats: int = 50, seed: int = 0) -> dict:
    """Median wall and CPU time (ms per hand) of cold and warm fits on synthetic hands."""
    rng = np.random.default_rng(seed)
    model = synthetic_mano("right")
    layer = ManoLayer(model=model, use_pca=False, flat_hand_mean=False, dtype=torch.float64)
    pose = np.concatenate([rng.normal(size=(n_hands, 3)),
                           rng.normal(scale=0.3, size=(n_hands, 45))], 1)
    betas = rng.normal(size=(n_hands, 10))
    trans = np.array([0.02, -0.01, 0.5]) + rng.normal(scale=0.05, size=(n_hands, 3))
    K = np.array([[600.0, 0, 320], [0, 600.0, 240], [0, 0, 1]])

    def render(p):
        _, j = layer(torch.from_numpy(p), torch.from_numpy(betas), torch.from_numpy(trans))  # metres
        j = j.numpy() / 1e3
        h = j @ K.T
        return j, h[..., :2] / h[..., 2:]

    j0, uv0 = render(pose)
    j1, uv1 = render(pose + rng.normal(scale=0.02, size=pose.shape))
    fitter = ManoFitter(model=model)
    sides = ["right"] * n_hands
    prev = [r.params for r in fitter.fit(j0, uv0, K, sides, None)]
    out = {}
    for name, init in (("cold", None), ("warm", prev)):
        wall, cpu = [], []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            with SingleThreadBlas():  # as the estimator runs it
                res = fitter.fit(j1, uv1, K, sides, init)
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        out[name] = dict(wall_ms=1e3 * float(np.median(wall)) / n_hands,
                         cpu_ms=1e3 * float(np.median(cpu)) / n_hands,
                         residual_mm=float(np.mean([r.residual_mm for r in res])),
                         iterations=float(np.mean([r.iterations for r in res])))
    return out


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="hand-pose bench fit", description=__doc__.split("\n")[0])
    ap.add_argument("--hands", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=50)
    args = ap.parse_args(argv)
    if min(args.hands) < 1 or args.repeats < 1:
        ap.error("--hands and --repeats must be >= 1")
    for n in args.hands:
        for kind, r in benchmark(n, args.repeats).items():
            print(f"hands={n} {kind}: {r['wall_ms']:.2f} ms/hand wall, {r['cpu_ms']:.2f} ms/hand "
                  f"CPU, residual {r['residual_mm']:.2f} mm, {r['iterations']:.1f} iterations")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
