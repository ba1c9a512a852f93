"""Appearance augmentations: they change pixels only, never the geometry (K, 2D, 3D).

Each function takes the crop (``image`` (S, S, 3) uint8 RGB, ``mask`` (S, S) uint8 or None) and
a ``numpy.random.Generator`` and returns new arrays; all randomness comes from that generator, so
a transform is reproducible bit for bit from the generator's state.

* :func:`color_jitter`: brightness, contrast, saturation (scale factors) and hue (degrees).
* :func:`gaussian_blur`, :func:`motion_blur`, :func:`gaussian_noise`.
* :func:`replace_background`: pixels outside the hand mask come from a background (an image
  from :class:`BackgroundSource` or a procedural texture). Mask unchanged.
* :func:`add_clutter`: random polygons (flat colour or background texture) pasted over the
  crop, some of them near the hand; the mask loses the covered pixels (the mask means "this
  hand is seen here"). The joints' ``visible`` flags are left as they are: the labels are
  still true, only the evidence is hidden (as for self-occlusion in the datasets).
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def color_jitter(image: np.ndarray, rng: np.random.Generator, *, brightness: float = 0.3,
                 contrast: float = 0.3, saturation: float = 0.3, hue_deg: float = 8.0) -> np.ndarray:
    """Random brightness/contrast/saturation factors in ``1 +- x`` and a hue shift in ``+-hue_deg``.

    Hue and saturation act in HSV (OpenCV's full-range hue, 256 steps per turn); brightness b and
    contrast c then map every value v to ``(b v - m) c + m`` with m the mean after brightness.
    All three are look-up tables on uint8 values (fast).
    """
    b = rng.uniform(1 - brightness, 1 + brightness)
    c = rng.uniform(1 - contrast, 1 + contrast)
    s = rng.uniform(1 - saturation, 1 + saturation)
    h = rng.uniform(-hue_deg, hue_deg)
    v = np.arange(256, dtype=np.float64)
    img = image
    if hue_deg > 0 or saturation > 0:
        lut = np.empty((1, 256, 3), np.uint8)
        lut[0, :, 0] = np.mod(np.round(v + h * 256.0 / 360.0), 256).astype(np.uint8)
        lut[0, :, 1] = np.clip(np.round(v * s), 0, 255).astype(np.uint8)
        lut[0, :, 2] = v.astype(np.uint8)
        hsv = cv2.LUT(cv2.cvtColor(img, cv2.COLOR_RGB2HSV_FULL), lut)
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB_FULL)
    m = b * float(np.mean(cv2.mean(img)[:3]))
    lut1 = np.clip(np.round((v * b - m) * c + m), 0, 255).astype(np.uint8)
    return cv2.LUT(img, lut1)


def gaussian_blur(image: np.ndarray, rng: np.random.Generator, *, sigma_max: float = 1.5) -> np.ndarray:
    sigma = rng.uniform(0.1, sigma_max)
    return cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma)


def motion_blur(image: np.ndarray, rng: np.random.Generator, *, length_max: int = 9) -> np.ndarray:
    """Blur along a random direction with a line kernel of random length (3..length_max px)."""
    n = int(rng.integers(3, max(3, length_max) + 1))
    angle = rng.uniform(0, np.pi)
    k = np.zeros((n, n), np.float32)
    c = (n - 1) / 2
    d = np.array([np.cos(angle), np.sin(angle)]) * c
    cv2.line(k, (int(round(c - d[0])), int(round(c - d[1]))),
             (int(round(c + d[0])), int(round(c + d[1]))), 1.0, 1)
    k /= k.sum()
    return cv2.filter2D(image, -1, k, borderType=cv2.BORDER_REFLECT)


_NOISE_BANK_SIZE = 1 << 21
_noise_bank: np.ndarray | None = None


def _bank() -> np.ndarray:
    global _noise_bank
    if _noise_bank is None:  # the same values in every process: a fixed seed
        _noise_bank = np.random.default_rng(20251125).standard_normal(_NOISE_BANK_SIZE, dtype=np.float32)
    return _noise_bank


def gaussian_noise(image: np.ndarray, rng: np.random.Generator, *, std_max: float = 0.03) -> np.ndarray:
    """Additive Gaussian noise, standard deviation U(0, std_max) of the full range.

    The unit normals are a window at a random offset of a fixed bank of 2^21 values (drawing
    150k fresh normals per 224 x 224 crop cost ~4x more); the offset comes from ``rng``.
    """
    std = rng.uniform(0.0, std_max) * 255.0
    n = image.size
    bank = _bank()
    if n > bank.size:
        noise = rng.standard_normal(n, dtype=np.float32)
    else:
        start = int(rng.integers(0, bank.size - n + 1))
        noise = bank[start:start + n]
    out = noise.reshape(image.shape) * np.float32(std)
    out += image
    np.clip(out, 0, 255, out=out)
    return np.rint(out, out=out).astype(np.uint8)


def procedural_background(size_px: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth random colour field with a few random lines (when no background images are given)."""
    cells = int(rng.integers(2, 9))
    low = rng.integers(0, 256, (cells, cells, 3), dtype=np.uint8)
    bg = cv2.resize(low, (size_px, size_px), interpolation=cv2.INTER_LINEAR)
    for _ in range(int(rng.integers(0, 6))):
        p0 = rng.integers(0, size_px, 2)
        p1 = rng.integers(0, size_px, 2)
        col = tuple(int(x) for x in rng.integers(0, 256, 3))
        cv2.line(bg, (int(p0[0]), int(p0[1])), (int(p1[0]), int(p1[1])), col,
                 int(rng.integers(1, max(2, size_px // 20))))
    return bg


class BackgroundSource:
    """Background images from a folder (or a list of files), decoded lazily and cached.

    ``sample(size_px, rng)`` returns a random ``size_px`` square crop (random scale and place)
    of a random image; with no images it returns :func:`procedural_background`. Images are kept
    downscaled (short side ``2 * size_px`` at most), up to ``max_cached`` of them per process
    (~0.8 MB each at 224 px crops); the rest are decoded when drawn.
    """

    def __init__(self, source: str | os.PathLike | list | None = None, max_cached: int = 64):
        if source is None:
            self.paths: list[Path] = []
        elif isinstance(source, (list, tuple)):
            self.paths = [Path(p) for p in source]
        else:
            root = Path(source)
            if not root.is_dir():
                raise FileNotFoundError(f"background folder not found: {root}")
            self.paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            if not self.paths:
                raise FileNotFoundError(f"no background images ({', '.join(IMAGE_SUFFIXES)}) in {root}")
        self.max_cached = max_cached
        self._cache: dict[int, np.ndarray] = {}

    def _load(self, idx: int, size_px: int) -> np.ndarray:
        img = self._cache.get(idx)
        if img is None:
            bgr = cv2.imread(str(self.paths[idx]), cv2.IMREAD_COLOR)
            if bgr is None:
                raise ValueError(f"background image {self.paths[idx]} could not be decoded")
            img = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            short = min(img.shape[:2])
            if short > 2 * size_px:
                f = 2 * size_px / short
                img = cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
            if len(self._cache) < self.max_cached:
                self._cache[idx] = img
        return img

    def sample(self, size_px: int, rng: np.random.Generator) -> np.ndarray:
        if not self.paths:
            return procedural_background(size_px, rng)
        img = self._load(int(rng.integers(len(self.paths))), size_px)
        h, w = img.shape[:2]
        side = rng.uniform(0.3, 1.0) * min(h, w)
        x0 = rng.uniform(0, w - side)
        y0 = rng.uniform(0, h - side)
        s = size_px / side
        m = np.array([[s, 0, -x0 * s], [0, s, -y0 * s]], np.float64)
        return cv2.warpAffine(img, m, (size_px, size_px), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT)


def replace_background(image: np.ndarray, mask: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Keep the hand (mask > 0), take every other pixel from ``background`` (same size)."""
    out = np.array(background, copy=True)
    return cv2.copyTo(image, (np.asarray(mask) > 0).astype(np.uint8), out)


def add_clutter(image: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator, *,
                joints_2d: np.ndarray | None = None, max_items: int = 3,
                size_range: tuple[float, float] = (0.08, 0.3),
                backgrounds: BackgroundSource | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Paste 1..max_items random polygons over the crop; returns (image, mask)."""
    img = image.copy()
    m = None if mask is None else mask.copy()
    size = image.shape[0]
    for _ in range(int(rng.integers(1, max_items + 1))):
        radius = rng.uniform(*size_range) * size / 2
        if joints_2d is not None and rng.random() < 0.5:  # near a joint, to occlude the hand
            centre = np.asarray(joints_2d, np.float64)[int(rng.integers(len(joints_2d)))]
            centre = centre + rng.normal(0, radius / 2, 2)
        else:
            centre = rng.uniform(0, size, 2)
        n = int(rng.integers(3, 9))
        ang = np.sort(rng.uniform(0, 2 * np.pi, n))
        rad = radius * rng.uniform(0.5, 1.0, n)
        pts = np.stack([centre[0] + rad * np.cos(ang), centre[1] + rad * np.sin(ang)], 1)
        poly = np.round(pts).astype(np.int32)[None]
        shape = np.zeros((size, size), np.uint8)
        cv2.fillPoly(shape, poly, 1)
        sel = shape.astype(bool)
        if backgrounds is not None and rng.random() < 0.5:
            img[sel] = backgrounds.sample(size, rng)[sel]
        else:
            img[sel] = rng.integers(0, 256, 3, dtype=np.uint8)
        if m is not None:
            m[sel] = 0
    return img, m
