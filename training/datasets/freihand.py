"""FreiHAND v2 reader (``build_dataset('freihand', root, split)``).

Layout (as the dataset ships, ``root`` = the folder holding ``training/`` and ``evaluation/``;
facts from the dataset's published toolbox, ``lmb-freiburg/freihand``):

* ``{set}_K.json``: N intrinsics (3x3, pixels); ``{set}_xyz.json``: N x 21 x 3 joints in metres in
  the camera frame (x right, y down, z forward), in the FreiHAND order = our canonical order
  (wrist, thumb CMC..tip, index MCP..tip, middle, ring, pinky); the 2D labels are their
  projections ``K X / z``.
* ``{set}_mano.json``: N entries of ``[[61 values]]`` = 48 axis-angle pose values (global first,
  MANO joint order, relative to MANO's mean hand pose, i.e. ``flat_hand_mean=False``), 10 shape
  values, 2 ``uv_root`` and 1 ``scale`` (an orthographic root placement the toolbox uses; not a
  translation). The MANO translation is ``xyz[0] - J0(shape)`` (``J0``: MANO's root joint of the
  shaped rest hand; the toolbox poses the hand without translation and adds one), so it is only
  given when a MANO model is passed (``mano=``); without it ``mano_trans`` is left out.
* ``{set}_verts.json``: N x 778 x 3 MANO vertices, metres, camera frame (~0.5 GB of JSON for
  training: read only when ``verts=True``; default: only for the evaluation split). Parsed once,
  then kept as a ``.npy`` in the cache (``hand_pose_core.paths.cache_dir()/datasets/freihand``,
  keyed by the JSON file's path, size and modification time) and memory-mapped, so every rank and
  worker shares one copy (``cache_verts=False`` parses the JSON every time).
* ``{set}_scale.json``: N floats (a reference bone length); checked for length, not used.
* ``training/rgb/%08d.jpg``: 4 x N images (224 x 224): the *versions* 'gs' (green screen), 'hom',
  'sample', 'auto' of unique sample ``i`` are files ``i + k * N`` for ``k = 0..3`` (N = 32560 in the
  release; here N is the length of the JSON files). ``training/mask/%08d.jpg``: N hand masks
  (JPEG: thresholded at 128), shared by the 4 versions.
* ``evaluation/rgb/%08d.jpg``: N evaluation images (one version); the evaluation annotations
  (``evaluation_xyz.json`` etc.) come with the v2 evaluation release; without them the split
  cannot be read (the error says so); ``evaluation_mano.json`` is optional.

Every sample is one right hand, all 21 joints visible. Options: ``versions`` (subset of the four,
training only), ``verts`` (None = evaluation only), ``masks`` (read the masks), ``mano``
(a MANO model folder/file or dict: enables ``mano_trans``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import register_dataset
from .native_io import (
    DatasetFormatError, as_array, load_mano_model, mano_root_joint, project, read_json, read_raw,
    read_rgb, require_dir,
)
from .sample import validate_sample

VERSIONS = ("gs", "hom", "sample", "auto")
_SPLITS = {"train": "training", "training": "training", "eval": "evaluation",
           "evaluation": "evaluation", "test": "evaluation"}


@register_dataset("freihand")
class FreiHand:
    def __init__(self, root, split: str = "train", *, versions=VERSIONS, verts: bool | None = None,
                 masks: bool = True, mano=None, cache_verts: bool = True):
        self.root = Path(root)
        if split not in _SPLITS:
            raise ValueError(f"FreiHAND split must be one of {sorted(_SPLITS)}, got {split!r}")
        self.set = _SPLITS[split]
        require_dir(self.root, "the FreiHAND root (holding training_*.json and training/)")
        versions = (versions,) if isinstance(versions, str) else tuple(versions)
        bad = [v for v in versions if v not in VERSIONS]
        if bad or not versions:
            raise ValueError(f"versions must be a non-empty subset of {VERSIONS}, got {versions}")
        if self.set == "evaluation":
            versions = ("gs",)  # the evaluation split has one version
        self.versions = versions
        self.masks = masks and self.set == "training"
        s = self.set
        self.K = self._load(f"{s}_K.json", (-1, 3, 3), "N intrinsics 3x3")
        n = len(self.K)
        self.xyz = self._load(f"{s}_xyz.json", (n, 21, 3), f"{n} x 21 x 3 joints (metres)")
        self.mano = None
        if s == "training" or (self.root / f"{s}_mano.json").is_file():  # optional for evaluation
            params = self._load(f"{s}_mano.json", None, f"{n} MANO entries [[61 values]]")
            self.mano = as_array(params[:, 0] if params.ndim == 3 and params.shape[1] == 1 else params,
                                 (n, 61), self.root / f"{s}_mano.json", f"{n} MANO entries of 61 values")
        scale_path = self.root / f"{s}_scale.json"
        if scale_path.is_file():
            self._load(f"{s}_scale.json", (n,), f"{n} scale values")
        want_verts = (self.set == "evaluation") if verts is None else verts
        self.verts = self._load_verts(f"{s}_verts.json", n, cache_verts) if want_verts else None
        self.n_unique = n
        self.mano_model = load_mano_model(mano)
        self.image_dir = require_dir(self.root / s / "rgb", f"FreiHAND {s} images %08d.jpg")
        if self.masks:
            require_dir(self.root / s / "mask", "FreiHAND training masks %08d.jpg")

    def _load(self, name: str, shape, what: str) -> np.ndarray:
        path = self.root / name
        if not path.is_file():
            hint = " (the evaluation annotations come with the FreiHAND v2 evaluation release)" \
                if name.startswith("evaluation_") else ""
            raise FileNotFoundError(f"{path}: not found (expected {what}){hint}")
        data = read_json(path, what)
        if not isinstance(data, list):
            raise DatasetFormatError(f"{path}: expected a JSON list ({what}), got {type(data).__name__}")
        if shape is None:
            try:
                return np.asarray(data, np.float32)
            except ValueError as exc:
                raise DatasetFormatError(f"{path}: ragged or non-numeric entries (expected {what})") from exc
        return as_array(data, shape, path, what)

    def _load_verts(self, name: str, n: int, cache: bool) -> np.ndarray:
        what = f"{n} x 778 x 3 vertices (metres)"
        path = self.root / name
        if not cache or not path.is_file():
            return self._load(name, (n, 778, 3), what)
        import hashlib
        import io

        from hand_pose_core.paths import atomic_write_bytes, cache_dir

        st = path.stat()
        key = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:20]
        cached = cache_dir() / "datasets" / "freihand" / f"{key}_{path.stem}.npy"
        if cached.is_file():
            try:
                arr = np.load(cached, mmap_mode="r", allow_pickle=False)
                if arr.shape == (n, 778, 3) and arr.dtype == np.float32:
                    return arr
            except (ValueError, OSError):
                pass  # damaged cache file: parse the JSON again and rewrite it
        arr = self._load(name, (n, 778, 3), what)
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=False)
        atomic_write_bytes(cached, buf.getvalue())
        return np.load(cached, mmap_mode="r", allow_pickle=False)

    def __len__(self) -> int:
        return self.n_unique * len(self.versions)

    def image_path(self, index: int) -> Path:
        k, uid = divmod(int(index), self.n_unique)
        return self.image_dir / f"{uid + VERSIONS.index(self.versions[k]) * self.n_unique:08d}.jpg"

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"FreiHAND {self.set}: index {index} out of range 0..{len(self) - 1}")
        k, uid = divmod(int(index), self.n_unique)
        path = self.image_path(index)
        image = read_rgb(path, f"FreiHAND {self.set} image ({self.versions[k]} version of sample {uid})")
        K = self.K[uid]
        xyz = self.xyz[uid]
        sample = {
            "image": image, "K": K.copy(), "joints_cam_m": xyz.copy(), "joints_2d": project(K, xyz),
            "visible": np.ones(21, bool), "side": "right", "id": f"freihand/{self.set}/{path.stem}",
        }
        if self.mano is not None:
            pose, shape = self.mano[uid, :48], self.mano[uid, 48:58]
            sample.update(mano_pose=pose.copy(), mano_shape=shape.copy())
            if self.mano_model is not None:
                sample["mano_trans"] = (xyz[0] - mano_root_joint(self.mano_model, shape)).astype(np.float32)
        if self.verts is not None:
            sample["verts_cam_m"] = np.array(self.verts[uid], np.float32)
        if self.masks:
            mpath = self.root / self.set / "mask" / f"{uid:08d}.jpg"
            m = read_raw(mpath, f"FreiHAND mask of sample {uid}")
            if m.ndim == 3:
                m = m[..., 0]
            if m.shape != image.shape[:2]:
                raise DatasetFormatError(f"{mpath}: mask is {m.shape}, image {path} is {image.shape[:2]}")
            sample["mask"] = (m > 127).astype(np.uint8)
        return validate_sample(sample)
