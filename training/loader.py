"""Data loading for training and evaluation: deterministic, resumable, sharded over ranks.

- Every sample's randomness is derived from ``(seed, epoch, index)`` only: :class:`SampleSet`
  builds a ``numpy.random.Generator`` from that triple for the augmentation and also seeds
  Python's, numpy's and torch's global generators with it while the reader and the transform
  run. What a sample looks like therefore does not depend on which worker or rank loads it, on
  the number of workers, or on where a resumed run starts.
- :class:`ResumableDistributedSampler` (a ``DistributedSampler``) shuffles with
  ``(seed, epoch)``, keeps whole GLOBAL batches only (so an epoch has the same number of steps
  for any number of processes), gives rank ``r`` the items ``r::world`` (per-rank batch =
  global / world: the union of all ranks' batch ``k`` is the single-process batch ``k``), and can
  start mid-epoch (``set_start``) so that a resumed run sees exactly the batches it had not seen.
"""
from __future__ import annotations

import random
from contextlib import contextmanager

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from .datasets import build_dataset
from .datasets.collate import collate_samples


def sample_seed(seed: int, epoch: int, index: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch), int(index)])


@contextmanager
def _global_rng(words: np.ndarray, restore: bool):
    """Seed python/numpy/torch global RNGs from ``words``; put the old states back if ``restore``."""
    if restore:
        saved = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    random.seed(int(words[0]))
    np.random.seed(int(words[1]))
    # the CPU generator only: torch.manual_seed would also reseed the CUDA generators (dropout)
    torch.default_generator.manual_seed(int(words[2]) << 32 | int(words[3]))
    try:
        yield
    finally:
        if restore:
            random.setstate(saved[0])
            np.random.set_state(saved[1])
            torch.set_rng_state(saved[2])


class SampleSet(Dataset):
    """A reader plus a transform, indexed by ``(epoch, index)`` keys from the samplers below.

    ``transform(sample, rng) -> sample`` receives a generator seeded from ``(seed, epoch, index)``.
    The result must be a ``crop_size`` x ``crop_size`` image (checked, with the sample id named)."""

    def __init__(self, dataset, transform, seed: int, crop_size: int | None):
        self.dataset = dataset
        self.transform = transform
        self.seed = seed
        self.crop_size = crop_size

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        epoch, index = key
        ss = sample_seed(self.seed, epoch, index)
        words = ss.generate_state(4)
        in_main = torch.utils.data.get_worker_info() is None
        with _global_rng(words, restore=in_main):
            sample = self.dataset[index]
            if self.transform is not None:
                sample = self.transform(sample, np.random.default_rng(ss))
        if self.crop_size is not None:
            shape = np.shape(sample["image"])
            if shape[:2] != (self.crop_size, self.crop_size):
                raise ValueError(f"sample {sample.get('id', index)}: image is {shape[1]}x{shape[0]} after the "
                                 f"transform, expected data.crop_size {self.crop_size}x{self.crop_size} "
                                 "(set data.augment / data.crop_size to crop it)")
        return sample


class ResumableDistributedSampler(DistributedSampler):
    """Yields ``(epoch, index)``: whole global batches only, rank-strided, startable mid-epoch."""

    def __init__(self, length: int, global_batch: int, rank: int = 0, world_size: int = 1,
                 seed: int = 0, shuffle: bool = True):
        if global_batch % world_size:
            raise ValueError(f"data.batch_size {global_batch} (the global batch) is not divisible by "
                             f"the {world_size} processes")
        if length < global_batch:
            raise ValueError(f"the dataset has {length} samples, fewer than one global batch ({global_batch})")
        super().__init__(range(length), num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed,
                         drop_last=True)
        self.length = length
        self.global_batch = global_batch
        self.per_rank = global_batch // world_size
        self.start_batch = 0

    @property
    def steps_per_epoch(self) -> int:
        return self.length // self.global_batch

    def set_start(self, batch: int) -> None:
        """Skip the first ``batch`` batches of the current epoch (a resumed run)."""
        if not 0 <= batch <= self.steps_per_epoch:
            raise ValueError(f"batch position {batch} outside the epoch (0..{self.steps_per_epoch})")
        self.start_batch = batch

    def _order(self) -> torch.Tensor:
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.length, generator=g)
        else:
            order = torch.arange(self.length)
        return order[: self.steps_per_epoch * self.global_batch]

    def __iter__(self):
        mine = self._order()[self.rank::self.num_replicas]
        for i in mine[self.start_batch * self.per_rank:].tolist():
            yield (self.epoch, i)

    def __len__(self) -> int:
        return (self.steps_per_epoch - self.start_batch) * self.per_rank


