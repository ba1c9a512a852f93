"""Random plausible hands as common samples, without a renderer: skeleton pictures with exact
3D/2D labels, for fast tests and CPU measurements of 3D lifting models (diffusion).

Each sample is one hand crop of ``crop_size_px`` pixels: a hand made by
:class:`~hand_pose_core.kinematics.forward_kinematics.ForwardKinematics21` from jittered
template bone lengths (hand scale 0.85-1.15, +-5 % per bone) and joint angles inside rough
anatomical ranges (flexion -0.2..1.5 rad, finger abduction +-0.25 rad, a wider thumb range),
seen from a uniformly random global orientation at 0.3-0.9 m. The crop's intrinsics ``K`` put
the hand's projected centre at the crop centre with the hand filling ~70 % of it, like the
estimator's crops. The image draws the bones as lines whose brightness and width fall with
depth (near = bright and thick), so an image encoder gets some depth cue; left hands are the
mirror image (x negated) of right hands. ``visible`` drops each joint with probability
``p_hidden`` (labels stay exact: "visible" only says whether a loss may use the joint).

This is not the photo-realistic synthetic dataset (``training.datasets.synthetic``); it exists
so that lifting models can be trained and measured in seconds.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from hand_pose_core.kinematics.forward_kinematics import TEMPLATE_JOINTS_M, ForwardKinematics21, bone_lengths
from hand_pose_core.kinematics.rotations import axis_angle_to_matrix
from hand_pose_core.skeleton import BONES, NUM_JOINTS

from training.datasets.sample import validate_sample

_FINGER_COLOURS = [(255, 80, 80), (255, 200, 60), (80, 255, 80), (60, 200, 255), (200, 80, 255)]


def _random_rotations(n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform random rotations (n, 3, 3) from normalised Gaussian quaternions."""
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], axis=1).reshape(n, 3, 3)


