#!/usr/bin/env python3
"""Data-loader throughput: FreiHAND-layout JPEGs -> reader -> crop + training augmentations ->
collate, through a torch DataLoader with N workers. Prints images/s.

    python scripts/benchmark_dataloader.py                      # writes a fixture tree in a temp dir
    python scripts/benchmark_dataloader.py --root /data/FreiHAND_pub_v2 --samples 2000

Without ``--root`` it writes ``--unique`` samples in the FreiHAND v2 layout (224 x 224 JPEGs of
textured scenes with a hand-like blob, 4 versions each, masks, JSON labels of a synthetic MANO
hand), so the numbers include real JPEG decoding from files.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np


def write_fixture(root: Path, unique: int, seed: int = 0) -> None:
    import torch

    from hand_pose_core.mano.layer import ManoLayer
    from hand_pose_core.mano.synthetic import synthetic_mano

    rng = np.random.default_rng(seed)
    layer = ManoLayer(model=synthetic_mano("right"), use_pca=False, flat_hand_mean=False, dtype=torch.float64)
    pose = rng.normal(0, 0.3, (unique, 48))
    beta = rng.normal(0, 1, (unique, 10))
    with torch.no_grad():
        _, joints = layer(torch.as_tensor(pose), torch.as_tensor(beta))
    joints = joints.numpy() / 1000.0
    trans = np.stack([rng.uniform(-0.03, 0.03, unique), rng.uniform(-0.03, 0.03, unique),
                      rng.uniform(0.45, 0.7, unique)], 1) - joints[:, 0]
    joints = joints + trans[:, None]
    K = np.array([[480.0, 0, 111.5], [0, 480.0, 111.5], [0, 0, 1]])
    (root / "training" / "rgb").mkdir(parents=True)
    (root / "training" / "mask").mkdir(parents=True)
    manos, Ks = [], []
    for i in range(unique):
        uv = joints[i] @ K.T
        uv = uv[:, :2] / uv[:, 2:]
        mask = np.zeros((224, 224), np.uint8)
        for a, b in ((0, 5), (0, 9), (0, 13), (0, 17), (0, 1)) + tuple((j, j + 1) for j in range(1, 20) if j % 4):
            cv2.line(mask, tuple(int(x) for x in uv[a]), tuple(int(x) for x in uv[b]), 255, 9)
        cv2.imwrite(str(root / "training" / "mask" / f"{i:08d}.jpg"), mask)
        for k in range(4):
            low = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
            img = cv2.resize(low, (224, 224), interpolation=cv2.INTER_CUBIC)
            img = cv2.add(img, rng.integers(0, 20, (224, 224, 3), dtype=np.uint8))  # some texture
            img[mask > 0] = (150 + 20 * k, 110, 90)
            cv2.imwrite(str(root / "training" / "rgb" / f"{i + k * unique:08d}.jpg"), img,
                        [cv2.IMWRITE_JPEG_QUALITY, 90])
        manos.append([list(pose[i]) + list(beta[i]) + [112.0, 112.0, 1000.0]])
        Ks.append(K.tolist())
    (root / "training_K.json").write_text(json.dumps(Ks))
    (root / "training_xyz.json").write_text(json.dumps(joints.tolist()))
    (root / "training_mano.json").write_text(json.dumps(manos))
    (root / "training_scale.json").write_text(json.dumps([0.03] * unique))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", help="a FreiHAND v2 folder (default: write a fixture tree)")
    ap.add_argument("--unique", type=int, default=100, help="unique fixture samples (x4 versions = JPEGs)")
    ap.add_argument("--samples", type=int, default=800, help="images to load per timed pass")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--crop", type=int, default=224)
    ap.add_argument("--no-augment", action="store_true", help="crop only")
    args = ap.parse_args(argv)

    import torch
    from torch.utils.data import DataLoader, Subset

    from training.augment import AugmentedDataset, build_transform, worker_init
    from training.datasets import build_dataset
    from training.datasets.collate import collate_samples

    tmp = None
    root = args.root
    if root is None:
        tmp = tempfile.TemporaryDirectory(prefix="fh_bench_")
        root = tmp.name
        t0 = time.perf_counter()
        write_fixture(Path(root), args.unique)
        print(f"fixture: {args.unique * 4} JPEGs 224x224 in {root} ({time.perf_counter() - t0:.1f} s)")
    base = build_dataset("freihand", root, "train")
    cfg = {"crop_size": args.crop, "bg_prob": 0.3, "clutter_prob": 0.3, "rot_deg": 30.0}
    tf = build_transform(cfg, train=not args.no_augment)
    ds = AugmentedDataset(base, tf, seed=0)
    n = min(args.samples, len(ds))
    idx = np.random.default_rng(0).permutation(len(ds))
    idx = np.resize(idx, n)
    torch.set_num_threads(1)
    loader = DataLoader(Subset(ds, idx.tolist()), batch_size=args.batch, shuffle=False,
                        num_workers=args.workers, collate_fn=collate_samples, worker_init_fn=worker_init,
                        persistent_workers=args.workers > 0, prefetch_factor=4 if args.workers else None)
    # CPU cost per image in this process (load-independent): what one worker spends per image
    worker_init()
    sub = Subset(ds, idx[: min(200, n)].tolist())
    collate_samples([sub[i] for i in range(min(32, len(sub)))])  # warm-up: noise bank, caches
    t0 = time.process_time()
    collate_samples([sub[i] for i in range(len(sub))])
    cpu_ms = (time.process_time() - t0) / len(sub) * 1000
    print(f"CPU per image (read + augment + collate, one process): {cpu_ms:.2f} ms "
          f"-> {args.workers} idle cores could load {args.workers * 1000 / cpu_ms:.0f} images/s")
    rates = []
    for rep in range(3):  # pass 0 warms up workers and the page cache
        t0 = time.perf_counter()
        count = 0
        for batch in loader:
            count += batch["image"].shape[0]
        dt = time.perf_counter() - t0
        if rep > 0:
            rates.append(count / dt)
        print(f"pass {rep}: {count} images in {dt:.2f} s = {count / dt:.0f} images/s")
    print(f"data loader: {np.median(rates):.0f} images/s ({args.workers} workers, batch {args.batch}, "
          f"{args.crop}x{args.crop}, {'crop only' if args.no_augment else 'augmented'}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f})")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
