#!/usr/bin/env python3
"""Look at what a dataset reader and the augmentations hand to training: a picture grid of crops
with their labels drawn on them.

    python scripts/show_dataset.py freihand /data/FreiHAND_pub_v2 --split train --out fh.png
    python scripts/show_dataset.py rhd /data/RHD_published_v2 --option hands=dominant --train
    python scripts/show_dataset.py synthetic - --augmentations --out docs/augment_samples.png

Drawn per tile: the mask outline (white), the skeleton from ``joints_2d`` (one colour per
finger), visible joints as dots, hidden joints as red rings, and the projection of
``joints_cam_m`` through the crop's ``K`` as small black crosses: after any augmentation they
must sit in the dots. ``--augmentations``: one row per sample, one column per augmentation alone
(crop, scale, translation, rotation, flip, colour, blur, noise, background, clutter, all).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hand_pose_core.skeleton import BONES  # noqa: E402

FINGER_BGR = [(255, 255, 255), (0, 200, 255), (0, 255, 0), (255, 128, 0), (255, 0, 255), (0, 255, 255)]

COLUMNS = {
    "crop": {},
    "scale": {"scale_jitter": 0.4},
    "translation": {"trans_jitter": 0.2},
    "rotation": {"rot_deg": 180.0},
    "flip": {"flip_prob": 1.0},
    "colour": {"color_prob": 1.0},
    "blur": {"blur_prob": 1.0, "motion_blur_prob": 1.0},
    "noise": {"noise_prob": 1.0, "noise_std_max": 0.08},
    "background": {"bg_prob": 1.0},
    "clutter": {"clutter_prob": 1.0},
}


def draw(sample: dict, label: str = "") -> np.ndarray:
    img = np.ascontiguousarray(sample["image"][..., ::-1])
    if sample.get("mask") is not None:
        contours, _ = cv2.findContours(np.ascontiguousarray(sample["mask"]).astype(np.uint8),
                                       cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(img, contours, -1, (255, 255, 255), 1)

    def pt(uv):
        return tuple(int(round(c)) for c in uv)

    uv = np.asarray(sample["joints_2d"], np.float64)
    vis = np.asarray(sample["visible"], bool)
    for a, b in BONES:
        if vis[a] and vis[b]:
            cv2.line(img, pt(uv[a]), pt(uv[b]), FINGER_BGR[1 + (b - 1) // 4], 1, cv2.LINE_AA)
    for j, p in enumerate(uv):
        if vis[j]:
            cv2.circle(img, pt(p), 3, FINGER_BGR[0 if j == 0 else 1 + (j - 1) // 4], -1, cv2.LINE_AA)
        else:
            cv2.circle(img, pt(p), 4, (0, 0, 255), 1, cv2.LINE_AA)
    j3 = np.asarray(sample["joints_cam_m"], np.float64)
    ok = np.all(np.isfinite(j3), 1)
    proj = j3[ok] @ np.asarray(sample["K"], np.float64).T
    for p in proj[:, :2] / proj[:, 2:]:
        cv2.drawMarker(img, pt(p), (0, 0, 0), cv2.MARKER_CROSS, 5, 1)
    text = label or f"{sample['side']} {sample['id'][-18:]}"
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.35, 1)
    cv2.rectangle(img, (0, 0), (tw + 6, th + 6), (0, 0, 0), -1)
    cv2.putText(img, text, (3, th + 3), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("name", help="dataset name (freihand, rhd, ho3d, synthetic, footage)")
    ap.add_argument("root", help="dataset folder ('-' = none, e.g. synthetic rendered on the fly)")
    ap.add_argument("--split", default="train")
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="reader option (value read as YAML), repeatable")
    ap.add_argument("--augment", default="{}", help="augmentation options as a YAML mapping")
    ap.add_argument("--train", action="store_true", help="apply the training augmentations")
    ap.add_argument("--augmentations", action="store_true", help="one column per augmentation")
    ap.add_argument("--n", type=int, default=8, help="samples (rows with --augmentations)")
    ap.add_argument("--cols", type=int, default=4)
    ap.add_argument("--crop", type=int, default=160)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("dataset_samples.png"))
    args = ap.parse_args(argv)

    from training.augment import NO_RANDOM, build_transform, sample_rng
    from training.datasets import build_dataset

    options = {}
    for item in args.option:
        key, _, value = item.partition("=")
        options[key] = yaml.safe_load(value)
    if args.name == "synthetic" and args.root == "-":
        options.setdefault("length", max(args.n, 8))
    ds = build_dataset(args.name, None if args.root == "-" else args.root, args.split, **options)
    cfg = {"crop_size": args.crop, **(yaml.safe_load(args.augment) or {})}
    picks = np.random.default_rng(args.seed).choice(len(ds), size=min(args.n, len(ds)), replace=False)
    if args.augmentations:
        rows = []
        for r, i in enumerate(picks):
            s = ds[int(i)]
            tiles = []
            for name, extra in COLUMNS.items():
                tf = build_transform({**cfg, **NO_RANDOM, **extra}, train=True)
                tiles.append(draw(tf(s, sample_rng(args.seed, r, len(tiles))), name))
            tf = build_transform({**cfg, "flip_prob": 0.5, "bg_prob": 0.5, "clutter_prob": 0.5,
                                  "rot_deg": 180.0}, train=True)
            tiles.append(draw(tf(s, sample_rng(args.seed, r, 99)), "all"))
            rows.append(np.concatenate(tiles, 1))
        grid = np.concatenate(rows, 0)
    else:
        tf = build_transform(cfg, train=args.train)
        tiles = [draw(tf(ds[int(i)], sample_rng(args.seed, 0, int(i)))) for i in picks]
        while len(tiles) % args.cols:
            tiles.append(np.zeros_like(tiles[0]))
        grid = np.concatenate([np.concatenate(tiles[k:k + args.cols], 1)
                               for k in range(0, len(tiles), args.cols)], 0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), grid)
    print(f"wrote {args.out} ({grid.shape[1]}x{grid.shape[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
