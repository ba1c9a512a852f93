"""Canonical 21-joint hand skeleton (FreiHAND = MediaPipe = OpenPose = manopth output order).

Order: 0 wrist; 1-4 thumb (CMC, MCP, IP, tip); 5-8 index (MCP, PIP, DIP, tip);
9-12 middle; 13-16 ring; 17-20 pinky (each finger MCP, PIP, DIP, tip).

The wrist is the root. Each finger's first joint hangs off the wrist, the others off the
previous joint of the same finger, so bone ``j`` (1..20) is ``PARENTS_21[j] -> j``.
"""
from __future__ import annotations

NUM_JOINTS = 21
NUM_BONES = NUM_JOINTS - 1

JOINT_NAMES: tuple[str, ...] = (
    "wrist",
    "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip",
    "index_mcp", "index_pip", "index_dip", "index_tip",
    "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
    "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
    "pinky_mcp", "pinky_pip", "pinky_dip", "pinky_tip",
)

FINGER_NAMES: tuple[str, ...] = ("thumb", "index", "middle", "ring", "pinky")

# finger name -> its 4 joint ids, from the base (closest to the wrist) to the tip.
FINGERS: dict[str, tuple[int, int, int, int]] = {
    name: tuple(range(1 + 4 * i, 5 + 4 * i)) for i, name in enumerate(FINGER_NAMES)
}

# parent of each joint; -1 for the root (wrist).
PARENTS_21: tuple[int, ...] = (-1,) + tuple(
    0 if (j - 1) % 4 == 0 else j - 1 for j in range(1, NUM_JOINTS)
)

# (parent, child) pairs, one per bone, ordered by child id 1..20 (bone k ends at joint k+1).
BONES: tuple[tuple[int, int], ...] = tuple((PARENTS_21[j], j) for j in range(1, NUM_JOINTS))

FINGERTIPS: tuple[int, ...] = tuple(f[-1] for f in FINGERS.values())
WRIST = 0
MIDDLE_MCP = 9

JOINT_INDEX: dict[str, int] = {name: i for i, name in enumerate(JOINT_NAMES)}

# children of each joint (used by kinematic code walking the tree outwards).
CHILDREN_21: tuple[tuple[int, ...], ...] = tuple(
    tuple(c for c in range(NUM_JOINTS) if PARENTS_21[c] == j) for j in range(NUM_JOINTS)
)

__all__ = [
    "NUM_JOINTS", "NUM_BONES", "JOINT_NAMES", "FINGER_NAMES", "FINGERS", "PARENTS_21", "BONES",
    "FINGERTIPS", "WRIST", "MIDDLE_MCP", "JOINT_INDEX", "CHILDREN_21",
]
