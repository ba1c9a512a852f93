"""Zimmermann & Brox, "Learning to Estimate 3D Hand Pose from Single RGB Images", ICCV 2017,
written from the paper (not from its GPL code).

Three networks and a crop between them:

1. :class:`HandSegNet` (``'zb_handsegnet'``): a VGG-style encoder that predicts a 2-class
   (background / hand) map at 1/8 of the input size, upsampled bilinearly to the input size.
2. The mask-based crop (:func:`boxes_from_masks`, :func:`crop_images`): the largest connected
   component of the thresholded hand mask gives a square box (its extent, enlarged by
   ``margin``), which is cut out and resized to ``crop_size`` px. The box is computed without
   gradient (the paper does not back-propagate through it either); the crop is a bilinear
   ``grid_sample``, so gradients still reach the image.
3. :class:`PoseNet` (``'zb_posenet'``): a VGG-style encoder to 1/8 resolution and ``stages``
   convolutional-pose-machine stages, each predicting 21 score maps from the features and the
   previous stage's maps (intermediate supervision: every stage gets the score-map loss).
4. :class:`PosePrior` (``'zb_poseprior'``): from the 21 score maps and the handedness
   (one-hot right/left) two parallel streams (convolutions, then fully connected layers)
   predict canonical 3D coordinates ``w_c`` (21 x 3) and the viewpoint rotation ``R``
   (axis-angle, turned into a matrix).

:class:`ZimmermannBrox` (``'zimmermann_brox'``) composes them: image -> HandSegNet -> crop ->
PoseNet -> PosePrior, and returns the 2D joints in input pixels and the 3D joints relative to
the wrist in units of the reference bone (multiply by ``ref_bone_m`` for metres).

Canonical frame (:func:`to_canonical`; the paper's normalisation, with our joint order):

* translation: the wrist (joint 0) goes to the origin;
* scale: divided by the length of the reference bone, index MCP -> PIP (joints 5 -> 6), so
  that bone has length 1;
* mirror: left hands are mirrored (x -> -x) so that every canonical hand is a right hand
  (the handedness is also an input of PosePrior);
* rotation ``R``: the middle-finger MCP (joint 9) goes onto the +y axis and the pinky MCP
  (joint 17) into the x-y plane with x > 0. ``w_c = R @ (M @ w_rel / s)``.

Inverse: ``w_rel = s * M @ R^T @ w_c`` (:func:`from_canonical`), ``M = diag(-1, 1, 1)`` for
left hands, identity for right hands.

Pixel convention: integer coordinates are pixel centres (OpenCV / the training samples). A box
is ``(cx, cy, size)`` in input pixels; crop pixel ``i`` samples input coordinate
``cx + (i + 0.5 - crop_size / 2) * size / crop_size``.

Every network takes a ``width`` multiplier (channels scale with it) so that tiny
configurations run fast on a CPU for smoke tests.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..kinematics.rotations import axis_angle_to_matrix
from .registry import register_model

NUM_JOINTS = 21
ROOT_JOINT = 0
REF_BONE = (5, 6)  # index MCP -> PIP: the unit of length of the canonical frame
AXIS_JOINT = 9  # middle MCP: on +y in the canonical frame
PLANE_JOINT = 17  # pinky MCP: in the x-y plane, x > 0
# mean length of the reference bone of adult hands, metres (used to turn the canonical
# coordinates into metres at inference; the evaluation of the paper uses the true length)
DEFAULT_REF_BONE_M = 0.037
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


# ----------------------------------------------------------------------------- canonical frame
def _mirror_signs(side: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) side (1 right, 0 left) -> (B, 1, 3) signs of M (dtype and device of ``like``)."""
    sx = torch.where(side.reshape(-1).to(like.device) == 0, -1.0, 1.0).to(like.dtype)
    ones = torch.ones_like(sx)
    return torch.stack([sx, ones, ones], -1)[:, None, :]


