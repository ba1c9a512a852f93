"""Rendered Hand Pose dataset (RHD) reader (``build_dataset('rhd', root, split, hands=...)``).

Layout (``root`` = ``RHD_published_v2``; facts from the dataset's description and its authors'
loader in ``lmb-freiburg/hand3d``):

* ``{training,evaluation}/anno_{training,evaluation}.pickle``: a dict ``sample id (int) ->
  {'xyz': (42, 3) metres, camera frame (x right, y down, z forward), 'uv_vis': (42, 3) = u, v in
  pixels and a visibility flag (1 = visible), 'K': (3, 3)}``. Joints 0-20 are the LEFT hand,
  21-41 the RIGHT hand, each in the RHD order: wrist, then every finger from its tip to its base
  (thumb, index, middle, ring, pinky) -> canonical with
  :data:`hand_pose_core.kinematics.joint_maps.TO_CANONICAL['rhd']`. The pickle (written by
  Python 2) is read with :mod:`hand_pose_core.safe_pickle`.
* ``color/%05d.png`` (320 x 320 RGB); ``mask/%05d.png`` labels: 0 background, 1 person,
  2-17 left hand, 18 and above right hand; ``depth/%05d.png``: 16-bit depth split over two 8-bit
  channels, top byte in red, bottom byte in green: ``depth_m = (R * 256 + G) / 65535 * 5``.

One sample per hand (``side`` 'left' or 'right'; ``mask`` = that hand's pixels). ``hands``:

* ``'visible'`` (default): every hand with at least ``min_visible`` visible keypoints;
* ``'left'`` / ``'right'``: only that side (same visibility rule);
* ``'dominant'``: one sample per image, the hand with more mask pixels (the choice of the
  authors' loader); decided when the sample is read.

``visible`` is the dataset's flag (a joint hidden in the image keeps its 3D label).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hand_pose_core.kinematics.joint_maps import TO_CANONICAL
from hand_pose_core.safe_pickle import safe_load

from . import register_dataset
from .native_io import DatasetFormatError, as_array, read_raw, read_rgb, require_dir, require_file
from .sample import validate_sample

_SPLITS = {"train": "training", "training": "training", "eval": "evaluation",
           "evaluation": "evaluation", "test": "evaluation"}
_CANON = np.asarray(TO_CANONICAL["rhd"])
_SLICE = {"left": slice(0, 21), "right": slice(21, 42)}
_SIDES = ("left", "right")
LEFT_LABELS = (2, 17)   # inclusive
RIGHT_MIN_LABEL = 18
DEPTH_MAX_M = 5.0


def hand_mask(labels: np.ndarray, side: str) -> np.ndarray:
    """uint8 0/1 mask of one hand from an RHD label map."""
    if side == "left":
        return ((labels >= LEFT_LABELS[0]) & (labels <= LEFT_LABELS[1])).astype(np.uint8)
    return (labels >= RIGHT_MIN_LABEL).astype(np.uint8)


def decode_depth(png: np.ndarray) -> np.ndarray:
    """RHD depth PNG as read by OpenCV (B, G, R) -> metres."""
    r = png[..., 2].astype(np.float32)
    g = png[..., 1].astype(np.float32)
    return (r * 256.0 + g) / 65535.0 * DEPTH_MAX_M


@register_dataset("rhd")
class RHD:
    def __init__(self, root, split: str = "train", *, hands: str = "visible", min_visible: int = 1,
                 depth: bool = True, masks: bool = True):
        if split not in _SPLITS:
            raise ValueError(f"RHD split must be one of {sorted(_SPLITS)}, got {split!r}")
        if hands not in ("visible", "left", "right", "dominant"):
            raise ValueError(f"hands must be 'visible', 'left', 'right' or 'dominant', got {hands!r}")
        self.root = Path(root)
        self.set = _SPLITS[split]
        self.dir = require_dir(self.root / self.set, f"the RHD {self.set} folder")
        self.depth = depth
        self.masks = masks or hands == "dominant"
        path = require_file(self.dir / f"anno_{self.set}.pickle", "the RHD annotation pickle")
        try:
            anno = safe_load(path)
        except ValueError as exc:
            raise DatasetFormatError(f"{path}: not a readable RHD annotation pickle: {exc}") from exc
        if not isinstance(anno, dict) or not anno:
            raise DatasetFormatError(f"{path}: expected a non-empty dict sample id -> annotation, "
                                     f"got {type(anno).__name__}")
        # stacked arrays (not 40k small dicts): DataLoader workers share them without copying
        ids = sorted(anno)
        n = len(ids)
        self.ids = np.zeros(n, np.int64)
        self.xyz = np.zeros((n, 42, 3), np.float32)
        self.uv_vis = np.zeros((n, 42, 3), np.float32)
        self.K = np.zeros((n, 3, 3), np.float32)
        index: list[tuple[int, int]] = []  # (row, side code: 0 left, 1 right, -1 dominant)
        for row, sid in enumerate(ids):
            a = anno[sid]
            where = f"sample {sid!r}"
            if not isinstance(a, dict) or not {"xyz", "uv_vis", "K"} <= set(a):
                raise DatasetFormatError(f"{path}: {where}: expected a dict with 'xyz', 'uv_vis', 'K'")
            self.ids[row] = int(sid)
            self.xyz[row] = as_array(a["xyz"], (42, 3), path, f"{where} 'xyz'")
            self.uv_vis[row] = as_array(a["uv_vis"], (42, 3), path, f"{where} 'uv_vis'")
            self.K[row] = as_array(a["K"], (3, 3), path, f"{where} 'K'")
            if hands == "dominant":
                index.append((row, -1))
                continue
            for side in (("left", "right") if hands == "visible" else (hands,)):
                if (self.uv_vis[row, _SLICE[side], 2] == 1).sum() >= min_visible:
                    index.append((row, _SIDES.index(side)))
        self.index = np.asarray(index, np.int64).reshape(-1, 2)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, index: int) -> dict:
        row, code = (int(x) for x in self.index[index])
        sid = int(self.ids[row])
        side = None if code < 0 else _SIDES[code]
        image = read_rgb(self.dir / "color" / f"{sid:05d}.png", f"RHD colour image of sample {sid}")
        labels = None
        if self.masks:
            mpath = self.dir / "mask" / f"{sid:05d}.png"
            labels = read_raw(mpath, f"RHD mask (label map) of sample {sid}")
            if labels.ndim == 3:
                labels = labels[..., 0]
            if labels.shape != image.shape[:2]:
                raise DatasetFormatError(f"{mpath}: label map is {labels.shape}, image is {image.shape[:2]}")
        if side is None:  # dominant hand: more mask pixels
            side = "left" if hand_mask(labels, "left").sum() > hand_mask(labels, "right").sum() else "right"
        sl = _SLICE[side]
        uv_vis = self.uv_vis[row, sl][_CANON]
        sample = {
            "image": image, "K": self.K[row].copy(), "joints_cam_m": self.xyz[row, sl][_CANON],
            "joints_2d": uv_vis[:, :2].copy(), "visible": uv_vis[:, 2] == 1, "side": side,
            "id": f"rhd/{self.set}/{sid:05d}/{side}",
        }
        if labels is not None:
            sample["mask"] = hand_mask(labels, side)
        if self.depth:
            dpath = self.dir / "depth" / f"{sid:05d}.png"
            png = read_raw(dpath, f"RHD depth PNG (16 bit over red/green) of sample {sid}")
            if png.ndim != 3 or png.shape[:2] != image.shape[:2]:
                raise DatasetFormatError(f"{dpath}: expected a {image.shape[:2]} colour PNG, got {png.shape}")
            sample["depth_m"] = decode_depth(png)
        return validate_sample(sample)
