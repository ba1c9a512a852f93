"""Random plausible MANO hand poses from per-joint anatomical limits.

Each of MANO's 15 finger joints gets an anatomical frame built from the model's own rest
joints (so the same limits work for the synthetic model, the official right and the official
left model):

* ``twist`` axis: along the bone leaving the joint (joint -> child joint);
* ``flex`` axis: ``bone x palmar``, so a positive angle curls the bone towards the palm
  (for the thumb "palmar" leans towards the little finger: the thumb flexes across the palm);
* ``spread`` axis: ``flex x bone`` (abduction / adduction, roughly the palm normal).

A sampled pose is the axis-angle vector ``flex * f + spread * s + twist * t`` per joint, with
the rest pose being MANO's flat hand (``flat_hand_mean=True`` convention). Angles are drawn
within :data:`JOINT_LIMITS_RAD` (radians). Real fingers bend their three joints together, so
flexion is coupled: a hand-level "curl" (Beta(0.7, 0.7): open hands and fists both common)
plus a per-finger offset gives each finger's curl, each joint's flexion is that fraction of its
range plus a little noise, and the DIP follows ~2/3 of the PIP (the tendon coupling). 30 % of
the fingers instead draw each flexion independently from the lower 70 % of its range. Spread
and twist are uniform within their limits.

Limits (radians; flex, spread, twist as (min, max)) follow the usual active ranges of motion
of the hand joints, narrowed so that no sample looks broken:

| joint | flex | spread | twist |
|---|---|---|---|
| finger MCP (index, middle, ring, pinky) | -0.30 .. 1.55 | -0.25 .. 0.25 | -0.10 .. 0.10 |
| finger PIP | 0.00 .. 1.85 | -0.05 .. 0.05 | -0.05 .. 0.05 |
| finger DIP | -0.10 .. 1.30 | -0.05 .. 0.05 | -0.05 .. 0.05 |
| thumb CMC | -0.30 .. 0.70 | -0.45 .. 0.45 | -0.30 .. 0.30 |
| thumb MCP | -0.20 .. 0.90 | -0.15 .. 0.15 | -0.15 .. 0.15 |
| thumb IP | -0.30 .. 1.20 | -0.05 .. 0.05 | -0.05 .. 0.05 |
"""
from __future__ import annotations

import numpy as np

__all__ = ["JOINT_LIMITS_RAD", "anatomical_frames", "sample_finger_pose", "random_rotation",
           "finger_pose_to_mano"]

# MANO joint order (1..15): index 1-3, middle 1-3, little 1-3, ring 1-3, thumb 1-3.
_FINGER_JOINTS = {"index": (1, 2, 3), "middle": (4, 5, 6), "pinky": (7, 8, 9),
                  "ring": (10, 11, 12), "thumb": (13, 14, 15)}
_CHILD = {1: 2, 2: 3, 4: 5, 5: 6, 7: 8, 8: 9, 10: 11, 11: 12, 13: 14, 14: 15}

# (flex, spread, twist) limits per level, radians.
JOINT_LIMITS_RAD = {
    "finger": (((-0.30, 1.55), (-0.25, 0.25), (-0.10, 0.10)),
               ((0.00, 1.85), (-0.05, 0.05), (-0.05, 0.05)),
               ((-0.10, 1.30), (-0.05, 0.05), (-0.05, 0.05))),
    "thumb": (((-0.30, 0.70), (-0.45, 0.45), (-0.30, 0.30)),
              ((-0.20, 0.90), (-0.15, 0.15), (-0.15, 0.15)),
              ((-0.30, 1.20), (-0.05, 0.05), (-0.05, 0.05))),
}


def _limits_by_joint() -> np.ndarray:
    lim = np.zeros((15, 3, 2))
    for finger, joints in _FINGER_JOINTS.items():
        table = JOINT_LIMITS_RAD["thumb" if finger == "thumb" else "finger"]
        for k, j in enumerate(joints):
            lim[j - 1] = table[k]
    return lim


