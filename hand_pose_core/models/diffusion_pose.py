"""Conditional denoising diffusion over a hand's 3D pose, registered as ``'diffusion_pose'``.

Written from the paper (Ivashechkin, Mendez, Bowden, "Denoising Diffusion for 3D Hand Pose
Estimation from Images", arXiv 2308.09523) and from DDPM (Ho et al. 2020) / DDIM (Song et al.
2021); no code of theirs is used. Monocular depth is ambiguous, so instead of regressing one
3D hand the network learns to *denoise* 3D hands given the evidence: ResNet features of the hand
crop and the 2D joints with their confidences. Sampling several hypotheses from different noise
gives a spread that is an honest per-joint uncertainty.

What is diffused (``representation``):

* ``'joints'``: the 21 wrist-relative joints (metres, the crop's camera axes x right / y down /
  z forward), divided by ``joint_scale_m`` so that the data is roughly unit-sized; 63 values.
* ``'fk'``: the local joint rotations of :class:`~hand_pose_core.kinematics.forward_kinematics.
  ForwardKinematics21` as 6D rotations (21 x 6 values). Bone lengths are not diffused: a
  deterministic head predicts them from the condition (or the caller gives them, e.g. a user's
  measured hand), and every hypothesis goes through FK with those lengths, so the outputs
  *always* have exactly these bone lengths. Training targets come from the analytic IK.

Network: the condition ``c = MLP([resnet(crop), uv, conf])`` (computed once per hand, reused
over the sampling steps) plus a sinusoidal timestep embedding modulates (FiLM: scale and shift)
every residual block of an MLP denoiser over the flattened pose. ``prediction_type`` is the
diffusers name of the network's target: ``'v_prediction'`` (default), ``'epsilon'`` (the noise,
DDPM's original) or ``'sample'`` (x0). v-prediction is the default because few-step DDIM starts at
t = T-1 where the cosine schedule leaves sqrt(alpha_bar) ~ 5e-5: an epsilon network's x0 estimate
divides its error by that and the samples explode (measured: metres of error), while v stays
well-conditioned at every t.

Noise schedule and samplers are diffusers' ``DDPMScheduler`` (training: ``add_noise``) and
``DDIMScheduler`` (deterministic DDIM, eta = 0, ``timestep_spacing='trailing'`` so that even one
step starts from pure noise at t = T-1). :meth:`DiffusionPose.sample` also has a direct DDIM
implementation (``sampler='direct'``, same numbers to float rounding) used to measure what the
library costs (docs/benchmarks.md).

Hypotheses: ``sample(..., num_hypotheses=K, seed=s)`` draws K initial noises from a generator
seeded with ``s`` (same seed, same inputs -> the same hypotheses, bit for bit on the CPU). The
estimate is their mean; ``joints_std_m[j]`` is the root-mean-square distance of the K hypotheses
of joint j from their mean (metres; 0 for K = 1).

The ResNet is torchvision's, randomly initialised unless ``backbone_weights='imagenet'`` and the
ImageNet file is already in torch's hub cache (never downloaded here).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from hand_pose_core.kinematics.forward_kinematics import (
    TEMPLATE_JOINTS_M,
    ForwardKinematics21,
    bone_lengths,
)
from hand_pose_core.kinematics.rotations import matrix_to_rot6d
from hand_pose_core.skeleton import NUM_BONES, NUM_JOINTS

from .optional_deps import require
from .registry import register_model

__all__ = ["DiffusionPose", "DiffusionSample", "build_resnet_encoder", "timestep_embedding"]

_REPRESENTATIONS = {"joints": 3, "fk": 6}
_PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def build_resnet_encoder(name: str, backbone_weights: str = "none") -> tuple[nn.Module, int]:
    """torchvision ResNet without its classifier -> ``(module: (B,3,S,S) -> (B,F), F)``.

    ``backbone_weights``: ``'none'`` (random init) or ``'imagenet'``: load torchvision's ImageNet
    weights *if they are already in torch's hub cache*; otherwise random init (no download).
    """
    tvm = require("torchvision.models", "the diffusion_pose network's ResNet encoder")

    table = {
        "resnet18": (tvm.resnet18, tvm.ResNet18_Weights.IMAGENET1K_V1, 512),
        "resnet34": (tvm.resnet34, tvm.ResNet34_Weights.IMAGENET1K_V1, 512),
        "resnet50": (tvm.resnet50, tvm.ResNet50_Weights.IMAGENET1K_V2, 2048),
    }
    if name not in table:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(table)} or 'none'")
    if backbone_weights not in ("none", "imagenet"):
        raise ValueError(f"backbone_weights must be 'none' or 'imagenet', got {backbone_weights!r}")
    ctor, weights, dim = table[name]
    net = ctor(weights=None)
    if backbone_weights == "imagenet":
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        if cached.is_file():
            net.load_state_dict(torch.load(cached, map_location="cpu", weights_only=True))
    net.fc = nn.Identity()
    return net, dim


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding ``(B,) -> (B, dim)`` of (integer) diffusion timesteps."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, dim % 2))


class _FiLMBlock(nn.Module):
    """Pre-norm residual MLP block whose normalised input is scaled and shifted by the condition."""

    def __init__(self, width: int, cond_dim: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False)
        self.film = nn.Linear(cond_dim, 2 * width)
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)
        self.drop = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(c).chunk(2, dim=-1)
        y = self.norm(h) * (1 + scale) + shift
        y = self.fc2(self.drop(F.silu(self.fc1(F.silu(y)))))
        return h + y


@dataclass
class DiffusionSample:
    """Result of :meth:`DiffusionPose.sample` (B hands, K hypotheses).

    hypotheses_m: (B, K, 21, 3) wrist-relative joints, metres, crop camera axes.
    joints_rel_m: (B, 21, 3) their mean (the estimate).
    joints_std_m: (B, 21) RMS distance of the hypotheses from the mean per joint (metres).
    bone_lengths_m: (B, 20) the bone lengths used (``'fk'`` representation) or None.
    """

    hypotheses_m: torch.Tensor
    joints_rel_m: torch.Tensor
    joints_std_m: torch.Tensor
    bone_lengths_m: torch.Tensor | None = None


class DiffusionPose(nn.Module):
    """Denoiser ``eps/x0/v = f(x_t, t | crop, uv, conf)`` over a 3D hand pose (see module doc).

    Args (all plain data, stored in the model file):
        representation: ``'joints'`` or ``'fk'``.
        backbone: ``'resnet18'``/``'resnet34'``/``'resnet50'``, or ``'none'`` (2D joints only).
        backbone_weights: ``'none'`` or ``'imagenet'`` (only from torch's cache).
        crop_size_px: crop side the model is trained for (the estimator crops to it).
        width, depth, cond_dim, dropout: denoiser MLP size.
        joint_scale_m: divides wrist-relative joints (``'joints'``) so they are ~unit-sized.
        num_train_timesteps, beta_schedule, beta_start, beta_end: the DDPM noise schedule.
        prediction_type: ``'epsilon'``, ``'sample'`` or ``'v_prediction'``.
        num_inference_steps: default DDIM steps at run time (4-10 are the intended range).
    """

    def __init__(
        self,
        representation: str = "joints",
        backbone: str = "resnet18",
        backbone_weights: str = "none",
        crop_size_px: int = 128,
        width: int = 512,
        depth: int = 4,
        cond_dim: int = 256,
        dropout: float = 0.0,
        joint_scale_m: float = 0.1,
        num_train_timesteps: int = 1000,
        beta_schedule: str = "squaredcos_cap_v2",
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        prediction_type: str = "v_prediction",
        num_inference_steps: int = 8,
    ):
        super().__init__()
        if representation not in _REPRESENTATIONS:
            raise ValueError(f"representation must be one of {sorted(_REPRESENTATIONS)}, got {representation!r}")
        if prediction_type not in _PREDICTION_TYPES:
            raise ValueError(f"prediction_type must be one of {_PREDICTION_TYPES}, got {prediction_type!r}")
        if joint_scale_m <= 0:
            raise ValueError(f"joint_scale_m must be positive, got {joint_scale_m}")
        if not 1 <= int(num_inference_steps) <= int(num_train_timesteps):
            raise ValueError(f"num_inference_steps must be in [1, {num_train_timesteps}], got {num_inference_steps}")
        self.representation = representation
        self.crop_size_px = int(crop_size_px)
        self.joint_scale_m = float(joint_scale_m)
        self.prediction_type = prediction_type
        self.num_train_timesteps = int(num_train_timesteps)
        self.num_inference_steps = int(num_inference_steps)
        self.pose_dim = NUM_JOINTS * _REPRESENTATIONS[representation]
        self._sched_cfg = dict(num_train_timesteps=self.num_train_timesteps, beta_schedule=beta_schedule,
                               beta_start=float(beta_start), beta_end=float(beta_end),
                               prediction_type=prediction_type, clip_sample=False)

        if backbone == "none":
            self.encoder, feat_dim = None, 0
        else:
            self.encoder, feat_dim = build_resnet_encoder(backbone, backbone_weights)
        self.register_buffer("img_mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("img_std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        kp_dim = NUM_JOINTS * 3
        self.cond_mlp = nn.Sequential(
            nn.Linear(feat_dim + kp_dim, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim))
        self.time_mlp = nn.Sequential(nn.Linear(cond_dim, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim))
        self.inp = nn.Linear(self.pose_dim, width)
        self.blocks = nn.ModuleList(_FiLMBlock(width, cond_dim, dropout) for _ in range(depth))
        self.out_norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, self.pose_dim)
        self.cond_dim = cond_dim

        if representation == "fk":
            self.fk = ForwardKinematics21()
            ref = torch.as_tensor(bone_lengths(TEMPLATE_JOINTS_M), dtype=torch.float32)
            self.register_buffer("ref_bone_lengths_m", ref, persistent=False)
            self.bone_head = nn.Linear(cond_dim, NUM_BONES)
            nn.init.zeros_(self.bone_head.weight)
            nn.init.zeros_(self.bone_head.bias)
        else:
            self.fk = None
            self.bone_head = None

        DDPMScheduler = require("diffusers", "the diffusion_pose network").DDPMScheduler

        self.train_scheduler = DDPMScheduler(**self._sched_cfg)
        self.register_buffer("alphas_cumprod", self.train_scheduler.alphas_cumprod.clone().float(), persistent=False)
        self._ddim: dict[int, object] = {}

    # ----------------------------------------------------------------- pose <-> diffusion space
    def encode_pose(self, joints_rel_m: torch.Tensor) -> torch.Tensor:
        """Wrist-relative joints ``(B, 21, 3)`` (metres) -> clean diffusion sample x0 ``(B, D)``."""
        if self.representation == "joints":
            return (joints_rel_m / self.joint_scale_m).flatten(1)
        _, R, _ = self.fk.inverse_kinematics(joints_rel_m)
        return matrix_to_rot6d(R).flatten(1)

    def decode_pose(self, x0: torch.Tensor, bone_lengths_m: torch.Tensor | None = None) -> torch.Tensor:
        """Diffusion sample ``(B, D)`` -> wrist-relative joints ``(B, 21, 3)`` in metres.

        ``'fk'`` needs ``bone_lengths_m (B, 20)``: the output then has exactly these bone lengths.
        """
        if self.representation == "joints":
            return x0.view(-1, NUM_JOINTS, 3) * self.joint_scale_m
        if bone_lengths_m is None:
            raise ValueError("the 'fk' representation needs bone_lengths_m to decode a pose")
        return self.fk(bone_lengths_m, x0.view(-1, NUM_JOINTS, 6))

    # ----------------------------------------------------------------- network
    def condition(self, image: torch.Tensor, joints_2d_px: torch.Tensor, joints_conf: torch.Tensor) -> torch.Tensor:
        """Per-hand condition ``(B, cond_dim)`` from the crop ``(B, 3, S, S)`` in [0, 1], the 2D
        joints ``(B, 21, 2)`` in crop pixels and their confidences ``(B, 21)`` in [0, 1]."""
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"image must be (B, 3, S, S), got {tuple(image.shape)}")
        B, S = image.shape[0], image.shape[-1]
        if joints_2d_px.shape != (B, NUM_JOINTS, 2) or joints_conf.shape != (B, NUM_JOINTS):
            raise ValueError(f"joints_2d_px must be ({B}, 21, 2) and joints_conf ({B}, 21); got "
                             f"{tuple(joints_2d_px.shape)} and {tuple(joints_conf.shape)}")
        conf = joints_conf.clamp(0, 1)
        uv = (joints_2d_px / S) * 2.0 - 1.0
        uv = uv * (conf[..., None] > 0)  # joints the detector gave up on carry no position
        parts = [uv.flatten(1), conf]
        if self.encoder is not None:
            parts.insert(0, self.encoder((image - self.img_mean) / self.img_std))
        return self.cond_mlp(torch.cat(parts, dim=1))

    def denoise(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Network output (noise, x0 or v per ``prediction_type``) for ``x_t (B, D)`` at ``t (B,)``."""
        c = F.silu(cond + self.time_mlp(timestep_embedding(t, self.cond_dim)))
        h = self.inp(x_t)
        for blk in self.blocks:
            h = blk(h, c)
        return self.out(F.silu(self.out_norm(h)))

    def forward(self, x_t, t, image, joints_2d_px, joints_conf) -> dict:
        """Training step in one call (so DistributedDataParallel sees every parameter used):
        ``{'out': denoiser output (B, D), 'bone_lengths_m': (B, 20) ('fk') or None}``."""
        cond = self.condition(image, joints_2d_px, joints_conf)
        lengths = self.predict_bone_lengths(cond) if self.bone_head is not None else None
        return {"out": self.denoise(x_t, t, cond), "bone_lengths_m": lengths}

    def predict_bone_lengths(self, cond: torch.Tensor) -> torch.Tensor:
        """``'fk'`` only: bone lengths ``(B, 20)`` in metres (template lengths x exp(head))."""
        if self.bone_head is None:
            raise ValueError("bone lengths are predicted only by the 'fk' representation")
        return self.ref_bone_lengths_m * torch.exp(self.bone_head(cond).clamp(-1.5, 1.5))

    # ----------------------------------------------------------------- diffusion maths
    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """DDPM forward process q(x_t | x0) (diffusers' ``DDPMScheduler.add_noise``)."""
        return self.train_scheduler.add_noise(x0, noise, t)

    def training_target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """What the network must output at ``x_t = add_noise(x0, noise, t)``."""
        if self.prediction_type == "epsilon":
            return noise
        if self.prediction_type == "sample":
            return x0
        return self.train_scheduler.get_velocity(x0, noise, t)

    def predicted_x0(self, out: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The clean sample implied by a network output at ``(x_t, t)``."""
        a = self.alphas_cumprod.to(x_t.device)[t].view(-1, 1)
        if self.prediction_type == "epsilon":
            return (x_t - (1 - a).sqrt() * out) / a.sqrt()
        if self.prediction_type == "sample":
            return out
        return a.sqrt() * x_t - (1 - a).sqrt() * out

    def ddim_scheduler(self, num_steps: int):
        """A cached diffusers ``DDIMScheduler`` with ``num_steps`` timesteps set (trailing spacing)."""
        sch = self._ddim.get(num_steps)
        if sch is None:
            DDIMScheduler = require("diffusers", "the diffusion_pose network").DDIMScheduler

            sch = DDIMScheduler(**self._sched_cfg, set_alpha_to_one=True, timestep_spacing="trailing")
            sch.set_timesteps(num_steps)
            self._ddim[num_steps] = sch
        return sch

    @torch.no_grad()
    def sample(
        self,
        image: torch.Tensor,
        joints_2d_px: torch.Tensor,
        joints_conf: torch.Tensor | None = None,
        *,
        num_hypotheses: int = 1,
        num_steps: int | None = None,
        seed: int | None = 0,
        generator: torch.Generator | None = None,
        bone_lengths_m: torch.Tensor | None = None,
        sampler: str = "diffusers",
    ) -> DiffusionSample:
        """Draw ``num_hypotheses`` hands per input with deterministic DDIM in ``num_steps`` steps.

        ``seed`` (or an explicit ``generator``) fixes the initial noise: same inputs + same seed
        -> same hypotheses. ``bone_lengths_m (B, 20)`` overrides the predicted lengths (``'fk'``).
        ``sampler``: ``'diffusers'`` (DDIMScheduler.step) or ``'direct'`` (the same update written
        out, for measuring the library's overhead).
        """
        if sampler not in ("diffusers", "direct"):
            raise ValueError(f"sampler must be 'diffusers' or 'direct', got {sampler!r}")
        K = int(num_hypotheses)
        if K < 1:
            raise ValueError(f"num_hypotheses must be >= 1, got {num_hypotheses}")
        steps = self.num_inference_steps if num_steps is None else int(num_steps)
        if not 1 <= steps <= self.num_train_timesteps:
            raise ValueError(f"num_steps must be in [1, {self.num_train_timesteps}], got {num_steps}")
        B = image.shape[0]
        if joints_conf is None:
            joints_conf = torch.ones(B, NUM_JOINTS, dtype=image.dtype, device=image.device)
        cond = self.condition(image, joints_2d_px, joints_conf)
        lengths = None
        if self.representation == "fk":
            lengths = self.predict_bone_lengths(cond) if bone_lengths_m is None else bone_lengths_m.to(cond)
            if lengths.shape != (B, NUM_BONES):
                raise ValueError(f"bone_lengths_m must be ({B}, 20), got {tuple(lengths.shape)}")
        cond_k = cond.repeat_interleave(K, dim=0)
        if generator is None and seed is not None:
            generator = torch.Generator(device="cpu").manual_seed(int(seed))
        x = torch.randn(B * K, self.pose_dim, generator=generator).to(cond.device, cond.dtype)
        sch = self.ddim_scheduler(steps)
        timesteps = [int(t) for t in sch.timesteps]
        for t in timesteps:
            tt = torch.full((B * K,), t, dtype=torch.long, device=x.device)
            out = self.denoise(x, tt, cond_k)
            if sampler == "diffusers":
                x = sch.step(out, t, x, eta=0.0).prev_sample
            else:
                x0 = self.predicted_x0(out, x, tt)
                a = self.alphas_cumprod[t]
                eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
                prev_t = t - self.num_train_timesteps // steps  # diffusers' DDIM rule
                a_prev = self.alphas_cumprod[prev_t] if prev_t >= 0 else x.new_tensor(1.0)
                x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
        lengths_k = None if lengths is None else lengths.repeat_interleave(K, dim=0)
        hyp = self.decode_pose(x, lengths_k).view(B, K, NUM_JOINTS, 3)
        mean = hyp.mean(dim=1)
        std = (hyp - mean[:, None]).pow(2).sum(-1).mean(dim=1).sqrt()
        return DiffusionSample(hypotheses_m=hyp, joints_rel_m=mean, joints_std_m=std, bone_lengths_m=lengths)

    @torch.no_grad()
    def lift_crops(self, crops_rgb, joints_2d_crop_px, joints_conf=None, *, num_hypotheses: int = 1,
                   num_steps: int | None = None, seed: int | None = 0) -> dict:
        """Estimator-side call on numpy crops: ``crops_rgb (N, S, S, 3) uint8``, the landmark
        network's 2D joints ``(N, 21, 2)`` in *continuous* crop pixels (pixel j spans [j, j+1),
        the estimator's convention; training samples put pixel centres at integers, hence the
        0.5 shift) and their confidences ``(N, 21)`` (default 1). Returns numpy
        ``joints_rel_m (N, 21, 3)``, ``joints_std_m (N, 21)`` and ``hypotheses_m (N, K, 21, 3)``."""
        import numpy as np

        crops = np.asarray(crops_rgb)
        S = self.crop_size_px
        if crops.ndim != 4 or crops.shape[1:] != (S, S, 3) or crops.dtype != np.uint8:
            raise ValueError(f"crops must be (N, {S}, {S}, 3) uint8, got {crops.dtype} {crops.shape}")
        if joints_2d_crop_px is None:
            raise ValueError("the diffusion lift conditions on the 2D joints of the landmark network; none were given")
        uv = np.asarray(joints_2d_crop_px, np.float32)
        N = len(crops)
        if uv.shape != (N, NUM_JOINTS, 2) or not np.all(np.isfinite(uv)):
            raise ValueError(f"joints_2d_crop_px must be finite ({N}, 21, 2), got {uv.shape}")
        conf = np.ones((N, NUM_JOINTS), np.float32) if joints_conf is None else np.asarray(joints_conf, np.float32)
        if conf.shape != (N, NUM_JOINTS):
            raise ValueError(f"joints_conf must be ({N}, 21), got {conf.shape}")
        dev = self.alphas_cumprod.device
        x = torch.from_numpy(crops).to(dev).permute(0, 3, 1, 2).float().div_(255.0)
        s = self.sample(x, torch.from_numpy(uv - 0.5).to(dev), torch.from_numpy(conf).to(dev),
                        num_hypotheses=num_hypotheses, num_steps=num_steps, seed=seed)
        return {"joints_rel_m": s.joints_rel_m.float().cpu().numpy(),
                "joints_std_m": s.joints_std_m.float().cpu().numpy(),
                "hypotheses_m": s.hypotheses_m.float().cpu().numpy()}


@register_model("diffusion_pose")
def diffusion_pose(**cfg) -> DiffusionPose:
    return DiffusionPose(**cfg)


def _register_lifter() -> None:
    """Register the estimator-side lifter (hand_pose_core.pipeline.diffusion_lifter) when the
    lifter interface (hand_pose_core.pipeline.lifters) exists in this tree."""
    import importlib

    try:
        importlib.import_module("hand_pose_core.pipeline.diffusion_lifter")
    except ModuleNotFoundError as err:
        if err.name != "hand_pose_core.pipeline.lifters":
            raise


_register_lifter()
