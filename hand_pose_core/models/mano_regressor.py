"""MANO regressor (``'mano_regressor'``): a ResNet encoder regressing MANO pose, shape and a
weak-perspective camera from a hand crop, decoded through our :class:`~hand_pose_core.mano.ManoLayer`.

After Boukhayma, Bem, Torr, "3D Hand Shape and Pose from Images in the Wild", CVPR 2019
(ResNet encoder -> MANO parameters + weak-perspective camera, 2D/3D joint losses and
regularisers), written from the paper.

Input: a square hand crop ``(B, 3, S, S)``, RGB in [0, 1] (normalised inside with the ImageNet
statistics), and optionally ``side`` (B,) (1 right, 0 left). One right-hand MANO model serves
both sides: left-hand crops are flipped horizontally, regressed as right hands, and the
outputs are mirrored back (x -> -x in 3D, u -> S - 1 - u in 2D). The vertex ids of a mirrored
right mesh match the left model's.

Outputs (dict):

* ``pose`` (B, 3 + ncomps) or (B, 48): MANO axis-angle global rotation + PCA coefficients (or
  the full 45 finger values), of the right-hand model (of the flipped crop for left hands);
* ``shape`` (B, 10) betas; ``cam`` (B, 3) = (s, tx, ty) weak-perspective camera;
* ``joints_rel_m`` (B, 21, 3) and ``verts_rel_m`` (B, 778, 3): metres, relative to the wrist,
  in the crop's camera axes (x right, y down, z forward);
* ``joints_2d`` (B, 21, 2): crop pixels (pixel centres at integers), the weak-perspective
  projection ``uv = (s * X[:, :2] + (tx, ty) + 1) * S / 2 - 0.5``: ``s`` maps metres to the
  crop's normalised [-1, 1] coordinates, ``(tx, ty)`` is where the wrist projects.

``s`` is predicted as ``cam_scale_prior * exp(raw)`` so the initial guess (a ~0.2 m hand
filling most of the crop) is sensible. ManoLayer is called with ``trans=None`` and the output
is made root-relative here, so its ``trans`` semantics do not matter.

Encoder weights: torchvision ``resnet18/34/50``. With ``pretrained=True`` the ImageNet weights
are loaded only when they are already in the torch hub cache (``torch.hub.get_dir()/checkpoints``);
nothing is ever downloaded: otherwise the encoder starts from random weights (and says so in
``self.pretrained_source``).
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn as nn

from .optional_deps import require
from .registry import register_model

_LOG = logging.getLogger(__name__)
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)
_ARCHS = ("resnet18", "resnet34", "resnet50")


def cached_imagenet_weights(arch: str) -> Path | None:
    """Path of torchvision's ImageNet checkpoint for ``arch`` in the torch hub cache, or None.
    Never downloads."""
    tvm = require("torchvision.models", "the mano_regressor network")

    enum = {"resnet18": tvm.ResNet18_Weights, "resnet34": tvm.ResNet34_Weights,
            "resnet50": tvm.ResNet50_Weights}[arch]
    url = enum.IMAGENET1K_V1.url
    p = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    return p if p.is_file() else None


def _resnet(arch: str, pretrained: bool) -> tuple[nn.Module, int, str]:
    tvm = require("torchvision.models", "the mano_regressor network's ResNet encoder")

    if arch not in _ARCHS:
        raise ValueError(f"backbone must be one of {_ARCHS}, got {arch!r}")
    net = getattr(tvm, arch)(weights=None)
    source = "random"
    if pretrained:
        path = cached_imagenet_weights(arch)
        if path is None:
            _LOG.info("%s: no ImageNet weights in the torch hub cache; random initialisation", arch)
        else:
            try:
                net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
                source = f"imagenet:{path}"
            except Exception as err:  # a damaged cache file: say so and train from scratch
                _LOG.warning("could not load cached ImageNet weights %s (%s); random init", path, err)
    feat = net.fc.in_features
    net.fc = nn.Identity()
    return net, feat, source


class ManoRegressor(nn.Module):
    """See the module docstring. Constructor arguments (plain data, for YAML configs):

    backbone: 'resnet18' | 'resnet34' | 'resnet50'; pretrained: use cached ImageNet weights;
    use_pca / ncomps: PCA finger pose (``ncomps`` coefficients) or the full 45 values;
    flat_hand_mean: ManoLayer's convention for the finger pose; hidden: MLP width;
    mano_root: folder/file of the official MANO model (None: the licence-free synthetic model);
    cam_scale_prior: initial weak-perspective scale (normalised crop units per metre);
    width: channel multiplier of the encoder for tiny test configurations (1.0: torchvision's
    exact architecture; below 1 a small ResNet-like encoder of the same layout).
    """

    def __init__(self, backbone: str = "resnet18", pretrained: bool = True, use_pca: bool = True,
                 ncomps: int = 12, flat_hand_mean: bool = False, hidden: int = 512,
                 mano_root: str | None = None, cam_scale_prior: float = 8.0, width: float = 1.0):
        super().__init__()
        from ..mano import ManoLayer, synthetic_mano

        if width == 1.0:
            self.encoder, feat, self.pretrained_source = _resnet(backbone, pretrained)
        else:
            self.encoder, feat = _tiny_encoder(width)
            self.pretrained_source = "random"
        self.register_buffer("mean", torch.tensor(_MEAN).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).reshape(1, 3, 1, 1), persistent=False)
        model = None if mano_root else synthetic_mano("right")
        self.mano = ManoLayer(center_idx=None, flat_hand_mean=flat_hand_mean, ncomps=ncomps,
                              side="right", mano_root=mano_root or "mano/models", use_pca=use_pca,
                              model=model)
        # the MANO model comes from its own file at construction (possibly licensed): its
        # buffers are not part of the trained weights file
        for name, buf in list(self.mano._buffers.items()):
            self.mano.register_buffer(name, buf, persistent=False)
        self.n_pose = self.mano.pose_size()
        self.cam_scale_prior = float(cam_scale_prior)
        self.head = nn.Sequential(nn.Linear(feat, hidden), nn.ReLU(inplace=True),
                                  nn.Linear(hidden, hidden), nn.ReLU(inplace=True))
        self.out = nn.Linear(hidden, self.n_pose + 10 + 3)
        nn.init.normal_(self.out.weight, std=1e-3)
        nn.init.zeros_(self.out.bias)

    def forward(self, image: torch.Tensor, side: torch.Tensor | None = None) -> dict:
        B, _, H, W = image.shape
        left = None
        if side is not None:
            left = side.reshape(-1).to(image.device) == 0
            image = torch.where(left[:, None, None, None], image.flip(-1), image)
        x = self.out(self.head(self.encoder((image - self.mean) / self.std)))
        pose = x[:, :self.n_pose]
        shape = x[:, self.n_pose:self.n_pose + 10]
        c = x[:, self.n_pose + 10:]
        c = c.float()
        cam = torch.stack([self.cam_scale_prior * torch.exp(c[:, 0].clamp(-5, 5)), c[:, 1], c[:, 2]], -1)
        with torch.autocast(device_type=image.device.type, enabled=False):  # MANO in float32
            verts_mm, joints_mm = self.mano(pose.float(), shape.float())
        root = joints_mm[:, :1]
        joints = (joints_mm - root) * 1e-3
        verts = (verts_mm - root) * 1e-3
        uv = (cam[:, None, :1] * joints[..., :2] + cam[:, None, 1:] + 1.0) * (W / 2.0) - 0.5
        if left is not None:
            sx = torch.where(left, -1.0, 1.0).to(joints.dtype)[:, None, None]
            joints = torch.cat([joints[..., :1] * sx, joints[..., 1:]], -1)
            verts = torch.cat([verts[..., :1] * sx, verts[..., 1:]], -1)
            u = torch.where(left[:, None], (W - 1) - uv[..., 0], uv[..., 0])
            uv = torch.stack([u, uv[..., 1]], -1)
        return {"pose": pose, "shape": shape, "cam": cam, "joints_rel_m": joints,
                "verts_rel_m": verts, "joints_2d": uv}


def _tiny_encoder(width: float) -> tuple[nn.Module, int]:
    """A small ResNet-layout encoder (stem + 4 stages of one basic block, strides 2) for tests."""
    BasicBlock = require("torchvision.models.resnet", "the mano_regressor network").BasicBlock

    c = [max(8, int(round(ch * width))) for ch in (64, 128, 256, 512)]
    layers: list[nn.Module] = [nn.Conv2d(3, c[0], 7, 2, 3, bias=False), nn.BatchNorm2d(c[0]),
                               nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)]
    cin = c[0]
    for i, co in enumerate(c):
        stride = 1 if i == 0 else 2
        down = None
        if stride != 1 or cin != co:
            down = nn.Sequential(nn.Conv2d(cin, co, 1, stride, bias=False), nn.BatchNorm2d(co))
        layers.append(BasicBlock(cin, co, stride, down))
        cin = co
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), cin


@register_model("mano_regressor")
def mano_regressor(**cfg) -> ManoRegressor:
    return ManoRegressor(**cfg)


__all__ = ["ManoRegressor", "cached_imagenet_weights"]