def _unit(v):
    return v / np.linalg.norm(v)


_LIMITS = _limits_by_joint()


def anatomical_frames(rest_joints: np.ndarray, side: str) -> np.ndarray:
    """(15, 3, 3) rows = (flex, spread, twist) axes of MANO joints 1..15 in the rest frame.

    ``rest_joints`` are MANO's 16 rest joints (metres, any scale) of a model of ``side``.
    """
    J = np.asarray(rest_joints, np.float64)
    if J.shape != (16, 3):
        raise ValueError(f"rest_joints must be (16, 3), got {J.shape}")
    wrist, index1, pinky1 = J[0], J[1], J[7]
    palmar = _unit(np.cross(index1 - wrist, pinky1 - wrist))
    if side == "left":  # the cross product flips with the mirrored geometry
        palmar = -palmar
    across = _unit(pinky1 - index1)  # towards the little finger
    frames = np.zeros((15, 3, 3))
    for finger, joints in _FINGER_JOINTS.items():
        for k, j in enumerate(joints):
            child = _CHILD.get(j)
            bone = _unit(J[child] - J[j]) if child else _unit(J[j] - J[j - 1])
            towards = _unit(palmar + 0.8 * across) if finger == "thumb" else palmar
            towards = _unit(towards - bone * (towards @ bone))
            flex = _unit(np.cross(bone, towards))
            spread = _unit(np.cross(flex, bone))
            frames[j - 1] = np.stack([flex, spread, bone])
    return frames


def sample_finger_pose(rng: np.random.Generator, frames: np.ndarray) -> np.ndarray:
    """(45,) axis-angle of the 15 finger joints (flat-hand convention) within the limits."""
    lim = _LIMITS  # (15, 3, 2) in MANO joint order 1..15
    level = np.tile([0, 1, 2], 5)
    hand_curl = rng.beta(0.7, 0.7)
    curl = np.clip(hand_curl + rng.normal(0, 0.2, 5), 0, 1).repeat(3)  # per finger
    independent = (rng.random(5) < 0.3).repeat(3)
    frac = np.clip(curl + rng.normal(0, 0.1, 15), 0, 1)
    dip = (level == 2) & (np.arange(15) < 12)  # finger DIPs follow the PIPs
    flex = lim[:, 0, 0] + (lim[:, 0, 1] - lim[:, 0, 0]) * frac
    pip_flex = flex[np.nonzero(dip)[0] - 1]
    frac[dip] = np.clip((0.67 * pip_flex - lim[dip, 0, 0]) / (lim[dip, 0, 1] - lim[dip, 0, 0])
                        + rng.normal(0, 0.08, dip.sum()), 0, 1)
    frac = np.where(independent, rng.uniform(0, 0.7, 15), frac)
    angles = lim[..., 0] + (lim[..., 1] - lim[..., 0]) * np.stack(
        [frac, rng.random(15), rng.random(15)], axis=1)  # (15, 3): flex, spread, twist
    out = np.einsum("jab,ja->jb", frames, angles)  # sum of angle * axis (rows of the frame)
    return out.reshape(45)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Uniformly distributed rotation as an axis-angle vector (3,)."""
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    if q[0] < 0:
        q = -q
    w, v = q[0], q[1:]
    s = np.linalg.norm(v)
    if s < 1e-12:
        return np.zeros(3)
    return v / s * (2.0 * np.arctan2(s, w))


def finger_pose_to_mano(finger_pose_flat: np.ndarray, hands_mean: np.ndarray) -> np.ndarray:
    """Flat-hand finger pose (45,) -> MANO ``flat_hand_mean=False`` pose (45,) (subtract the mean)."""
    return np.asarray(finger_pose_flat, np.float64) - np.asarray(hands_mean, np.float64).reshape(45)