def random_hand_joints(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` wrist-centred right hands (n, 21, 3) in metres, random plausible pose and size,
    in the template's frame (fingers along +y, palm in x-y)."""
    # FK21: local_rot[j] turns the bone that ENDS at joint j, so the flexion of a finger's
    # MCP joint is local_rot[MCP + 1], its PIP local_rot[MCP + 2], its DIP local_rot[MCP + 3]
    aa = np.zeros((n, NUM_JOINTS, 3))
    for f in range(5):
        base = 1 + 4 * f
        if f == 0:  # thumb: CMC (opposition, mostly about y and x), MCP and IP flexion
            aa[:, base + 1, 0] = rng.uniform(-0.3, 0.6, n)
            aa[:, base + 1, 1] = rng.uniform(-0.6, 0.4, n)
            aa[:, base + 2, 0] = rng.uniform(-0.2, 0.9, n)
            aa[:, base + 3, 0] = rng.uniform(-0.2, 1.2, n)
        else:
            aa[:, base, 0] = rng.uniform(-0.05, 0.05, n)  # metacarpals barely move
            aa[:, base + 1, 0] = rng.uniform(-0.2, 1.5, n)  # MCP flexion (+x bends to the palm)
            aa[:, base + 1, 2] = rng.uniform(-0.25, 0.25, n)  # MCP abduction
            curl = rng.uniform(-0.05, 1.5, n)  # PIP and DIP move together
            aa[:, base + 2, 0] = curl
            aa[:, base + 3, 0] = curl * rng.uniform(0.5, 0.9, n)
    ref = bone_lengths(TEMPLATE_JOINTS_M)
    lengths = ref[None] * rng.uniform(0.85, 1.15, (n, 1)) * rng.uniform(0.95, 1.05, (n, ref.size))
    fk = ForwardKinematics21()
    with torch.no_grad():
        j = fk(torch.as_tensor(lengths), axis_angle_to_matrix(torch.as_tensor(aa)))
    return j.numpy()


def draw_skeleton(joints_2d: np.ndarray, depth_m: np.ndarray, size: int, background: np.ndarray) -> np.ndarray:
    """Bones as anti-aliased lines, far bones first; brightness and width fall with depth."""
    img = background.copy()
    zmin, zmax = float(depth_m.min()), float(depth_m.max())
    order = sorted(range(len(BONES)), key=lambda b: -(depth_m[BONES[b][0]] + depth_m[BONES[b][1]]))
    for b in order:
        p, c = BONES[b]
        z = 0.5 * (depth_m[p] + depth_m[c])
        near = 1.0 - (z - zmin) / max(zmax - zmin, 1e-6)  # 1 = nearest
        col = tuple(int(v * (0.35 + 0.65 * near)) for v in _FINGER_COLOURS[(c - 1) // 4])
        thick = max(1, int(round(size / 64 * (1.0 + 2.0 * near))))
        a = tuple(int(round(v * 16)) for v in joints_2d[p])
        e = tuple(int(round(v * 16)) for v in joints_2d[c])
        cv2.line(img, a, e, col, thick, cv2.LINE_AA, shift=4)
    return img


class RandomHands(torch.utils.data.Dataset):
    """``count`` random hands (common samples), deterministic per ``(seed, index)``.

    Args:
        count: number of samples.
        crop_size_px: image side.
        seed: base seed (use different seeds for training and held-out sets).
        p_left: probability of a left hand.
        p_hidden: probability that a joint is marked not visible.
    """

    def __init__(self, count: int, crop_size_px: int = 64, seed: int = 0, p_left: float = 0.0,
                 p_hidden: float = 0.0):
        if count < 1 or crop_size_px < 16:
            raise ValueError(f"need count >= 1 and crop_size_px >= 16, got {count}, {crop_size_px}")
        self.count, self.size, self.seed = int(count), int(crop_size_px), int(seed)
        n, S = self.count, self.size
        rng = np.random.default_rng(self.seed)
        j = random_hand_joints(n, rng)
        left = rng.random(n) < p_left
        j[left, :, 0] *= -1.0
        R = _random_rotations(n, rng)
        X = np.einsum("nij,nkj->nki", R, j - j.mean(axis=1, keepdims=True))
        X[:, :, 2] += rng.uniform(0.3, 0.9, n)[:, None]
        # pinhole with the hand's projected extent ~70 % of the crop, centred; the -0.5 puts the
        # crop centre between the two middle pixels (pixel centres at integers)
        xy = X[:, :, :2] / X[:, :, 2:3]
        lo, hi = xy.min(axis=1), xy.max(axis=1)
        f = 0.7 * S / np.maximum((hi - lo).max(axis=1), 1e-3)
        c = (hi + lo) / 2
        K = np.zeros((n, 3, 3))
        K[:, 0, 0] = K[:, 1, 1] = f
        K[:, :2, 2] = S / 2 - f[:, None] * c - 0.5
        K[:, 2, 2] = 1.0
        uvw = np.einsum("nij,nkj->nki", K, X)
        self.joints_cam_m = X.astype(np.float32)
        self.K = K.astype(np.float32)
        self.joints_2d = (uvw[:, :, :2] / uvw[:, :, 2:3]).astype(np.float32)
        self.side = np.where(left, "left", "right")
        self.visible = rng.random((n, NUM_JOINTS)) >= p_hidden
        self.visible[:, 0] = True

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < self.count:
            raise IndexError(i)
        rng = np.random.default_rng([self.seed, i])
        S = self.size
        bg = rng.integers(0, 60, size=(S, S, 3), dtype=np.uint8)
        img = draw_skeleton(self.joints_2d[i], self.joints_cam_m[i, :, 2], S, bg)
        sample = {
            "image": img, "K": self.K[i].copy(), "joints_cam_m": self.joints_cam_m[i].copy(),
            "joints_2d": self.joints_2d[i].copy(), "visible": self.visible[i].copy(),
            "side": str(self.side[i]), "id": f"random_hands/{self.seed}/{i}",
        }
        return validate_sample(sample)


__all__ = ["RandomHands", "random_hand_joints", "draw_skeleton"]
