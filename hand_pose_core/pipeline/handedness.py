"""Handedness of the landmark network -> 'left' / 'right'.

The network's handedness head gives ``p``: measured on the project's real footage
(a right hand filmed by an ordinary, non-mirrored camera gives p ~ 1, and the 3D joints
confirm it: the fingers curl towards the side that cross(index MCP - wrist, pinky MCP -
wrist) points to, which is the palm of a right hand), p is the probability that the hand
is a RIGHT hand in the image as given. MediaPipe's own label ("assumes a mirrored selfie
image") is that answer swapped. A selfie (mirrored) image shows a right hand as a left one,
so ``mirrored=True`` swaps the answer back to the person's true hand.
"""
from __future__ import annotations

import numpy as np


def side_from_handedness(p_right: float, mirrored: bool = False) -> tuple[str, float]:
    """Return (side, score) with side 'left' | 'right' and score = P(side) in [0.5, 1]."""
    p = float(np.clip(p_right, 0.0, 1.0))
    if not np.isfinite(p):
        raise ValueError(f"handedness probability must be finite, got {p_right!r}")
    side, score = ("right", p) if p >= 0.5 else ("left", 1.0 - p)
    if mirrored:
        side = "left" if side == "right" else "right"
    return side, score
