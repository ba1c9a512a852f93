"""Pseudo-labelled footage written by ``hand-pose pseudo-label`` (layout and label definitions
in :mod:`training.pseudo_label`).

    build_dataset("footage", "/data/my_camera", "train")

Splits by frame ranges, so that held-out frames are never neighbours of training frames: the
frames are cut into consecutive blocks of ``block_frames`` (default ``'auto'``: 250, i.e. 10 s
at 25 fps, or, for a clip shorter than ``250 * val_every`` frames, ``clip_frames // val_every`` so
that a short clip still has one held-out block); every ``val_every``-th block (block % val_every == val_every - 1, default 10) is 'val'; 'train' is the
rest minus ``guard_frames`` (default 25) frames on either side of each 'val' block (near-copies
of held-out frames); 'all' is everything.

Options: ``min_score`` drops hands whose presence score is lower (default: the value used when
writing); ``uncalibrated_3d='keep'|'drop'``: with footage labelled without calibration
(meta.json ``calibrated: false``) the teacher 3D has a guessed absolute depth; 'drop' sets
``joints_cam_m`` to NaN (then ``has_3d`` is False after collation) and removes the MANO labels.
Label files are named ``FRAME_HAND`` so splits need no file reads; records are read (and
checked) when a sample is loaded. Samples carry ``joints_conf`` (the teacher's per-joint confidence) and no mask.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from torch.utils.data import Dataset

from training.datasets import register_dataset
from training.datasets.sample import validate_sample
from training.pseudo_label import parse_label_name, read_labels, read_meta

SPLITS = ("train", "val", "all")


MAX_AUTO_BLOCK_FRAMES = 250


def auto_block_frames(frames: np.ndarray, val_every: int) -> int:
    """``block_frames='auto'``: 250, or fewer for a short clip so that it has ``val_every`` blocks
    (hence one held-out block): with 250-frame blocks every clip under 2,500 frames (e.g. a
    13-s, 325-frame clip) had no held-out frames at all."""
    span = int(np.max(frames)) + 1 if len(frames) else 0
    return int(min(MAX_AUTO_BLOCK_FRAMES, max(1, span // val_every)))


def split_frames(frames: np.ndarray, split: str, block_frames: int | str = "auto", val_every: int = 10,
                 guard_frames: int = 25) -> np.ndarray:
    """Boolean selection of ``frames`` (frame numbers) for ``split`` (rule in the module docstring)."""
    if split not in SPLITS:
        raise ValueError(f"footage split must be one of {SPLITS}, got {split!r}")
    if block_frames == "auto":
        block_frames = auto_block_frames(np.asarray(frames, np.int64), max(2, int(val_every)))
    elif isinstance(block_frames, str):
        raise ValueError(f"block_frames must be a number of frames or 'auto', got {block_frames!r}")
    if block_frames < 1 or val_every < 2 or guard_frames < 0:
        raise ValueError(f"need block_frames >= 1, val_every >= 2, guard_frames >= 0; got "
                         f"{block_frames}, {val_every}, {guard_frames}")
    frames = np.asarray(frames, np.int64)
    if split == "all":
        return np.ones(len(frames), bool)
    block = frames // block_frames
    is_val = block % val_every == val_every - 1
    if split == "val":
        return is_val
    # Distance to the nearest val block: a val block b spans [b*B, (b+1)*B).
    pos = frames % block_frames
    next_is_val = (block + 1) % val_every == val_every - 1
    prev_is_val = (block - 1) % val_every == val_every - 1
    near = (next_is_val & (block_frames - pos <= guard_frames)) | (prev_is_val & (block > 0) & (pos < guard_frames))
    return ~is_val & ~near


@register_dataset("footage")
class FootageDataset(Dataset):
    """Common samples (hand crops + teacher labels) of pseudo-labelled footage."""

    def __init__(self, root, split: str = "train", *, block_frames: int | str = "auto", val_every: int = 10,
                 guard_frames: int = 25, min_score: float | None = None, uncalibrated_3d: str = "keep"):
        if root is None:
            raise ValueError("footage needs the folder written by `hand-pose pseudo-label`")
        if uncalibrated_3d not in ("keep", "drop"):
            raise ValueError(f"uncalibrated_3d must be 'keep' or 'drop', got {uncalibrated_3d!r}")
        self.root = Path(root)
        self.meta = read_meta(self.root)
        self.drop_3d = uncalibrated_3d == "drop" and not self.meta["calibrated"]
        files = sorted((self.root / "labels").glob("*.npy"))
        if len(files) != self.meta["count"]:
            raise ValueError(f"{self.root / 'labels'} holds {len(files)} label files but meta.json "
                             f"says {self.meta['count']}: the dataset is incomplete")
        frames = np.array([parse_label_name(f.stem)[0] for f in files], np.int64)
        keep = split_frames(frames, split, block_frames, val_every, guard_frames)
        if min_score is not None:  # reads the selected records once (names the bad file)
            keep &= np.array([k and float(read_labels(f)["score"]) >= float(min_score)
                              for f, k in zip(files, keep)], bool)
        self.files = [f for f, k in zip(files, keep) if k]
        self.name = self.root.name

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < len(self.files):
            raise IndexError(f"index {i} out of range for {len(self.files)} samples")
        label_path = self.files[i]
        rec = read_labels(label_path)
        if (int(rec["frame"]), int(rec["hand"])) != parse_label_name(label_path.stem):
            raise ValueError(f"{label_path}: record says frame {int(rec['frame'])} hand {int(rec['hand'])}, "
                             "not what the file name says")
        crop_path = self.root / "crops" / f"{label_path.stem}.jpg"
        bgr = cv2.imread(str(crop_path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f"{crop_path}: missing or not a readable JPEG")
        size = self.meta["crop_size"]
        if bgr.shape[:2] != (size, size):
            raise ValueError(f"{crop_path}: expected {size}x{size}, got {bgr.shape[1]}x{bgr.shape[0]}")
        sample = {
            "image": cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB),
            "K": np.array(rec["K"]),
            "joints_cam_m": np.array(rec["joints_cam_m"]),
            "joints_2d": np.array(rec["joints_2d"]),
            "visible": np.array(rec["visible"]),
            "joints_conf": np.array(rec["joints_conf"]),
            "side": str(rec["side"]),
            "id": f"footage/{self.name}/{int(rec['frame']):08d}/{int(rec['hand'])}",
        }
        if self.drop_3d:
            sample["joints_cam_m"] = np.full((21, 3), np.nan, np.float32)
        elif bool(rec["has_mano"]):
            for key in ("mano_pose", "mano_shape", "mano_trans", "verts_cam_m"):
                sample[key] = np.array(rec[key])
        return validate_sample(sample)
