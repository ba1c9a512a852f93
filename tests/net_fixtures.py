"""Toy hand crops for the network tests, generated here (no dataset needed): the synthetic
MANO hand in random poses, projected through a pinhole K, its mesh filled as the hand mask
and its skeleton drawn on top (so that 2D joints are learnable in a few steps). Samples follow
the common sample contract (validated) and are batched with the real collate."""
from __future__ import annotations

import cv2
import numpy as np
import torch

from hand_pose_core.mano import ManoLayer, mirror_pose_aa, synthetic_mano
from training.datasets.collate import collate_samples
from training.datasets.sample import validate_sample

_LAYER = None


def _layer() -> ManoLayer:
    global _LAYER
    if _LAYER is None:
        _LAYER = ManoLayer(model=synthetic_mano("right"), use_pca=True, ncomps=6,
                           flat_hand_mean=False)
    return _LAYER


def _rot_fingers_up(rng) -> np.ndarray:
    """Global rotation (axis-angle) turning MANO's rest hand (fingers along -x, palm to -y)
    to fingers up (-y in the image) and the palm towards the camera, plus a random tilt."""
    from scipy.spatial.transform import Rotation

    base = Rotation.from_euler("y", 90, degrees=True) * Rotation.from_euler("z", 90, degrees=True)
    tilt = Rotation.from_rotvec(rng.normal(0, 0.4, 3))
    return (tilt * base).as_rotvec()


def toy_samples(n: int, size: int = 64, seed: int = 0, left_every: int = 3) -> list[dict]:
    rng = np.random.default_rng(seed)
    layer = _layer()
    pose = np.zeros((n, 9), np.float32)
    pose[:, 3:] = rng.normal(0, 0.8, (n, 6))
    pose[:, :3] = np.stack([_rot_fingers_up(rng) for _ in range(n)])
    with torch.no_grad():
        v_mm, j_mm = layer(torch.from_numpy(pose))
        fingers = torch.from_numpy(pose[:, 3:]) @ layer.hands_components  # sample convention:
    mano_pose = np.concatenate([pose[:, :3], fingers.numpy()], 1)        # flat_hand_mean=False
    f = 1.6 * size
    K = np.array([[f, 0, (size - 1) / 2], [0, f, (size - 1) / 2], [0, 0, 1]], np.float32)
    faces = layer.faces_np
    out = []
    for i in range(n):
        side = "left" if left_every and i % left_every == left_every - 1 else "right"
        rel_v = (v_mm[i] - j_mm[i, 9]).numpy() * 1e-3  # centre on the middle MCP
        rel_j = (j_mm[i] - j_mm[i, 9]).numpy() * 1e-3
        if side == "left":
            rel_v[:, 0] *= -1
            rel_j[:, 0] *= -1
        t = np.array([rng.normal(0, 0.01), rng.normal(0, 0.01), rng.uniform(0.45, 0.55)])
        V, J = rel_v + t, rel_j + t
        uvv = (V @ K.T)[:, :2] / V[:, 2:]
        uvj = (J @ K.T)[:, :2] / J[:, 2:]
        bg = rng.integers(0, 90, 3)
        img = np.clip(rng.normal(0, 12, (size, size, 3)) + bg, 0, 255).astype(np.uint8)
        mask = np.zeros((size, size), np.uint8)
        tri = np.round(uvv[faces] * 4).astype(np.int32)  # 2 fractional bits
        cv2.fillPoly(mask, list(tri), 1, lineType=cv2.LINE_8, shift=2)
        img[mask > 0] = (210, 170, 140)
        for a, b in ((0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10),
                     (10, 11), (11, 12), (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18),
                     (18, 19), (19, 20)):
            c = (40 + 10 * b, 255 - 10 * b, 120)
            cv2.line(img, tuple(np.round(uvj[a]).astype(int)), tuple(np.round(uvj[b]).astype(int)), c, 1)
        out.append(validate_sample({
            "image": img, "K": K.copy(), "joints_cam_m": J.astype(np.float32),
            "joints_2d": uvj.astype(np.float32), "visible": np.ones(21, bool), "side": side,
            "id": f"toy/{seed}/{i}", "mask": mask, "verts_cam_m": V.astype(np.float32),
            "mano_pose": (mirror_pose_aa(mano_pose[i]) if side == "left" else mano_pose[i]).astype(np.float32),
        }))
    return out


def toy_batch(n: int, size: int = 64, seed: int = 0, **kw) -> dict:
    return collate_samples(toy_samples(n, size, seed, **kw))
