"""MediaPipe-compatible hand landmark network (MobileNetV2-style regressor) as an nn.Module.

Architecture: 3x3 stride-2 stem (ReLU6), a depthwise-separable block, a sequence of inverted
residual blocks (1x1 expand + ReLU6, depthwise kxk + ReLU6, linear 1x1 projection, identity
shortcut when the shape is kept; the 'lite' variant's first stride-2 block has a 2x2 max-pool
shortcut), a final 1x1 expand + depthwise 3x3 (both ReLU6), global average pooling and four
linear heads.

Output conventions (``LandmarkOutput``), identical to the TFLite model:

* ``landmarks`` [B,21,3]: x, y in pixels of the 224x224 input crop (x right, y down, origin at
  the top-left corner of the crop); z is relative depth, wrist = 0, roughly in the same pixel
  scale as x, y, smaller (more negative) = closer to the camera.
* ``presence`` [B]: probability (already sigmoided) that the crop contains a hand.
* ``handedness`` [B]: probability (already sigmoided) that the hand is anatomically a RIGHT hand
  as it appears in the given, non-mirrored image (checked on real footage: a right hand gives
  > 0.99, left hands < 0.03). MediaPipe's own labels assume a mirrored selfie image, so it
  calls such a hand "Left"; for mirrored input, 1 means an anatomical left hand.
* ``world_landmarks`` [B,21,3]: metres, origin near the centre of the hand (not the camera),
  axes aligned with the crop: x right, y down, z in the sense of the landmark z (larger =
  farther). Rotate by the crop's rotation to get camera-aligned axes.

Submodules are registered in execution order (the weight converter relies on it).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .layers import SameConv2d

__all__ = ["HandLandmark", "LandmarkOutput", "LANDMARK_VARIANTS"]

NUM_JOINTS = 21

# (in, hidden, out, kernel, stride, shortcut) per block; hidden == in means no expansion conv.
# shortcut: 'identity' (residual add), 'maxpool' (2x2 max-pool residual) or None.
_BlockCfg = tuple[int, int, int, int, int, "str | None"]
LANDMARK_VARIANTS: dict[str, dict] = {
    "full": {
        "stem": 24,
        "blocks": [
            (24, 24, 16, 3, 1, None),
            (16, 64, 24, 3, 2, None),
            (24, 144, 24, 3, 1, "identity"),
            (24, 144, 40, 5, 2, None),
            (40, 240, 40, 5, 1, "identity"),
            (40, 240, 80, 3, 2, None),
            (80, 480, 80, 3, 1, "identity"),
            (80, 480, 80, 3, 1, "identity"),
            (80, 480, 112, 5, 1, None),
            (112, 672, 112, 5, 1, "identity"),
            (112, 672, 112, 5, 1, "identity"),
            (112, 672, 192, 5, 2, None),
            (192, 1152, 192, 5, 1, "identity"),
            (192, 1152, 192, 5, 1, "identity"),
            (192, 1152, 192, 5, 1, "identity"),
        ],
        "head": 1152,
    },
    "lite": {
        "stem": 24,
        "blocks": [
            (24, 24, 16, 3, 1, None),
            (16, 64, 16, 3, 2, "maxpool"),
            (16, 96, 16, 3, 1, "identity"),
            (16, 96, 24, 5, 2, None),
            (24, 144, 24, 5, 1, "identity"),
            (24, 144, 48, 3, 2, None),
            (48, 288, 48, 3, 1, "identity"),
            (48, 288, 48, 3, 1, "identity"),
            (48, 288, 64, 5, 1, None),
            (64, 384, 64, 5, 1, "identity"),
            (64, 384, 64, 5, 1, "identity"),
            (64, 384, 112, 5, 2, None),
            (112, 672, 112, 5, 1, "identity"),
            (112, 672, 112, 5, 1, "identity"),
            (112, 672, 112, 5, 1, "identity"),
        ],
        "head": 672,
    },
}


class LandmarkOutput(NamedTuple):
    landmarks: torch.Tensor  # [B,21,3] crop pixels (x, y) + relative z
    presence: torch.Tensor  # [B] probability a hand is in the crop
    handedness: torch.Tensor  # [B] probability of a right hand (non-mirrored image)
    world_landmarks: torch.Tensor  # [B,21,3] metres, hand-centred


def _conv_relu6(conv: nn.Module) -> nn.Sequential:
    seq = nn.Sequential()
    seq.add_module("conv", conv)
    seq.add_module("act", nn.ReLU6())
    return seq


class InvertedResidual(nn.Module):
    """1x1 expand (ReLU6) -> kxk depthwise (ReLU6) -> linear 1x1 projection (+ shortcut)."""

    def __init__(self, in_channels: int, hidden: int, out_channels: int, kernel_size: int,
                 stride: int, shortcut: str | None) -> None:
        super().__init__()
        if shortcut == "identity" and (stride != 1 or in_channels != out_channels):
            raise ValueError("an identity shortcut needs stride 1 and equal channels")
        if shortcut == "maxpool" and in_channels != out_channels:
            raise ValueError("a max-pool shortcut needs equal channels")
        self.expand = (_conv_relu6(nn.Conv2d(in_channels, hidden, 1)) if hidden != in_channels
                       else nn.Identity())
        self.dw = _conv_relu6(SameConv2d(hidden, hidden, kernel_size, stride, groups=hidden))
        self.project = nn.Conv2d(hidden, out_channels, 1)
        self.shortcut = shortcut
        self.pool = nn.MaxPool2d(stride, stride) if shortcut == "maxpool" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.dw(self.expand(x)))
        if self.shortcut == "identity":
            return x + y
        if self.pool is not None:
            return self.pool(x) + y
        return y


class HandLandmark(nn.Module):
    """Hand landmark network. ``forward(x [B,3,224,224] RGB in [0,1]) -> LandmarkOutput``.

    Args:
        variant: 'full' or 'lite'.
    """

    input_size = 224

    def __init__(self, variant: str = "full") -> None:
        super().__init__()
        if variant not in LANDMARK_VARIANTS:
            raise ValueError(f"unknown hand landmark variant {variant!r}; use one of "
                             f"{sorted(LANDMARK_VARIANTS)}")
        self.variant = variant
        cfg = LANDMARK_VARIANTS[variant]
        self.stem = _conv_relu6(SameConv2d(3, cfg["stem"], 3, stride=2))
        self.blocks = nn.Sequential(*[InvertedResidual(*b) for b in cfg["blocks"]])
        last, head = cfg["blocks"][-1][2], cfg["head"]
        self.head_expand = _conv_relu6(nn.Conv2d(last, head, 1))
        self.head_dw = _conv_relu6(SameConv2d(head, head, 3, groups=head))
        # Heads in the order of the original graph: handedness, presence, landmarks, world.
        self.handedness = nn.Linear(head, 1)
        self.presence = nn.Linear(head, 1)
        self.landmarks = nn.Linear(head, NUM_JOINTS * 3)
        self.world_landmarks = nn.Linear(head, NUM_JOINTS * 3)

    def forward(self, x: torch.Tensor) -> LandmarkOutput:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"HandLandmark expects [B,3,224,224] RGB, got {tuple(x.shape)}")
        x = self.head_dw(self.head_expand(self.blocks(self.stem(x))))
        feat = x.mean(dim=(2, 3))
        b = feat.shape[0]
        return LandmarkOutput(
            landmarks=self.landmarks(feat).reshape(b, NUM_JOINTS, 3),
            presence=torch.sigmoid(self.presence(feat)).reshape(b),
            handedness=torch.sigmoid(self.handedness(feat)).reshape(b),
            world_landmarks=self.world_landmarks(feat).reshape(b, NUM_JOINTS, 3),
        )