class ShardSampler(Sampler):
    """Evaluation: every item once, rank ``r`` takes ``r::world``, keys ``(0, index)``."""

    def __init__(self, length: int, rank: int = 0, world_size: int = 1):
        self.length, self.rank, self.world = length, rank, world_size

    def __iter__(self):
        return ((0, i) for i in range(self.rank, self.length, self.world))

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.world))


class _WorkerInit:
    """worker_init_fn: seeds each worker's global RNGs from (seed, rank, worker id); picklable,
    as spawn/forkserver workers need. Per-sample randomness is re-seeded in SampleSet anyway."""

    def __init__(self, seed: int, rank: int):
        self.seed, self.rank = seed, rank

    def __call__(self, worker_id: int) -> None:
        words = np.random.SeedSequence([self.seed & 0xFFFFFFFF, self.rank, worker_id, 0x5EED]).generate_state(3)
        random.seed(int(words[0]))
        np.random.seed(int(words[1]))
        torch.manual_seed(int(words[2]))
        torch.set_num_threads(1)


def build_transform(data_cfg: dict, train: bool):
    """The sample transform for ``data_cfg``: :func:`training.augment.build_transform` (a crop
    around the hand of ``data.crop_size`` pixels, plus the ``data.augment`` augmentations when
    ``train``), or None when ``data.transform`` is false (the reader already yields crops)."""
    if not data_cfg.get("transform", True):
        if data_cfg.get("augment"):
            raise ValueError("data.augment is set but data.transform is false (no crop, no augmentation)")
        return None
    from . import augment

    opts = dict(data_cfg.get("augment") or {})
    if opts.get("crop_size", data_cfg["crop_size"]) != data_cfg["crop_size"]:
        raise ValueError(f"data.augment.crop_size {opts['crop_size']} differs from data.crop_size "
                         f"{data_cfg['crop_size']}: set data.crop_size only")
    opts["crop_size"] = data_cfg["crop_size"]
    return augment.build_transform(opts, train=train)


def make_dataset(data_cfg: dict, split: str, train: bool):
    """Reader + transform for ``split`` (the held-out split uses ``val_root``/``val_options``)."""
    if train:
        root, options = data_cfg.get("root"), dict(data_cfg.get("options") or {})
    else:
        root = data_cfg.get("val_root") or data_cfg.get("root")
        options = dict(data_cfg.get("options") or {})
        options.update(data_cfg.get("val_options") or {})
    return build_dataset(data_cfg["name"], root, split, **options)


def train_loader(data_cfg: dict, dataset, seed: int, rank: int, world_size: int, pin_memory: bool = False):
    """DataLoader over ``dataset`` with the resumable sampler; returns ``(loader, sampler)``."""
    transform = build_transform(data_cfg, train=True)
    sset = SampleSet(dataset, transform, seed, data_cfg["crop_size"])
    sampler = ResumableDistributedSampler(len(sset), data_cfg["batch_size"], rank, world_size, seed,
                                          shuffle=data_cfg.get("shuffle", True))
    workers = data_cfg["workers"]
    g = torch.Generator()
    g.manual_seed(seed * 1000 + rank)
    loader = DataLoader(
        sset, batch_size=sampler.per_rank, sampler=sampler, num_workers=workers,
        collate_fn=collate_samples, pin_memory=pin_memory, drop_last=False,
        worker_init_fn=_WorkerInit(seed, rank) if workers else None, generator=g,
        persistent_workers=workers > 0,
        multiprocessing_context=data_cfg.get("mp_context") if workers else None,
        prefetch_factor=2 if workers else None,
    )
    return loader, sampler


def eval_loader(data_cfg: dict, dataset, seed: int, rank: int, world_size: int, max_samples: int | None = None,
                pin_memory: bool = False):
    transform = build_transform(data_cfg, train=False)
    sset = SampleSet(dataset, transform, seed, data_cfg["crop_size"])
    n = len(sset) if max_samples is None else min(len(sset), max_samples)
    sampler = ShardSampler(n, rank, world_size)
    bs = data_cfg.get("val_batch_size") or max(1, data_cfg["batch_size"] // world_size)
    workers = data_cfg["workers"]
    return DataLoader(sset, batch_size=bs, sampler=sampler, num_workers=workers, collate_fn=collate_samples,
                      pin_memory=pin_memory, worker_init_fn=_WorkerInit(seed, rank) if workers else None,
                      multiprocessing_context=data_cfg.get("mp_context") if workers else None)
