#!/usr/bin/env python3
"""Picture grid of synthetic samples with their labels drawn on them (docs/synthetic_samples.png).

    python scripts/synthetic_grid.py [--out docs/synthetic_samples.png] [--seed 0] [--rows 3 --cols 4]
    python scripts/synthetic_grid.py --dataset DIR     # a dataset written by `hand-pose synth`

Drawn per sample: the mask outline (white), the skeleton from ``joints_2d`` (one colour per
finger), visible joints as filled dots, hidden joints (occluded or outside) as red rings, and
the projection of ``joints_cam_m`` through ``K`` as small black crosses (they must sit in the
dots), plus side and hand-centre depth.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hand_pose_core.skeleton import BONES  # noqa: E402

FINGER_BGR = [(255, 255, 255), (0, 200, 255), (0, 255, 0), (255, 128, 0), (255, 0, 255), (0, 255, 255)]


def draw(sample: dict, scale: int = 2) -> np.ndarray:
    img = cv2.resize(sample["image"][..., ::-1], None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(cv2.resize(sample["mask"], None, fx=scale, fy=scale,
                                              interpolation=cv2.INTER_NEAREST),
                                   cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(img, contours, -1, (255, 255, 255), 1)

    def pt(uv):
        return tuple(int(round((c + 0.5) * scale - 0.5)) for c in uv)

    uv = sample["joints_2d"]
    for a, b in BONES:
        finger = 1 + (b - 1) // 4
        cv2.line(img, pt(uv[a]), pt(uv[b]), FINGER_BGR[finger], 2, cv2.LINE_AA)
    for j, p in enumerate(uv):
        if sample["visible"][j]:
            cv2.circle(img, pt(p), 4, FINGER_BGR[0 if j == 0 else 1 + (j - 1) // 4], -1, cv2.LINE_AA)
        else:
            cv2.circle(img, pt(p), 5, (0, 0, 255), 2, cv2.LINE_AA)
    proj = sample["joints_cam_m"] @ np.asarray(sample["K"]).T
    for p in proj[:, :2] / proj[:, 2:]:
        cv2.drawMarker(img, pt(p), (0, 0, 0), cv2.MARKER_CROSS, 5, 1)
    text = f"{sample['side']} z={sample['joints_cam_m'][9, 2]:.2f} m vis {int(sample['visible'].sum())}/21"
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
    cv2.rectangle(img, (0, 0), (tw + 8, th + 10), (0, 0, 0), -1)
    cv2.putText(img, text, (4, th + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("docs/synthetic_samples.png"))
    ap.add_argument("--dataset", type=Path, default=None, help="read from a written dataset instead")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rows", type=int, default=2)
    ap.add_argument("--cols", type=int, default=4)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--scale", type=int, default=1, help="upscale each tile (nearest) for readability")
    args = ap.parse_args()
    from training.datasets import build_dataset

    n = args.rows * args.cols
    if args.dataset is not None:
        ds = build_dataset("synthetic", args.dataset, "all")
    else:
        ds = build_dataset("synthetic", None, "all", length=n, seed=args.seed, image_size=args.size)
    tiles = [draw(ds[i], args.scale) for i in range(n)]
    rows = [np.concatenate(tiles[r * args.cols:(r + 1) * args.cols], axis=1) for r in range(args.rows)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), np.concatenate(rows, axis=0))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
