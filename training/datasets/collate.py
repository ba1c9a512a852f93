"""Collate common samples (after augmentation / cropping to one size) into a batch of tensors.

Batch keys (B = batch size, S = crop size):

| key | shape, dtype | notes |
|---|---|---|
| ``image`` | (B, 3, S, S) float32 in [0, 1] | RGB; networks normalise themselves |
| ``K`` | (B, 3, 3) float32 | intrinsics of the crop |
| ``joints_cam_m`` | (B, 21, 3) float32 | NaN replaced by 0; see ``has_3d`` |
| ``has_3d`` | (B,) bool | the sample has trusted 3D joints |
| ``joints_2d`` | (B, 21, 2) float32 | crop pixels |
| ``visible`` | (B, 21) bool | |
| ``joints_conf`` | (B, 21) float32 | 1 where the dataset gives no confidence |
| ``side`` | (B,) int64 | 1 = right, 0 = left |
| ``mask`` / ``has_mask`` | (B, S, S) float32 / (B,) bool | zeros where absent |
| ``mano_pose``, ``mano_shape``, ``mano_trans`` / ``has_mano`` | (B, 48), (B, 10), (B, 3) / (B,) bool | zeros where absent |
| ``verts_cam_m`` / ``has_verts`` | (B, 778, 3) / (B,) bool | zeros where absent |
| ``id`` | list of str | |
"""
from __future__ import annotations

import numpy as np
import torch


def _stack_optional(samples, key, shape, dtype=np.float32):
    present = [s.get(key) is not None for s in samples]
    arr = np.zeros((len(samples),) + tuple(shape), dtype=dtype)
    for i, s in enumerate(samples):
        if present[i]:
            arr[i] = s[key]
    return torch.from_numpy(arr), torch.tensor(present, dtype=torch.bool)


def collate_samples(samples: list[dict]) -> dict:
    """Stack a list of same-size common samples into the batch described above."""
    sizes = {s["image"].shape for s in samples}
    if len(sizes) != 1:
        raise ValueError(f"cannot batch images of different sizes {sorted(sizes)}: crop them first")
    images = np.stack([s["image"] for s in samples])
    j3 = np.stack([np.asarray(s["joints_cam_m"], np.float32) for s in samples])
    has_3d = np.all(np.isfinite(j3.reshape(len(samples), -1)), axis=1)
    j3 = np.where(np.isfinite(j3), j3, 0.0).astype(np.float32)
    h, w = images.shape[1:3]
    batch = {
        "image": torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0),
        "K": torch.from_numpy(np.stack([np.asarray(s["K"], np.float32) for s in samples])),
        "joints_cam_m": torch.from_numpy(j3),
        "has_3d": torch.from_numpy(has_3d),
        "joints_2d": torch.from_numpy(np.stack([np.asarray(s["joints_2d"], np.float32) for s in samples])),
        "visible": torch.from_numpy(np.stack([np.asarray(s["visible"], bool) for s in samples])),
        "joints_conf": torch.from_numpy(np.stack([
            np.asarray(s["joints_conf"], np.float32) if s.get("joints_conf") is not None
            else np.ones(21, np.float32) for s in samples])),
        "side": torch.tensor([1 if s["side"] == "right" else 0 for s in samples], dtype=torch.int64),
        "id": [s["id"] for s in samples],
    }
    batch["mask"], batch["has_mask"] = _stack_optional(samples, "mask", (h, w))
    for key, shape in (("mano_pose", (48,)), ("mano_shape", (10,)), ("mano_trans", (3,))):
        batch[key], has = _stack_optional(samples, key, shape)
    batch["has_mano"] = torch.tensor([s.get("mano_pose") is not None for s in samples], dtype=torch.bool)
    batch["verts_cam_m"], batch["has_verts"] = _stack_optional(samples, "verts_cam_m", (778, 3))
    return batch
