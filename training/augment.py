"""Hand crops and training augmentations for common samples (:mod:`training.datasets.sample`).

    from training.augment import build_transform, AugmentedDataset
    tf = build_transform({"crop_size": 224, "flip_prob": 0.5}, train=True)
    crop = tf(sample, np.random.default_rng(0))        # a common sample, 224 x 224
    ds = AugmentedDataset(build_dataset("freihand", root, "train"), tf, seed=0)
    ds.set_epoch(3); ds[17]                             # same bits every time for (seed, 3, 17)

``build_transform(cfg, train)`` returns a :class:`SampleTransform`: ``transform(sample, rng)``
takes a full-image common sample and returns a common sample cropped to ``crop_size`` square
pixels around the hand, with ``K``, ``joints_2d``, ``mask``, ``depth_m`` and (for rotations
and flips) the 3D and MANO parameters changed consistently (:mod:`training.augment_geometry`).
With ``train=True`` the random augmentations run too, in this order:

1. geometry, composed into one warp: scale jitter, translation jitter, in-plane rotation
   (the 3D rotates about the optical axis), horizontal flip (3D x, K, MANO and ``side`` swap);
2. background replacement from the mask (samples without a mask are left alone);
3. clutter (occluding polygons; the mask loses what they cover);
4. colour jitter, Gaussian or motion blur, Gaussian noise (:mod:`training.augment_appearance`).

In a DataLoader worker the transform switches OpenCV to one thread (once per process).

All randomness comes from the ``numpy.random.Generator`` passed in, so the output is a pure
function of (sample, generator state): :func:`sample_rng` gives the generator for
``(seed, epoch, index)``, which makes data loading reproducible bit for bit across workers
and across a resumed run. ``train=False`` is deterministic without a generator (crop only).

Options (``cfg`` keys; unknown keys are an error; defaults in :data:`DEFAULTS`):

| key | default | meaning |
|---|---|---|
| ``crop_size`` | 224 | output side in pixels |
| ``crop_scale`` | 1.6 | crop side = this x the longest side of the joints' box |
| ``upright`` | True | rotate each crop so wrist -> middle MCP points up, like the estimator's ROIs |
| ``image_border`` | 'replicate' | 'replicate' or 'constant' (black) outside the image |
| ``scale_jitter`` | 0.15 | crop side x U(1 - j, 1 + j) |
| ``trans_jitter`` | 0.1 | crop centre + U(-j, j) x side, per axis of the crop |
| ``rot_deg`` | 20 | in-plane rotation U(-r, r) degrees (180 = any) |
| ``flip_prob`` | 0.0 | horizontal flip (the hand becomes the other side: enable only for models that handle both) |
| ``side`` | None | 'right' or 'left': mirror every hand of the other side (train and eval), e.g. for a right-hand MANO model; excludes ``flip_prob`` |
| ``color_prob`` / ``brightness`` / ``contrast`` / ``saturation`` / ``hue_deg`` | 0.8 / 0.3 / 0.3 / 0.3 / 8 | colour jitter |
| ``blur_prob`` / ``blur_sigma_max`` | 0.2 / 1.5 | Gaussian blur |
| ``motion_blur_prob`` / ``motion_blur_max_px`` | 0.1 / 9 | motion blur |
| ``noise_prob`` / ``noise_std_max`` | 0.2 / 0.03 | Gaussian noise (fraction of 255) |
| ``bg_prob`` / ``backgrounds`` | 0.0 / None | background replacement; folder of images or None = procedural |
| ``clutter_prob`` / ``clutter_max`` / ``clutter_size`` | 0.0 / 3 / [0.08, 0.3] | occluders (size: fraction of the crop) |
"""
from __future__ import annotations

import math
import os

import cv2
import numpy as np

from .augment_appearance import (
    BackgroundSource,
    add_clutter,
    color_jitter,
    gaussian_blur,
    gaussian_noise,
    motion_blur,
    replace_background,
)
from .augment_geometry import CropGeometry, apply_geometry, crop_affine, hand_box_q, upright_angle
from .datasets.sample import validate_sample

DEFAULTS: dict = {
    "crop_size": 224,
    "crop_scale": 1.6,
    "upright": True,
    "image_border": "replicate",
    "scale_jitter": 0.15,
    "trans_jitter": 0.1,
    "rot_deg": 20.0,
    "flip_prob": 0.0,
    "side": None,
    "color_prob": 0.8,
    "brightness": 0.3,
    "contrast": 0.3,
    "saturation": 0.3,
    "hue_deg": 8.0,
    "blur_prob": 0.2,
    "blur_sigma_max": 1.5,
    "motion_blur_prob": 0.1,
    "motion_blur_max_px": 9,
    "noise_prob": 0.2,
    "noise_std_max": 0.03,
    "bg_prob": 0.0,
    "backgrounds": None,
    "clutter_prob": 0.0,
    "clutter_max": 3,
    "clutter_size": (0.08, 0.3),
}