def canonical_rotation(w: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """Rotation (B, 3, 3) taking joint 9 of ``w`` (B, 21, 3, wrist at the origin) onto +y and
    joint 17 into the x-y plane with x > 0 (rows: the canonical axes in the input frame)."""
    a = w[:, AXIS_JOINT]
    b = w[:, PLANE_JOINT]
    ey = a / a.norm(dim=-1, keepdim=True).clamp_min(eps)
    ez = torch.cross(b, a, dim=-1)
    ez = ez / ez.norm(dim=-1, keepdim=True).clamp_min(eps)
    ex = torch.cross(ey, ez, dim=-1)
    return torch.stack([ex, ey, ez], dim=1)


def to_canonical(joints: torch.Tensor, side: torch.Tensor, eps: float = 1e-9):
    """Canonical coordinates of 3D joints (B, 21, 3) (any metric frame, e.g. the camera's).

    Returns ``(w_c (B, 21, 3), R (B, 3, 3), scale (B,))`` with
    ``w_c = R @ (M @ (joints - joints[:, :1]) / scale)``; see the module docstring.
    """
    rel = joints - joints[:, ROOT_JOINT:ROOT_JOINT + 1]
    scale = (rel[:, REF_BONE[1]] - rel[:, REF_BONE[0]]).norm(dim=-1).clamp_min(eps)
    w = rel / scale[:, None, None] * _mirror_signs(side, joints)
    R = canonical_rotation(w, eps)
    return w @ R.transpose(1, 2), R, scale


def from_canonical(w_c: torch.Tensor, R: torch.Tensor, side: torch.Tensor,
                   scale: torch.Tensor | float = 1.0) -> torch.Tensor:
    """Inverse of :func:`to_canonical`: wrist-relative joints ``s * M @ R^T @ w_c``."""
    w = (w_c @ R) * _mirror_signs(side, w_c)
    if torch.is_tensor(scale):
        return w * scale.reshape(-1, 1, 1)
    return w * float(scale)


# ----------------------------------------------------------------------------- crops
def boxes_from_points(uv_px: torch.Tensor, margin: float = 1.5, min_size_px: float = 8.0
                      ) -> torch.Tensor:
    """Square boxes (B, 3) = (cx, cy, size) around points (B, N, 2) (e.g. 2D joints)."""
    lo = uv_px.min(1).values
    hi = uv_px.max(1).values
    c = 0.5 * (lo + hi)
    size = ((hi - lo).max(-1).values * margin).clamp_min(min_size_px)
    return torch.cat([c, size[:, None]], -1).detach()


@torch.no_grad()
def boxes_from_masks(hand_prob: torch.Tensor, threshold: float = 0.5, margin: float = 1.5,
                     min_size_frac: float = 0.25, min_pixels: int = 4) -> torch.Tensor:
    """Square boxes (B, 3) from hand probability maps (B, H, W): the extent of the largest
    connected component above ``threshold``, enlarged by ``margin``; at least ``min_size_frac``
    of the image side. Where no component has ``min_pixels`` pixels the whole image is used."""
    import cv2

    B, H, W = hand_prob.shape
    out = torch.empty(B, 3, dtype=torch.float32)
    masks = (hand_prob > threshold).to("cpu", torch.uint8).numpy()
    for i in range(B):
        n, labels, stats, _ = cv2.connectedComponentsWithStats(masks[i], connectivity=8)
        if n <= 1 or stats[1:, cv2.CC_STAT_AREA].max() < min_pixels:
            out[i] = torch.tensor([(W - 1) / 2, (H - 1) / 2, float(max(H, W))])
            continue
        k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        x, y, w, h = (float(stats[k, j]) for j in (cv2.CC_STAT_LEFT, cv2.CC_STAT_TOP,
                                                    cv2.CC_STAT_WIDTH, cv2.CC_STAT_HEIGHT))
        size = max(max(w, h) * margin, min_size_frac * max(H, W))
        out[i] = torch.tensor([x + (w - 1) / 2, y + (h - 1) / 2, size])
    return out.to(hand_prob.device)


def input_to_crop(uv_px: torch.Tensor, boxes: torch.Tensor, crop_size: int) -> torch.Tensor:
    """Input pixels (B, N, 2) -> crop pixels of :func:`crop_images`."""
    k = crop_size / boxes[:, 2:3]
    return (uv_px - boxes[:, None, :2]) * k[:, None] + (crop_size / 2 - 0.5)


def crop_to_input(uv_crop: torch.Tensor, boxes: torch.Tensor, crop_size: int) -> torch.Tensor:
    """Crop pixels (B, N, 2) -> input pixels (inverse of :func:`input_to_crop`)."""
    k = boxes[:, 2:3] / crop_size
    return (uv_crop - (crop_size / 2 - 0.5)) * k[:, None] + boxes[:, None, :2]


def crop_images(images: torch.Tensor, boxes: torch.Tensor, crop_size: int) -> torch.Tensor:
    """Cut square boxes (B, 3) out of images (B, C, H, W) -> (B, C, crop_size, crop_size),
    bilinear, zeros outside the image."""
    B, _, H, W = images.shape
    i = torch.arange(crop_size, dtype=images.dtype, device=images.device) + 0.5 - crop_size / 2
    step = (boxes[:, 2] / crop_size).to(images.dtype)
    u = boxes[:, 0:1].to(images.dtype) + i[None] * step[:, None]  # (B, S) input x of columns
    v = boxes[:, 1:2].to(images.dtype) + i[None] * step[:, None]
    gx = (2 * u + 1) / W - 1
    gy = (2 * v + 1) / H - 1
    grid = torch.stack([gx[:, None, :].expand(B, crop_size, crop_size),
                        gy[:, :, None].expand(B, crop_size, crop_size)], -1)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def decode_score_maps(maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Score maps (B, J, h, w) -> (uv (B, J, 2) in map pixels, peak score (B, J)).

    Arg-max, refined to sub-pixel by a parabola through the log-scores of the peak and its two
    neighbours along each axis (exact for a Gaussian peak; clamped to +-0.5 px)."""
    B, J, h, w = maps.shape
    flat = maps.reshape(B, J, h * w)
    peak, idx = flat.max(-1)
    py = torch.div(idx, w, rounding_mode="floor")
    px = idx - py * w
    pad = F.pad(maps, (1, 1, 1, 1), value=0.0)
    offs = torch.tensor([-1, 0, 1], device=maps.device)
    ys = (py[..., None, None] + 1 + offs[None, None, :, None]).expand(B, J, 3, 3)
    xs = (px[..., None, None] + 1 + offs[None, None, None, :]).expand(B, J, 3, 3)
    lin = (ys * (w + 2) + xs).reshape(B, J, 9)
    nb = pad.reshape(B, J, -1).gather(-1, lin).reshape(B, J, 3, 3)
    lg = torch.log(nb.clamp_min(1e-6))

    def vertex(a, c, b):  # parabola through (-1, a), (0, c), (1, b)
        den = a - 2 * c + b
        d = torch.where(den < -1e-9, 0.5 * (a - b) / den.clamp(max=-1e-9), torch.zeros_like(den))
        return d.clamp(-0.5, 0.5)

    dx = vertex(lg[..., 1, 0], lg[..., 1, 1], lg[..., 1, 2])
    dy = vertex(lg[..., 0, 1], lg[..., 1, 1], lg[..., 2, 1])
    uv = torch.stack([px.to(maps.dtype) + dx, py.to(maps.dtype) + dy], -1)
    return uv, peak


def map_to_crop(uv_map: torch.Tensor, map_size: int, crop_size: int) -> torch.Tensor:
    """Score-map pixels -> crop pixels (pixel centres at integers in both)."""
    return (uv_map + 0.5) * (crop_size / map_size) - 0.5


def crop_to_map(uv_crop: torch.Tensor, map_size: int, crop_size: int) -> torch.Tensor:
    return (uv_crop + 0.5) * (map_size / crop_size) - 0.5


# ----------------------------------------------------------------------------- networks
def _ch(c: int, width: float) -> int:
    return max(4, int(round(c * width)))


def _vgg(in_ch: int, blocks: Sequence[Sequence[int]], width: float) -> tuple[nn.Sequential, int]:
    """VGG-style stack: each block is a list of conv3x3+ReLU widths; a 2x2 max-pool follows
    every block but the last."""
    layers: list[nn.Module] = []
    c = in_ch
    for bi, block in enumerate(blocks):
        for out in block:
            o = _ch(out, width)
            layers += [nn.Conv2d(c, o, 3, padding=1), nn.ReLU(inplace=True)]
            c = o
        if bi < len(blocks) - 1:
            layers.append(nn.MaxPool2d(2, 2))
    return nn.Sequential(*layers), c


# paper: VGG-19-like front end to 1/8 resolution
_SEG_BLOCKS = ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512, 512))
_POSE_BLOCKS = ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512, 512, 512))


class _Normalize(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor(_MEAN).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).reshape(1, 3, 1, 1), persistent=False)

    def forward(self, x):
        return (x - self.mean) / self.std


class HandSegNet(nn.Module):
    """Image (B, 3, H, W) in [0, 1] -> hand/background logits (B, 2, H, W).

    H and W must be multiples of 8."""

    def __init__(self, width: float = 1.0):
        super().__init__()
        self.norm = _Normalize()
        self.encoder, c = _vgg(3, _SEG_BLOCKS, width)
        self.head = nn.Sequential(nn.Conv2d(c, _ch(512, width), 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(_ch(512, width), 2, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.encoder(self.norm(image)))
        return F.interpolate(logits, size=image.shape[-2:], mode="bilinear", align_corners=False)


class PoseNet(nn.Module):
    """Hand crop (B, 3, S, S) in [0, 1] -> list of ``stages`` score maps (B, 21, S/8, S/8).

    Stage 1 predicts from the image features; every further stage from the features and the
    previous stage's maps (7x7 convolutions for a large receptive field)."""

    def __init__(self, width: float = 1.0, stages: int = 3, stage_convs: int = 5,
                 num_joints: int = NUM_JOINTS):
        super().__init__()
        if stages < 1:
            raise ValueError(f"stages must be >= 1, got {stages}")
        self.norm = _Normalize()
        self.encoder, c = _vgg(3, _POSE_BLOCKS, width)
        f = _ch(128, width)
        self.features = nn.Sequential(nn.Conv2d(c, f, 3, padding=1), nn.ReLU(inplace=True))
        self.stage1 = nn.Sequential(nn.Conv2d(f, _ch(512, width), 1), nn.ReLU(inplace=True),
                                    nn.Conv2d(_ch(512, width), num_joints, 1))
        refine = []
        for _ in range(stages - 1):
            layers: list[nn.Module] = []
            ci = f + num_joints
            for _ in range(stage_convs):
                layers += [nn.Conv2d(ci, f, 7, padding=3), nn.ReLU(inplace=True)]
                ci = f
            layers += [nn.Conv2d(f, f, 1), nn.ReLU(inplace=True), nn.Conv2d(f, num_joints, 1)]
            refine.append(nn.Sequential(*layers))
        self.refine = nn.ModuleList(refine)

    def forward(self, crop: torch.Tensor) -> list[torch.Tensor]:
        feat = self.features(self.encoder(self.norm(crop)))
        maps = [self.stage1(feat)]
        for stage in self.refine:
            maps.append(stage(torch.cat([feat, maps[-1]], 1)))
        return maps


class _PriorStream(nn.Module):
    def __init__(self, num_joints: int, map_size: int, width: float, out_dim: int, dropout: float):
        super().__init__()
        chans = (32, 32, 64, 64, 128, 128)
        strides = (1, 2, 1, 2, 1, 2)
        layers: list[nn.Module] = []
        c, s = num_joints, map_size
        for o, st in zip(chans, strides):
            o = _ch(o, width)
            layers += [nn.Conv2d(c, o, 3, stride=st, padding=1), nn.LeakyReLU(0.01, inplace=True)]
            c, s = o, (s + st - 1) // st
        self.conv = nn.Sequential(*layers)
        hidden = _ch(512, width)
        self.fc = nn.Sequential(nn.Linear(c * s * s + 2, hidden), nn.LeakyReLU(0.01, inplace=True),
                                nn.Dropout(dropout), nn.Linear(hidden, hidden),
                                nn.LeakyReLU(0.01, inplace=True), nn.Dropout(dropout),
                                nn.Linear(hidden, out_dim))

    def forward(self, maps, hand_onehot):
        x = self.conv(maps).flatten(1)
        return self.fc(torch.cat([x, hand_onehot], 1))


class PosePrior(nn.Module):
    """Score maps (B, 21, m, m) + handedness (B,) (1 right, 0 left) ->
    ``{'coords_can': (B, 21, 3), 'rot_aa': (B, 3), 'rot': (B, 3, 3)}``."""

    def __init__(self, map_size: int = 32, width: float = 1.0, dropout: float = 0.2,
                 num_joints: int = NUM_JOINTS):
        super().__init__()
        self.map_size = int(map_size)
        self.num_joints = num_joints
        self.coords = _PriorStream(num_joints, self.map_size, width, num_joints * 3, dropout)
        self.view = _PriorStream(num_joints, self.map_size, width, 3, dropout)

    def forward(self, maps: torch.Tensor, side: torch.Tensor) -> dict:
        if maps.shape[-1] != self.map_size or maps.shape[-2] != self.map_size:
            raise ValueError(f"PosePrior expects {self.map_size}x{self.map_size} score maps, "
                             f"got {tuple(maps.shape[-2:])}")
        side = side.reshape(-1).to(maps.device)
        onehot = torch.stack([(side == 1), (side == 0)], 1).to(maps.dtype)
        coords = self.coords(maps, onehot).reshape(-1, self.num_joints, 3)
        aa = self.view(maps, onehot).float()
        with torch.autocast(device_type=maps.device.type, enabled=False):  # rotation in float32
            rot = axis_angle_to_matrix(aa)
        return {"coords_can": coords.float(), "rot_aa": aa, "rot": rot}


class ZimmermannBrox(nn.Module):
    """HandSegNet -> mask-based crop -> PoseNet -> PosePrior.

    ``forward(image, side, boxes=None, prior_maps=None)``: image (B, 3, H, W) in [0, 1]; side
    (B,) 1 right / 0 left; ``boxes`` (B, 3) overrides the mask-based crop (training: boxes from
    the ground-truth joints); ``prior_maps`` overrides the score maps PosePrior reads (training
    on ground-truth maps, as in the paper). Returns a dict:

    ``seg_logits`` (B, 2, H, W), ``boxes`` (B, 3), ``crop`` (B, 3, S, S), ``score_maps`` list of
    (B, 21, S/8, S/8), ``joints_2d`` (B, 21, 2) input pixels, ``joints_conf`` (B, 21) peak
    scores, ``coords_can`` (B, 21, 3), ``rot`` (B, 3, 3), ``rot_aa`` (B, 3), ``joints_rel``
    (B, 21, 3) wrist-relative in units of the reference bone, in the input's camera axes,
    ``joints_rel_m`` the same times ``ref_bone_m``.
    """

    def __init__(self, crop_size: int = 256, seg_width: float = 1.0, pose_width: float = 1.0,
                 prior_width: float = 1.0, stages: int = 3, stage_convs: int = 5,
                 crop_margin: float = 1.5, mask_threshold: float = 0.5,
                 ref_bone_m: float = DEFAULT_REF_BONE_M, dropout: float = 0.2):
        super().__init__()
        if crop_size % 8:
            raise ValueError(f"crop_size must be a multiple of 8, got {crop_size}")
        self.crop_size = int(crop_size)
        self.map_size = self.crop_size // 8
        self.crop_margin = float(crop_margin)
        self.mask_threshold = float(mask_threshold)
        self.ref_bone_m = float(ref_bone_m)
        self.handsegnet = HandSegNet(seg_width)
        self.posenet = PoseNet(pose_width, stages, stage_convs)
        self.poseprior = PosePrior(self.map_size, prior_width, dropout)

    def forward(self, image: torch.Tensor, side: torch.Tensor, boxes: torch.Tensor | None = None,
                prior_maps: torch.Tensor | None = None) -> dict:
        seg = self.handsegnet(image)
        if boxes is None:
            boxes = boxes_from_masks(seg.softmax(1)[:, 1], self.mask_threshold, self.crop_margin)
        boxes = boxes.to(image.device, image.dtype)
        crop = crop_images(image, boxes, self.crop_size)
        maps = self.posenet(crop)
        uv_map, conf = decode_score_maps(maps[-1].detach())
        uv = crop_to_input(map_to_crop(uv_map, self.map_size, self.crop_size), boxes, self.crop_size)
        prior = self.poseprior(maps[-1] if prior_maps is None else prior_maps, side)
        rel = from_canonical(prior["coords_can"], prior["rot"], side)
        return {"seg_logits": seg, "boxes": boxes, "crop": crop, "score_maps": maps,
                "joints_2d": uv, "joints_conf": conf, "coords_can": prior["coords_can"],
                "rot": prior["rot"], "rot_aa": prior["rot_aa"], "joints_rel": rel,
                "joints_rel_m": rel * self.ref_bone_m}


@register_model("zb_handsegnet")
def zb_handsegnet(width: float = 1.0) -> HandSegNet:
    return HandSegNet(width)


@register_model("zb_posenet")
def zb_posenet(width: float = 1.0, stages: int = 3, stage_convs: int = 5) -> PoseNet:
    return PoseNet(width, stages, stage_convs)


@register_model("zb_poseprior")
def zb_poseprior(map_size: int = 32, width: float = 1.0, dropout: float = 0.2) -> PosePrior:
    return PosePrior(map_size, width, dropout)


@register_model("zimmermann_brox")
def zimmermann_brox(**cfg) -> ZimmermannBrox:
    return ZimmermannBrox(**cfg)


__all__ = ["HandSegNet", "PoseNet", "PosePrior", "ZimmermannBrox", "to_canonical",
           "from_canonical", "canonical_rotation", "boxes_from_points", "boxes_from_masks",
           "crop_images", "input_to_crop", "crop_to_input", "decode_score_maps", "map_to_crop",
           "crop_to_map", "DEFAULT_REF_BONE_M", "REF_BONE"]
