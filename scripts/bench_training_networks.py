#!/usr/bin/env python3
"""Training speed of the trainable networks: steps/s of one optimisation step (task loss,
backward, Adam) on random batches laid out like the collated training batches.

    python scripts/bench_training_networks.py [--steps 5] [--device cpu] [--only NAME ...]

Prints one line per configuration. The numbers depend on the machine and its load; see
docs/training.md ("Networks") for measured figures.
"""
from __future__ import annotations

import argparse
import time

import torch

CONFIGS = [
    # name, task, model cfg, batch size, crop size
    ("mano_regressor resnet18", "mano_regressor", dict(backbone="resnet18", pretrained=False), 16, 224),
    ("mano_regressor resnet18 synth cfg", "mano_regressor", dict(backbone="resnet18", pretrained=False), 32, 128),
    ("mano_regressor resnet50", "mano_regressor", dict(backbone="resnet50", pretrained=False), 8, 224),
    ("mano_regressor 1/4 width (CPU config)", "mano_regressor", dict(width=0.25, pretrained=False), 32, 96),
    ("mano_regressor tiny (tests)", "mano_regressor", dict(width=0.125, pretrained=False, ncomps=6), 8, 64),
    ("zimmermann_brox paper (crop 256)", "zimmermann_brox", dict(crop_size=256), 4, 256),
    ("zimmermann_brox half width (crop 128)", "zimmermann_brox",
     dict(crop_size=128, seg_width=0.5, pose_width=0.5, prior_width=0.5), 8, 128),
    ("zimmermann_brox tiny (tests)", "zimmermann_brox",
     dict(crop_size=64, seg_width=0.125, pose_width=0.125, prior_width=0.25, stages=2, stage_convs=2), 8, 64),
]


def random_batch(B: int, S: int, device) -> dict:
    g = torch.Generator().manual_seed(0)
    j2d = S * (0.3 + 0.4 * torch.rand(B, 21, 2, generator=g))
    j3d = torch.randn(B, 21, 3, generator=g) * 0.04 + torch.tensor([0.0, 0.0, 0.5])
    f = 1.5 * S
    K = torch.tensor([[f, 0, S / 2], [0, f, S / 2], [0, 0, 1.0]]).expand(B, 3, 3).clone()
    batch = {
        "image": torch.rand(B, 3, S, S, generator=g), "K": K, "joints_cam_m": j3d,
        "has_3d": torch.ones(B, dtype=torch.bool), "joints_2d": j2d,
        "visible": torch.ones(B, 21, dtype=torch.bool), "joints_conf": torch.ones(B, 21),
        "side": torch.arange(B) % 2, "mask": (torch.rand(B, S, S, generator=g) > 0.8).float(),
        "has_mask": torch.ones(B, dtype=torch.bool),
        "verts_cam_m": torch.randn(B, 778, 3, generator=g) * 0.04 + torch.tensor([0.0, 0.0, 0.5]),
        "has_verts": torch.ones(B, dtype=torch.bool),
    }
    return {k: v.to(device) for k, v in batch.items()}


def bench(label, task_name, cfg, B, S, steps, device) -> None:
    from training.tasks import build_task

    task = build_task(task_name, {"model": cfg})
    model = task.build_model().to(device).train()
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    batch = random_batch(B, S, device)

    def step():
        loss, _ = task.loss(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up (allocations, lazy init)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / steps
    print(f"{label:40s} params {n_params / 1e6:6.2f} M  batch {B:3d} x {S}px  "
          f"{1.0 / dt:7.3f} steps/s  {B / dt:8.2f} samples/s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--only", nargs="*", help="substrings of the configuration labels to run")
    args = ap.parse_args()
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}")
    for label, task, cfg, B, S in CONFIGS:
        if args.only and not any(o in label for o in args.only):
            continue
        bench(label, task, cfg, B, S, args.steps, device)


if __name__ == "__main__":
    main()
