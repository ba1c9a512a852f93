#!/usr/bin/env python3
"""Per-frame cost of a trained model in the estimator: HandPoseEstimator with the default
MediaPipe 3D and with a lifter (model file), side by side on the same frames of a video.

    python scripts/bench_lifters.py VIDEO [--frames 60] [--checkpoint FILE --model NAME]

Without ``--checkpoint`` a randomly initialised ``mano_regressor`` (ResNet-18, 128 px crops, the
synthetic config's crop size) is written to a temporary model file: speed does not depend on the
weights. Prints the median stage times (ms) of each configuration.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np


def frames(video: str, n: int):
    import cv2

    cap = cv2.VideoCapture(video)
    out = []
    while len(out) < n:
        ok, bgr = cap.read()
        if not ok:
            break
        out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    if not out:
        raise SystemExit(f"no frames read from {video}")
    return out


def run(label: str, imgs, **kw) -> None:
    from hand_pose_core.pipeline.estimator import HandPoseEstimator

    est = HandPoseEstimator(max_hands=1, tracking=True, **kw)
    est(imgs[0])  # warm-up
    stages: dict[str, list] = {}
    for img in imgs[1:]:
        est(img)
        for k, v in est.last_timings_ms.items():
            stages.setdefault(k, []).append(v)
    med = {k: float(np.median(v)) for k, v in stages.items()}
    print(f"{label:32s} " + "  ".join(f"{k} {v:6.1f}" for k, v in med.items()), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("video")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--checkpoint")
    ap.add_argument("--model", default="mano_regressor")
    args = ap.parse_args()
    imgs = frames(args.video, args.frames)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = args.checkpoint
        if ckpt is None:
            import torch

            from hand_pose_core.models import create
            from hand_pose_core.models.checkpoint import save_model

            torch.manual_seed(0)
            cfg = {"backbone": "resnet18", "pretrained": False}
            ckpt = str(save_model(Path(tmp) / "reg.safetensors", create("mano_regressor", **cfg),
                                  "mano_regressor", cfg, {"crop_size": 128}))
        print(f"{len(imgs)} frames of {args.video}, median ms per stage")
        run("mediapipe (default)", imgs)
        run(f"{args.model} lifter", imgs, model=args.model, checkpoint=ckpt)


if __name__ == "__main__":
    main()