# Every random augmentation switched off: cfg overrides on top of this give one augmentation alone.
NO_RANDOM: dict = {
    "scale_jitter": 0.0, "trans_jitter": 0.0, "rot_deg": 0.0, "flip_prob": 0.0,
    "color_prob": 0.0, "blur_prob": 0.0, "motion_blur_prob": 0.0, "noise_prob": 0.0,
    "bg_prob": 0.0, "clutter_prob": 0.0,
}

_BORDERS = {"replicate": cv2.BORDER_REPLICATE, "constant": cv2.BORDER_CONSTANT}


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator for one sample of one epoch: independent streams, same bits on every run."""
    return np.random.default_rng([int(seed), int(epoch), int(index)])


# The process that imported this module. A DataLoader worker forked from it inherits the value;
# a spawned worker imports the module itself and gets its own pid here.
_IMPORT_PID = os.getpid()


def _set_opencv_threads_safely(n: int) -> None:
    """``cv2.setNumThreads(n)``, except in a process forked after the import: there OpenCV's
    thread pool was copied from the parent without its threads, and reconfiguring it can wait
    forever (seen here: a fork DataLoader worker hung in ``cv2.setNumThreads(1)``, one run in
    three). Forked workers keep the parent's setting; spawned workers get ``n``."""
    if os.getpid() == _IMPORT_PID:
        cv2.setNumThreads(n)


def worker_init(worker_id: int = 0) -> None:
    """``DataLoader(worker_init_fn=...)``: one OpenCV / torch thread per worker (the workers are
    the parallelism; more threads per worker only contend for the cores; OpenCV only in spawned
    workers, see :func:`_set_opencv_threads_safely`). Results do not depend on it."""
    _set_opencv_threads_safely(1)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass


_THREADS_SET_IN_PID = None


def _single_thread_in_workers() -> None:
    """Inside a spawned DataLoader worker process, OpenCV gets one thread (once per process; forked
    workers keep the parent's setting, see :func:`_set_opencv_threads_safely`): the workers are
    the parallelism, and OpenCV's default pool (one thread per core) in every worker of every
    rank only contends for the cores. The main process is left alone."""
    global _THREADS_SET_IN_PID
    pid = os.getpid()
    if _THREADS_SET_IN_PID == pid:
        return
    _THREADS_SET_IN_PID = pid
    try:
        from torch.utils.data import get_worker_info
    except ImportError:  # pragma: no cover - torch is a dependency
        return
    if get_worker_info() is not None:
        _set_opencv_threads_safely(1)


def _check_cfg(cfg: dict | None) -> dict:
    out = dict(DEFAULTS)
    if cfg:
        unknown = sorted(set(cfg) - set(DEFAULTS))
        if unknown:
            raise ValueError(f"unknown augmentation option(s) {unknown}; known: {sorted(DEFAULTS)}")
        out.update(cfg)
    if int(out["crop_size"]) < 8:
        raise ValueError(f"crop_size must be >= 8 pixels, got {out['crop_size']}")
    if float(out["crop_scale"]) <= 0:
        raise ValueError(f"crop_scale must be > 0, got {out['crop_scale']}")
    if out["image_border"] not in _BORDERS:
        raise ValueError(f"image_border must be one of {sorted(_BORDERS)}, got {out['image_border']!r}")
    for key in ("flip_prob", "color_prob", "blur_prob", "motion_blur_prob", "noise_prob",
                "bg_prob", "clutter_prob"):
        if not 0.0 <= float(out[key]) <= 1.0:
            raise ValueError(f"{key} must be a probability in [0, 1], got {out[key]}")
    if not 0.0 <= float(out["scale_jitter"]) < 1.0:
        raise ValueError(f"scale_jitter must be in [0, 1), got {out['scale_jitter']}")
    if out["side"] not in (None, "left", "right"):
        raise ValueError(f"side must be None, 'left' or 'right', got {out['side']!r}")
    if out["side"] is not None and float(out["flip_prob"]) > 0:
        raise ValueError("side (mirror hands to one side) and flip_prob (random flips) exclude each other")
    lo, hi = (float(x) for x in out["clutter_size"])
    if not 0 < lo <= hi:
        raise ValueError(f"clutter_size must be [min, max] with 0 < min <= max, got {out['clutter_size']}")
    return out


