#!/usr/bin/env python3
"""Held-out accuracy and uncertainty calibration of a diffusion_pose model file, next to other
model files evaluated on the same samples.

    python scripts/eval_diffusion_uncertainty.py --run runs/diffusion_synthetic \\
        [--compare runs/mano_regressor_synthetic] [--steps 1 4 10] [--hypotheses 10]

``--run`` / ``--compare`` are training run folders (their config.yaml gives the dataset and the
held-out split, their model.safetensors the model). Prints, per DDIM step count: PA-MPJPE and
root-relative MPJPE of the mean of K hypotheses (mm), the mean spread (mm), and the calibration
of the spread: Pearson and Spearman correlation between a joint's spread and its root-relative
error over all held-out joints, and the error of the 20 % least / most uncertain joints. For
``--compare`` runs: their PA-MPJPE and root-relative MPJPE on the same samples.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch


def _rank(x: np.ndarray) -> np.ndarray:
    r = np.empty(len(x))
    r[np.argsort(x)] = np.arange(len(x))
    return r


def _load(run: Path, max_samples: int | None):
    import yaml

    from hand_pose_core.models.checkpoint import load_model
    from training.config import from_dict
    from training.loader import eval_loader, make_dataset
    from training.tasks import build_task

    cfg = from_dict(yaml.safe_load((run / "config.yaml").read_text()), ["data.workers=0"])
    task = build_task(cfg["task"]["name"], {k: v for k, v in cfg["task"].items() if k != "name"})
    model, _ = load_model(run / "model.safetensors")
    ds = make_dataset(cfg["data"], cfg["data"]["val_split"], train=False)
    loader = eval_loader(cfg["data"], ds, cfg["seed"], 0, 1, max_samples=max_samples)
    return task, model, loader


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--compare", type=Path, nargs="*", default=[])
    ap.add_argument("--steps", type=int, nargs="*", default=[1, 4, 10])
    ap.add_argument("--hypotheses", type=int, default=10)
    ap.add_argument("--max-samples", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from training.metrics import pa_mpjpe, rr_mpjpe

    task, model, loader = _load(args.run, args.max_samples)
    batches = list(loader)
    n = sum(len(b["id"]) for b in batches)
    print(f"{args.run}: {n} held-out samples")
    task.eval_hypotheses = args.hypotheses
    for steps in args.steps:
        task.eval_steps = steps
        pa, rr, spread, err = [], [], [], []
        for b in batches:
            p = task.predict(model, b)
            gt = b["joints_cam_m"]
            pa.append(pa_mpjpe(p["joints_cam_m"], gt))
            rr.append(rr_mpjpe(p["joints_cam_m"], gt))
            e = ((p["joints_cam_m"] - p["joints_cam_m"][:, :1]) - (gt - gt[:, :1])).norm(dim=-1)
            err.append(e[:, 1:].flatten())  # the wrist is the origin: no error, no spread
            spread.append(p["joints_std_m"][:, 1:].flatten())
        e = torch.cat(err).numpy()
        s = torch.cat(spread).numpy()
        pear = float(np.corrcoef(s, e)[0, 1])
        spear = float(np.corrcoef(_rank(s), _rank(e))[0, 1])
        lo, hi = np.quantile(s, [0.2, 0.8])
        print(f"diffusion steps={steps:2d} K={args.hypotheses}: PA-MPJPE {1e3 * float(torch.cat(pa).mean()):.1f} mm, "
              f"RR-MPJPE {1e3 * float(torch.cat(rr).mean()):.1f} mm, mean spread {1e3 * s.mean():.1f} mm, "
              f"corr(spread, error) Pearson {pear:.2f} Spearman {spear:.2f}, error of the 20 % least/most "
              f"uncertain joints {1e3 * e[s <= lo].mean():.1f} / {1e3 * e[s >= hi].mean():.1f} mm")
    for run in args.compare:
        ctask, cmodel, cloader = _load(run, args.max_samples)
        pa, rr = [], []
        for b in cloader:
            p = ctask.predict(cmodel, b)
            pa.append(pa_mpjpe(p["joints_cam_m"], b["joints_cam_m"]))
            rr.append(rr_mpjpe(p["joints_cam_m"], b["joints_cam_m"]))
        print(f"{run}: PA-MPJPE {1e3 * float(torch.cat(pa).mean()):.1f} mm, "
              f"RR-MPJPE {1e3 * float(torch.cat(rr).mean()):.1f} mm")


if __name__ == "__main__":
    main()
