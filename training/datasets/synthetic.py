"""Synthetic MANO hands: a dataset written by ``hand-pose synth`` or generated on the fly.

    build_dataset("synthetic", "/data/synth", "train")               # read from disk
    build_dataset("synthetic", None, "train", length=10000, seed=3)   # render on the fly

On disk (layout in :mod:`training.synthetic.writer`): ``meta.json``, ``rgb/%08d.jpg``,
``mask/%08d.png``, ``labels/%08d.npy`` (+ ``depth/%08d.png`` when written with ``--depth``).

Splits (both modes): sample ``i`` is in 'val' when ``i % 20 == 19`` and in 'train' otherwise;
'all' is every sample. On the fly, ``length`` counts the indices ``0 .. length-1`` before the
split, so the same ``seed``/``length`` give the same samples as a dataset written with
``hand-pose synth --seed S --count length`` (up to JPEG compression).

Generating on the fly renders with OpenGL (EGL) in the process that reads the sample. The
generator is created lazily on the first ``__getitem__``, i.e. inside each ``DataLoader``
worker. Default 'fork' workers work even after the parent rendered samples itself, because the
renderer runs Mesa's llvmpipe without rasteriser threads (``LP_NUM_THREADS=0``, set before the
first context; with llvmpipe threads a fork after rendering hung every time here). If you set
``LP_NUM_THREADS`` to something else, use ``multiprocessing_context='spawn'`` or
``'forkserver'``.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
from torch.utils.data import Dataset

from training.datasets import register_dataset
from training.datasets.sample import validate_sample
from training.synthetic.writer import read_labels, read_meta

SPLITS = ("train", "val", "all")


def _indices(count: int, split: str) -> np.ndarray:
    if split not in SPLITS:
        raise ValueError(f"synthetic split must be one of {SPLITS}, got {split!r}")
    idx = np.arange(count, dtype=np.int64)
    if split == "all":
        return idx
    is_val = idx % 20 == 19  # training.synthetic.writer.split_of
    return idx[is_val] if split == "val" else idx[~is_val]


@register_dataset("synthetic")
class SyntheticDataset(Dataset):
    """Common samples of synthetic hands (see the module docstring).

    Args:
        root: folder written by ``hand-pose synth``, or None to generate on the fly.
        split: 'train', 'val' or 'all'.
        length: on the fly only: number of indices (before the split), default 10000.
        seed, image_size, mano_root, background_dir, distance_m, left_fraction, with_depth:
            on the fly only: the generator settings (:class:`training.synthetic.generator.SyntheticHands`).
        with_depth: from disk: also load ``depth_m`` (the dataset must have been written with it).
    """

    def __init__(self, root=None, split: str = "train", *, length: int = 10000, seed: int = 0,
                 image_size: int = 256, mano_root=None, background_dir=None, distance_m=(0.2, 1.5),
                 left_fraction: float = 0.5, with_depth: bool = False):
        self.split = split
        self.with_depth = bool(with_depth)
        if root is None:
            self.root = None
            self.meta = None
            self.seed = int(seed)
            self._gen_kwargs = dict(image_size=image_size, seed=seed, mano_root=mano_root,
                                    background_dir=background_dir, distance_m=distance_m,
                                    left_fraction=left_fraction, with_depth=with_depth)
            from training.synthetic.generator import SyntheticHands

            SyntheticHands(**self._gen_kwargs)  # validate settings now, render later
            if int(length) <= 0:
                raise ValueError(f"length must be positive, got {length}")
            self.indices = _indices(int(length), split)
        else:
            self.root = Path(root)
            self.meta = read_meta(self.root)
            self.seed = self.meta["seed"]
            if self.with_depth and not self.meta["with_depth"]:
                raise ValueError(f"{self.root} was written without depth (hand-pose synth --depth)")
            self.indices = _indices(self.meta["count"], split)
        self._gen = None

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < len(self.indices):
            raise IndexError(f"index {i} out of range for {len(self.indices)} samples")
        index = int(self.indices[i])
        sample = self._generate(index) if self.root is None else self._read(index)
        return validate_sample(sample, allow_nan_3d=False)

    # ------------------------------------------------------------------ modes
    def _generate(self, index: int) -> dict:
        if self._gen is None or self._gen_pid != os.getpid():
            os.environ.setdefault("LP_NUM_THREADS", "0")
            from training.synthetic.generator import SyntheticHands

            self._gen, self._gen_pid = SyntheticHands(**self._gen_kwargs), os.getpid()
        return self._gen.sample(index)

    def __getstate__(self):  # workers get a fresh (lazy) generator
        state = dict(self.__dict__)
        state["_gen"] = None
        return state

    def _read(self, index: int) -> dict:
        name = f"{index:08d}"
        rgb_path = self.root / "rgb" / f"{name}.jpg"
        bgr = cv2.imread(str(rgb_path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f"{rgb_path}: missing or not a readable JPEG")
        mask_path = self.root / "mask" / f"{name}.png"
        mask = cv2.imread(str(mask_path), cv2.IMREAD_UNCHANGED)
        if mask is None or mask.shape != bgr.shape[:2]:
            raise ValueError(f"{mask_path}: missing, unreadable or not an 8-bit mask of the image size "
                             f"{bgr.shape[:2]}")
        rec = read_labels(self.root / "labels" / f"{name}.npy")
        sample = {key: np.array(rec[key]) for key in rec.dtype.names}
        sample["side"] = str(rec["side"])
        sample["image"] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        sample["mask"] = (mask > 127).astype(np.uint8)
        sample["id"] = f"synthetic/{self.seed}/{name}"
        if self.with_depth:
            depth_path = self.root / "depth" / f"{name}.png"
            mm = cv2.imread(str(depth_path), cv2.IMREAD_UNCHANGED)
            if mm is None or mm.dtype != np.uint16 or mm.shape != mask.shape:
                raise ValueError(f"{depth_path}: missing or not a 16-bit depth PNG of the image size")
            sample["depth_m"] = mm.astype(np.float32) / 1000.0
        return sample
