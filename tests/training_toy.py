"""A small but real training problem for the trainer's tests: drawn hand skeletons -> joints.

- dataset ``toy_hands``: deterministic per index (except the optional pixel ``noise``, drawn from
  numpy's global RNG like a careless reader would): a 21-joint hand fanned out in 3D in front of a
  pinhole camera, projected with K and drawn with OpenCV into an S x S RGB image; common samples
  that pass :func:`training.datasets.validate_sample`;
- model ``toy_joint_net`` (registered in :mod:`hand_pose_core.models`): three strided
  convolutions, optional dropout, a linear head -> normalised 2D joints and root-relative 3D;
- task ``toy_joints``: MSE on both, ``predict`` (3D placed at the ground-truth root) and ``draw``.

- dataset ``toy_mano_crops``: the synthetic MANO hand rendered as a filled mask with its skeleton
  drawn (:func:`tests.net_fixtures.toy_samples`), with masks, vertices and both sides: the real
  networks (``mano_regressor``, ``zimmermann_brox``) and the real augmentation train on it.

Imported by the trainer through the config key ``imports: [tests.training_toy]``.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn as nn

from hand_pose_core.models.registry import register_model
from training.datasets import register_dataset, validate_sample
from training.tasks import register_task

_COLOURS = ((255, 60, 60), (255, 200, 40), (60, 255, 80), (50, 140, 255), (200, 80, 255))


@register_dataset("toy_hands")
class ToyHands:
    def __init__(self, root=None, split: str = "train", size: int = 32, length: int = 64, noise: float = 0.0,
                 sigterm_at: int | None = None):
        self.size, self.length, self.split, self.noise = int(size), int(length), split, float(noise)
        self.sigterm_at, self.calls = sigterm_at, 0  # (tests: SIGTERM this process at the Nth read)
        self.offset = {"train": 0, "val": 1_000_000}[split]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < self.length:
            raise IndexError(i)
        _maybe_sigterm(self)
        rng = np.random.default_rng(self.offset + i)
        S = self.size
        f = 1.1 * S
        K = np.array([[f, 0, (S - 1) / 2], [0, f, (S - 1) / 2], [0, 0, 1]], np.float32)
        wrist = np.array([rng.uniform(-0.02, 0.02), rng.uniform(0.03, 0.06), 0.4])
        base = rng.uniform(-0.6, 0.6) - np.pi / 2
        joints = [wrist]
        for finger in range(5):
            ang = base + (finger - 2) * 0.35 + rng.normal(0, 0.05)
            d = np.array([np.cos(ang), np.sin(ang), rng.uniform(-0.3, 0.3)])
            bend = rng.uniform(0.0, 0.6)
            p = wrist.copy()
            for seg in range(4):
                step = 0.022 if seg == 0 else 0.016
                c, s = np.cos(bend * seg / 3), np.sin(bend * seg / 3)
                dd = np.array([d[0] * c - d[1] * s * 0.3, d[1] * c, d[2] + s * 0.5])
                p = p + step * dd / np.linalg.norm(dd)
                joints.append(p)
        j3 = np.asarray(joints, np.float32)
        uv = (j3 @ K.T)[:, :2] / j3[:, 2:]
        img = np.zeros((S, S, 3), np.uint8)
        img[:] = (rng.integers(0, 60), rng.integers(0, 60), rng.integers(0, 60))
        q = np.round(uv).astype(int)
        for finger in range(5):
            chain = [0] + [1 + 4 * finger + k for k in range(4)]
            for a, b in zip(chain[:-1], chain[1:]):
                cv2.line(img, tuple(map(int, q[a])), tuple(map(int, q[b])), _COLOURS[finger], 1)
        if self.noise:  # like a reader with its own randomness: drawn from numpy's global RNG
            img = np.clip(img + np.random.normal(0, self.noise * 255, img.shape), 0, 255).astype(np.uint8)
        return validate_sample({
            "image": img, "K": K, "joints_cam_m": j3, "joints_2d": uv.astype(np.float32),
            "visible": np.ones(21, bool), "side": "right", "id": f"toy/{self.split}/{i}",
        })


def _maybe_sigterm(ds) -> None:
    """Tests: SIGTERM this process at the ``sigterm_at``-th sample read."""
    ds.calls += 1
    if ds.calls == ds.sigterm_at:
        import os
        import signal

        os.kill(os.getpid(), signal.SIGTERM)


@register_dataset("toy_mano_crops")
class ToyManoCrops:
    def __init__(self, root=None, split: str = "train", size: int = 96, length: int = 48, seed: int = 0,
                 sigterm_at: int | None = None):
        from tests.net_fixtures import toy_samples

        self.samples = toy_samples(int(length), int(size), seed + {"train": 0, "val": 1000}[split])
        self.sigterm_at, self.calls = sigterm_at, 0

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict:
        _maybe_sigterm(self)
        return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in self.samples[i].items()}


@register_model("toy_joint_net")
def toy_joint_net(width: int = 8, dropout: float = 0.0) -> nn.Module:
    return ToyJointNet(width, dropout)


class ToyJointNet(nn.Module):
    def __init__(self, width: int = 8, dropout: float = 0.0):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(3, w, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(w, 2 * w, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(2 * w, 4 * w, 3, 2, 1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        )
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(16 * w, 21 * 5)

    def forward(self, image: torch.Tensor) -> dict:
        y = self.head(self.drop(self.features(image)))
        return {"uv_norm": y[:, :42].reshape(-1, 21, 2), "rel_dm": y[:, 42:].reshape(-1, 21, 3)}


@register_task("toy_joints")
class ToyJointsTask:
    model_name = "toy_joint_net"

    def __init__(self, cfg: dict | None = None):
        self.model_cfg = dict((cfg or {}).get("model") or {})

    def build_model(self) -> nn.Module:
        from hand_pose_core.models import create

        return create(self.model_name, **self.model_cfg)

    @staticmethod
    def _targets(batch):
        half = batch["image"].shape[-1] / 2
        uv = (batch["joints_2d"] - half) / half
        j = batch["joints_cam_m"]
        return uv, (j - j[:, :1]) * 10.0

    def loss(self, model, batch):
        out = model(batch["image"])
        uv, rel = self._targets(batch)
        l2d = ((out["uv_norm"].float() - uv) ** 2).mean()
        l3d = ((out["rel_dm"].float() - rel) ** 2).mean()
        return l2d + l3d, {"joints_2d": float(l2d.detach()), "joints_3d": float(l3d.detach())}

    @torch.no_grad()
    def predict(self, model, batch) -> dict:
        out = model(batch["image"])
        half = batch["image"].shape[-1] / 2
        j = batch["joints_cam_m"]
        return {"joints_2d": out["uv_norm"].float() * half + half,
                "joints_cam_m": out["rel_dm"].float() / 10.0 + j[:, :1]}

    def draw(self, batch, pred):
        imgs = (batch["image"].detach().clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy().copy()
        for img, uv in zip(imgs, pred["joints_2d"].cpu().numpy()):
            for u, v in np.round(uv).astype(int):
                if 0 <= u < img.shape[1] and 0 <= v < img.shape[0]:
                    img[v, u] = 255
        return imgs
