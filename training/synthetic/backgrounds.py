"""Backgrounds for synthetic hands: procedural by default, a folder of user images as an option.

No background image set ships with the package (licences), so the default draws one of:
smooth colour noise, a gradient with random shapes and lines (clutter), or a rotated stripe /
checker texture, then sometimes blurs it. With ``folder`` set, a random square crop of a random
image from that folder (any size, read with OpenCV) is used instead.

Speed: drawing a procedural background or decoding a photo costs several milliseconds, more
than rendering the hand. :class:`BackgroundSource` therefore keeps a bank of
``bank_size`` larger (1.5 x) base images per process, each a deterministic function of
``(seed, slot)`` created on first use (or, for a folder, the slot's image decoded and reduced
once), and every sample takes a random crop of a random slot with a random flip / transpose,
channel order and brightness: cheap, and still a function of the sample's own random stream.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from hand_pose_core.frames import IMAGE_SUFFIXES, read_rgb

__all__ = ["BackgroundSource", "procedural_background"]


def _smooth_noise(rng, size):
    g = int(rng.integers(2, 12))
    small = rng.uniform(0, 255, size=(g, g, 3)).astype(np.float32)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)


def _gradient_clutter(rng, size):
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    t = np.linspace(0, 1, size, dtype=np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * t[None, :] + np.sin(angle) * t[:, None]
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    img = (c0 * (1 - ramp[..., None]) + c1 * ramp[..., None]).astype(np.float32)
    for _ in range(int(rng.integers(2, 12))):
        colour = tuple(float(x) for x in rng.uniform(0, 255, 3))
        kind = rng.integers(3)
        p = rng.integers(-size // 4, size + size // 4, 2)
        if kind == 0:
            q = p + rng.integers(8, size // 2, 2)
            cv2.rectangle(img, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), colour, -1)
        elif kind == 1:
            axes = rng.integers(5, size // 3, 2)
            cv2.ellipse(img, (int(p[0]), int(p[1])), (int(axes[0]), int(axes[1])),
                        float(rng.uniform(0, 180)), 0, 360, colour, -1)
        else:
            q = rng.integers(0, size, 2)
            cv2.line(img, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), colour,
                     int(rng.integers(1, 8)))
    return img


def _texture(rng, size):
    period = rng.uniform(6, 48)
    angle = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    a = (np.cos(angle) * xx + np.sin(angle) * yy) / period
    if rng.random() < 0.5:
        t = (np.floor(a) % 2).astype(np.float32)
    else:
        b = (-np.sin(angle) * xx + np.cos(angle) * yy) / period
        t = ((np.floor(a) + np.floor(b)) % 2).astype(np.float32)
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    return (c0 * (1 - t[..., None]) + c1 * t[..., None]).astype(np.float32)


def procedural_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random (size, size, 3) uint8 RGB background."""
    kind = rng.integers(3)
    img = (_smooth_noise, _gradient_clutter, _texture)[kind](rng, size)
    if rng.random() < 0.5:
        sigma = float(rng.uniform(0.5, 3.0))
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    return np.clip(img, 0, 255).astype(np.uint8)


class BackgroundSource:
    """Draws backgrounds: procedural (``folder=None``) or crops of the images in ``folder``.

    ``source(rng)`` returns a (size, size, 3) uint8 RGB image; see the module docstring.
    """

    def __init__(self, folder: str | Path | None = None, size: int = 256, seed: int = 0,
                 bank_size: int = 64):
        self.size = int(size)
        self.seed = int(seed)
        self.bank_size = int(bank_size)
        self.folder = None if folder is None else Path(folder)
        self.files: list[Path] = []
        if self.folder is not None:
            if not self.folder.is_dir():
                raise FileNotFoundError(f"background folder {self.folder} does not exist")
            self.files = sorted(p for p in self.folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            if not self.files:
                raise ValueError(f"background folder {self.folder} holds no images "
                                 f"({', '.join(sorted(IMAGE_SUFFIXES))})")
            self.bank_size = len(self.files) if len(self.files) < 4 * self.bank_size else self.bank_size
        self._bank: dict[int, np.ndarray] = {}

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_bank"] = {}
        return state

    def _base(self, slot: int, rng: np.random.Generator) -> np.ndarray:
        img = self._bank.get(slot)
        if img is not None:
            return img
        big = int(round(self.size * 1.5))
        if not self.files:
            img = procedural_background(np.random.default_rng([self.seed, 7919, slot]), big)
        else:
            # A folder larger than the bank: slots cycle through random images.
            path = self.files[slot if len(self.files) <= self.bank_size else int(rng.integers(len(self.files)))]
            photo = read_rgb(path)
            h, w = photo.shape[:2]
            f = big / min(h, w)
            img = cv2.resize(photo, (max(big, round(w * f)), max(big, round(h * f))),
                             interpolation=cv2.INTER_AREA)
            if len(self.files) > self.bank_size:
                return img  # not cached: every draw may pick another photo
        self._bank[slot] = img
        return img

    def __call__(self, rng: np.random.Generator) -> np.ndarray:
        base = self._base(int(rng.integers(self.bank_size)), rng)
        h, w = base.shape[:2]
        side = int(min(h, w) * rng.uniform(0.55, 1.0))
        y0 = int(rng.integers(0, h - side + 1))
        x0 = int(rng.integers(0, w - side + 1))
        out = cv2.resize(base[y0:y0 + side, x0:x0 + side], (self.size, self.size),
                         interpolation=cv2.INTER_LINEAR)
        k = int(rng.integers(8))
        if k & 3:
            out = cv2.flip(out, {1: 1, 2: 0, 3: -1}[k & 3])
        if k & 4:
            out = cv2.transpose(out)
        if not self.files:
            perm = rng.permutation(3)
            if np.any(perm != np.arange(3)):
                out = np.ascontiguousarray(out[..., perm])
        lut = np.clip(np.arange(256) * rng.uniform(0.7, 1.2) + rng.uniform(-15, 15), 0, 255)
        return cv2.LUT(out, lut.astype(np.uint8))