class SampleTransform:
    """Crop (+ augmentations when ``train``): ``transform(sample, rng=None) -> sample``.

    ``rng``: a ``numpy.random.Generator`` (or an int seed). Required when ``train`` is True.
    """

    def __init__(self, cfg: dict | None = None, train: bool = False):
        self.cfg = _check_cfg(cfg)
        self.train = bool(train)
        self.size = int(self.cfg["crop_size"])
        self.border = _BORDERS[self.cfg["image_border"]]
        self._backgrounds = None
        bgs = self.cfg["backgrounds"]
        if isinstance(bgs, (str, os.PathLike)) and not os.path.isdir(bgs):
            raise FileNotFoundError(f"background folder not found: {bgs} (augmentation option 'backgrounds')")

    @property
    def backgrounds(self) -> BackgroundSource:
        if self._backgrounds is None:  # built lazily: cheap to pickle into DataLoader workers
            self._backgrounds = BackgroundSource(self.cfg["backgrounds"])
        return self._backgrounds

    def geometry(self, sample: dict, rng: np.random.Generator | None) -> CropGeometry:
        c = self.cfg
        K = np.asarray(sample["K"], np.float64)
        j2 = np.asarray(sample["joints_2d"], np.float64)
        angle = upright_angle(j2, K) if c["upright"] else 0.0
        centre, extent = hand_box_q(j2, sample["visible"], K, angle)
        side = max(extent * float(c["crop_scale"]), 1.0)
        flip = False
        if self.train:
            side *= rng.uniform(1 - c["scale_jitter"], 1 + c["scale_jitter"])
            shift = rng.uniform(-c["trans_jitter"], c["trans_jitter"], 2) * side
            # shift is along the crop's axes: rotate it back into the source frame
            ca, sa = math.cos(angle), math.sin(angle)
            centre = centre + np.array([ca * shift[0] + sa * shift[1], -sa * shift[0] + ca * shift[1]])
            angle += math.radians(rng.uniform(-c["rot_deg"], c["rot_deg"]))
            flip = bool(rng.random() < c["flip_prob"])
        if c["side"] is not None:
            flip = sample["side"] != c["side"]
        return CropGeometry(centre_q=centre, side_q=side, angle_rad=angle, flip=flip)

    def __call__(self, sample: dict, rng: np.random.Generator | int | None = None) -> dict:
        _single_thread_in_workers()
        if self.train:
            if rng is None:
                raise ValueError("training augmentation needs a numpy Generator (see sample_rng)")
            if not isinstance(rng, np.random.Generator):
                rng = np.random.default_rng(rng)
        geom = self.geometry(sample, rng)
        M, R = crop_affine(geom, sample["K"], self.size)
        out = apply_geometry(sample, M, R, self.size, image_border=self.border)
        if self.train:
            self._appearance(out, rng)
        return validate_sample(out)

    def _appearance(self, out: dict, rng: np.random.Generator) -> None:
        c = self.cfg
        # one draw per decision, always in the same order, so the stream does not depend on
        # the sample's content (except for a missing mask, which skips the bg decision's use)
        do_bg, do_clutter, do_color, do_blur, do_motion, do_noise = (
            rng.random(6) < [c["bg_prob"], c["clutter_prob"], c["color_prob"], c["blur_prob"],
                             c["motion_blur_prob"], c["noise_prob"]])
        img = out["image"]
        mask = out.get("mask")
        if do_bg and mask is not None:
            img = replace_background(img, mask, self.backgrounds.sample(self.size, rng))
        if do_clutter:
            img, mask = add_clutter(img, mask, rng, joints_2d=out["joints_2d"],
                                    max_items=int(c["clutter_max"]),
                                    size_range=tuple(float(x) for x in c["clutter_size"]),
                                    backgrounds=self.backgrounds if c["backgrounds"] else None)
            if mask is not None:
                out["mask"] = mask
        if do_color:
            img = color_jitter(img, rng, brightness=c["brightness"], contrast=c["contrast"],
                               saturation=c["saturation"], hue_deg=c["hue_deg"])
        if do_blur:
            img = gaussian_blur(img, rng, sigma_max=c["blur_sigma_max"])
        if do_motion:
            img = motion_blur(img, rng, length_max=int(c["motion_blur_max_px"]))
        if do_noise:
            img = gaussian_noise(img, rng, std_max=c["noise_std_max"])
        out["image"] = np.ascontiguousarray(img)


def build_transform(cfg: dict | None = None, train: bool = False) -> SampleTransform:
    """The crop (+ training augmentations) described in the module docstring."""
    return SampleTransform(cfg, train)


class AugmentedDataset:
    """A map-style dataset (``torch.utils.data.Dataset`` protocol) of transformed samples.

    Item ``i`` of epoch ``e`` is ``transform(base[i], sample_rng(seed, e, i))``: the same bits in
    any worker, any number of workers, and after a resume. Call :meth:`set_epoch` every epoch
    (with ``DataLoader(persistent_workers=True)`` the workers keep the epoch they were started
    with: leave it False, or build the loader again each epoch).
    """

    def __init__(self, base, transform: SampleTransform, seed: int = 0):
        self.base = base
        self.transform = transform
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict:
        return self.transform(self.base[index], sample_rng(self.seed, self.epoch, index))


__all__ = ["DEFAULTS", "NO_RANDOM", "SampleTransform", "build_transform", "AugmentedDataset",
           "sample_rng", "worker_init"]
