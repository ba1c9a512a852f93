"""MediaPipe-compatible palm detector (BlazePalm-style single-shot detector) as an nn.Module.

Architecture (same for the 'full' and 'lite' variants except for the number of residual
blocks per stage):

* stem: 5x5 conv, stride 2, 3 -> 32 channels, PReLU (192 -> 96 px)
* five backbone stages at 96, 48, 24, 12 and 6 px. Every stage after the first starts with a
  stride-2 block whose shortcut is a 2x2 max-pool plus zero channel padding; the other blocks
  are ``PReLU(x + pw1x1(dw5x5(x)))``.
* two top-down (FPN-like) levels: bilinear 2x upsampling (half-pixel centres), 1x1 conv + PReLU,
  sum with the backbone feature of that size, then two residual blocks.
* per level a 1x1 score head and a 1x1 box head (18 numbers per anchor: box cx, cy, w, h and
  7 keypoints x, y, in pixels of the 192x192 input, relative to the anchor centre).

Output order of the 2016 anchors: 24x24 level first (2 anchors per cell), then 12x12 (6 per
cell); within a level row-major over cells with the anchors of a cell adjacent, exactly the
order of the TFLite model (its NHWC feature maps are flattened, so we permute to NHWC first).

Submodules are registered in execution order (the weight converter relies on it).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .layers import PReLU, SameConv2d

__all__ = ["PalmDetector", "PalmOutput", "PALM_VARIANTS"]

# variant -> residual blocks per backbone stage (after the stride-2 block of that stage)
PALM_VARIANTS = {"full": 4, "lite": 3}
_STAGE_CHANNELS = (32, 64, 128, 256, 256)  # 96, 48, 24, 12, 6 px
_NUM_COORDS = 18


class PalmOutput(NamedTuple):
    box_regressors: torch.Tensor  # [B, 2016, 18] pixels of the 192x192 input, anchor-relative
    score_logits: torch.Tensor  # [B, 2016, 1] raw logits (apply a sigmoid)


class PalmBlock(nn.Module):
    """Residual block ``PReLU(shortcut(x) + pw(dw(x)))``.

    With stride 2 the shortcut is a 2x2 max-pool (TF 'SAME') followed by zero padding of the
    extra output channels, as in the original graph.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, kernel_size: int = 5):
        super().__init__()
        if stride == 1 and in_channels != out_channels:
            raise ValueError("a stride-1 palm block must keep the channel count")
        self.dw = SameConv2d(in_channels, in_channels, kernel_size, stride, groups=in_channels)
        self.pw = nn.Conv2d(in_channels, out_channels, 1)
        self.act = PReLU(out_channels)
        self.stride = stride
        self.extra_channels = out_channels - in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw(self.dw(x))
        if self.stride > 1:
            # ceil_mode reproduces TF 'SAME' pooling (pads bottom/right only) for odd sizes.
            x = F.max_pool2d(x, self.stride, self.stride, ceil_mode=True)
        if self.extra_channels:
            x = F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))
        return self.act(x + y)


class PalmStage(nn.Module):
    """Optional stride-2 entry block followed by ``depth`` residual blocks."""

    def __init__(self, in_channels: int, out_channels: int, depth: int, downsample: bool):
        super().__init__()
        blocks = []
        if downsample:
            blocks.append(PalmBlock(in_channels, out_channels, stride=2))
        blocks += [PalmBlock(out_channels, out_channels) for _ in range(depth)]
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class TopDownLevel(nn.Module):
    """Upsample the coarser map 2x, project with 1x1 conv + PReLU, add the lateral map, refine."""

    def __init__(self, in_channels: int, out_channels: int, depth: int = 2):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, out_channels, 1)
        self.act = PReLU(out_channels)
        self.blocks = nn.Sequential(*[PalmBlock(out_channels, out_channels) for _ in range(depth)])

    def forward(self, coarse: torch.Tensor, lateral: torch.Tensor) -> torch.Tensor:
        # align_corners=False is TF's half_pixel_centers=True bilinear resize.
        up = F.interpolate(coarse, size=lateral.shape[-2:], mode="bilinear", align_corners=False)
        return self.blocks(lateral + self.act(self.proj(up)))


class DetectionHead(nn.Module):
    """1x1 score and box convolutions for ``num_anchors`` anchors per cell."""

    def __init__(self, in_channels: int, num_anchors: int, num_coords: int = _NUM_COORDS):
        super().__init__()
        self.num_coords = num_coords
        self.score = nn.Conv2d(in_channels, num_anchors, 1)
        self.box = nn.Conv2d(in_channels, num_anchors * num_coords, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = x.shape[0]
        # NHWC before flattening: anchors of one cell stay adjacent, as in the TFLite graph.
        scores = self.score(x).permute(0, 2, 3, 1).reshape(b, -1, 1)
        boxes = self.box(x).permute(0, 2, 3, 1).reshape(b, -1, self.num_coords)
        return boxes, scores


class PalmDetector(nn.Module):
    """Palm detector. ``forward(x [B,3,192,192] RGB in [0,1]) -> PalmOutput``.

    The input is the letterboxed (aspect-preserving, zero-padded) image resized to 192x192,
    float RGB in [0, 1] (the original graph has no normalisation layer).

    Args:
        variant: 'full' (4 blocks per stage) or 'lite' (3 blocks per stage).
    """

    input_size = 192

    def __init__(self, variant: str = "full") -> None:
        super().__init__()
        if variant not in PALM_VARIANTS:
            raise ValueError(f"unknown palm detector variant {variant!r}; use one of "
                             f"{sorted(PALM_VARIANTS)}")
        self.variant = variant
        depth = PALM_VARIANTS[variant]
        c = _STAGE_CHANNELS
        self.stem = nn.Sequential()
        self.stem.add_module("conv", SameConv2d(3, c[0], 5, stride=2))
        self.stem.add_module("act", PReLU(c[0]))
        self.stages = nn.ModuleList(
            [PalmStage(c[0], c[0], depth, downsample=False)]
            + [PalmStage(c[i - 1], c[i], depth, downsample=True) for i in range(1, 5)])
        self.up12 = TopDownLevel(c[4], c[3])  # 6 -> 12 px
        self.head12 = DetectionHead(c[3], num_anchors=6)
        self.up24 = TopDownLevel(c[3], c[2])  # 12 -> 24 px
        self.head24 = DetectionHead(c[2], num_anchors=2)

    def forward(self, x: torch.Tensor) -> PalmOutput:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"PalmDetector expects [B,3,192,192] RGB, got {tuple(x.shape)}")
        x = self.stem(x)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        f24, f12, f6 = feats[2], feats[3], feats[4]
        p12 = self.up12(f6, f12)
        boxes12, scores12 = self.head12(p12)
        p24 = self.up24(p12, f24)
        boxes24, scores24 = self.head24(p24)
        return PalmOutput(torch.cat([boxes24, boxes12], dim=1),
                          torch.cat([scores24, scores12], dim=1))
