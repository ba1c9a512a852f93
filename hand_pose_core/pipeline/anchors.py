"""SSD anchors of the MediaPipe palm detectors (palm_detection_full / _lite).

The detector regresses boxes relative to 2016 fixed-size anchors on a 192x192 input:
a 24x24 grid with 2 anchors per cell (stride 8), then a 12x12 grid with 6 anchors per
cell (three stride-16 layers, 2 anchors each, merged into one grid). All anchors of a
cell share the cell centre and, with the "fixed anchor size" option, size 1.0, so only
their count per cell matters. Order matches the network output: grid by grid, row (y)
major, then column (x), then the anchors of a cell.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

PALM_INPUT_SIZE_PX = 192
PALM_STRIDES = (8, 16, 16, 16)
ANCHORS_PER_LAYER = 2  # aspect ratio 1.0 plus the interpolated-scale anchor
ANCHOR_OFFSET = 0.5
NUM_PALM_ANCHORS = 2016


def generate_anchors(input_size_px: int = PALM_INPUT_SIZE_PX,
                     strides: tuple[int, ...] = PALM_STRIDES,
                     anchors_per_layer: int = ANCHORS_PER_LAYER,
                     offset: float = ANCHOR_OFFSET) -> np.ndarray:
    """Return anchors as float32 array [N, 4] of (cx, cy, w, h), normalised to [0, 1].

    Consecutive layers with equal stride share one grid (their anchors interleave per cell).
    """
    anchors = []
    i = 0
    while i < len(strides):
        stride = strides[i]
        n_layers = 1
        while i + n_layers < len(strides) and strides[i + n_layers] == stride:
            n_layers += 1
        grid = int(np.ceil(input_size_px / stride))
        per_cell = anchors_per_layer * n_layers
        ys, xs = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
        centres = np.stack([(xs + offset) / grid, (ys + offset) / grid], axis=-1).reshape(-1, 2)
        centres = np.repeat(centres, per_cell, axis=0)
        anchors.append(np.concatenate([centres, np.ones_like(centres)], axis=1))
        i += n_layers
    return np.concatenate(anchors, axis=0).astype(np.float32)


@lru_cache(maxsize=1)
def palm_anchors() -> np.ndarray:
    """The 2016 palm-detector anchors (cached, read-only)."""
    a = generate_anchors()
    assert a.shape == (NUM_PALM_ANCHORS, 4)
    a.setflags(write=False)
    return a
