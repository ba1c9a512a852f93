"""HO-3D v2 / v3 reader (``build_dataset('ho3d', root, split)``).

Layout (``root`` = the folder holding ``train/`` and ``evaluation/``; facts from the dataset's
published scripts, ``shreyashampali/ho3d``):

* ``train.txt`` / ``evaluation.txt``: one frame per line, ``SEQ/ID``.
* ``{train,evaluation}/SEQ/rgb/ID.png`` (v2) or ``ID.jpg`` (v3; otherwise the same layout),
  640 x 480; ``SEQ/depth/ID.png``: depth in metres = ``(R + 256 * G) * 0.00012498664727900177``
  (red = low byte, green = high byte); ``SEQ/meta/ID.pkl``: a pickle (read through
  :mod:`hand_pose_core.safe_pickle`) with, for training frames, ``handJoints3D`` (21, 3) metres,
  ``handPose`` (48) axis-angle (global first, MANO joint order, **flat-hand mean**, i.e. the
  MANO pose itself), ``handBeta`` (10), ``handTrans`` (3) (added to every MANO vertex and joint),
  ``camMat`` (3, 3).
* 3D values are in the **OpenGL** camera frame (x right, y up, z backwards: the hand has z < 0);
  ``diag(1, -1, -1)`` turns them into our optical frame (x right, y down, z forward). This is a
  rotation (180 degrees about x), so MANO's global orientation becomes ``diag(1,-1,-1) @ G`` and
  the translation ``C w - w + t`` (``w`` the wrist), see
  :func:`training.augment_geometry.rotate_mano`.
* Joint order: MANO's 16 joints (wrist, index 1-3, middle 1-3, pinky 1-3, ring 1-3, thumb 1-3)
  then the 5 tips (thumb, index, middle, ring, pinky) -> canonical with
  :data:`hand_pose_core.kinematics.joint_maps.TO_CANONICAL['mano16']` (the dataset's own
  ``jointsMapManoToSimple``).
* Evaluation frames carry only the root joint (``handJoints3D`` (3,), the wrist),
  ``handBoundingBox`` ``[x0, y0, x1, y1]`` pixels and ``camMat``. Their samples have
  ``joints_cam_m`` NaN except the wrist (row 0), ``visible`` only for the wrist, and
  ``joints_2d`` rows 1-20 are placeholders on the hand box (corners and centre; the middle MCP
  row 9 is the box centre) so that a crop frames the hand: they are marked invisible, and
  ``has_3d`` is False after collation.

All hands are right hands. Our ``mano_pose`` convention is ``flat_hand_mean=False``, so the
finger pose needs MANO's ``hands_mean``: ``mano_pose`` / ``mano_trans`` (and ``verts_cam_m``
with ``verts=True``) are given only when a MANO model is passed (``mano=`` folder, file or
loaded dict); ``mano_shape`` always. Frames whose meta has no hand annotation (None) raise an
error naming the file.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hand_pose_core.kinematics.joint_maps import TO_CANONICAL
from hand_pose_core.safe_pickle import safe_load

from ..augment_geometry import rotate_mano
from . import register_dataset
from .native_io import (
    DatasetFormatError, as_array, load_mano_model, project, read_raw, read_rgb, require_dir, require_file,
)
from .sample import validate_sample

_SPLITS = {"train": "train", "training": "train", "eval": "evaluation", "evaluation": "evaluation",
           "test": "evaluation"}
_CANON = np.asarray(TO_CANONICAL["mano16"])
GL_TO_CV = np.diag([1.0, -1.0, -1.0])
DEPTH_SCALE_M = 0.00012498664727900177


def decode_depth(png: np.ndarray) -> np.ndarray:
    """HO-3D depth PNG as read by OpenCV (B, G, R) -> metres."""
    return (png[..., 2].astype(np.float32) + png[..., 1].astype(np.float32) * 256.0) * DEPTH_SCALE_M


@register_dataset("ho3d")
class HO3D:
    def __init__(self, root, split: str = "train", *, mano=None, verts: bool = False, depth: bool = False):
        if split not in _SPLITS:
            raise ValueError(f"HO-3D split must be one of {sorted(_SPLITS)}, got {split!r}")
        self.root = Path(root)
        self.set = _SPLITS[split]
        listing = require_file(self.root / f"{self.set}.txt", f"the HO-3D {self.set} frame list (lines SEQ/ID)")
        self.dir = require_dir(self.root / self.set, f"the HO-3D {self.set} folder")
        self.frames: list[tuple[str, str]] = []
        for n, line in enumerate(listing.read_text().splitlines(), 1):
            line = line.strip()
            if not line:
                continue
            parts = line.split("/")
            if len(parts) != 2 or not all(parts):
                raise DatasetFormatError(f"{listing}:{n}: expected 'SEQ/ID', got {line!r}")
            self.frames.append((parts[0], parts[1]))
        if not self.frames:
            raise DatasetFormatError(f"{listing}: lists no frames")
        # one numpy string array instead of many small Python objects (shared by loader workers)
        self.frames = np.asarray(self.frames, dtype=str)
        self.mano_model = load_mano_model(mano)
        if verts and self.mano_model is None:
            raise ValueError("verts=True needs a MANO model (mano=...) to compute the vertices")
        self.verts = verts
        self.depth = depth
        self._layer = None

    def __len__(self) -> int:
        return len(self.frames)

    def _image_path(self, seq: str, fid: str) -> Path:
        for ext in (".jpg", ".png"):  # v3, v2
            p = self.dir / seq / "rgb" / f"{fid}{ext}"
            if p.is_file():
                return p
        raise FileNotFoundError(f"{self.dir / seq / 'rgb' / fid}.jpg|.png: not found "
                                "(expected the HO-3D RGB frame: .jpg in v3, .png in v2)")

    def _meta(self, seq: str, fid: str) -> tuple[dict, Path]:
        path = require_file(self.dir / seq / "meta" / f"{fid}.pkl", "the HO-3D frame annotation pickle")
        try:
            meta = safe_load(path)
        except ValueError as exc:
            raise DatasetFormatError(f"{path}: not a readable HO-3D meta pickle: {exc}") from exc
        if not isinstance(meta, dict):
            raise DatasetFormatError(f"{path}: expected a dict of annotations, got {type(meta).__name__}")
        return meta, path

    def _field(self, meta, path, key, shape):
        if meta.get(key) is None:
            raise DatasetFormatError(f"{path}: '{key}' is missing or None (frame without hand annotation?)")
        return as_array(meta[key], shape, path, f"'{key}'", np.float64)

    def __getitem__(self, index: int) -> dict:
        seq, fid = (str(x) for x in self.frames[index])
        meta, path = self._meta(seq, fid)
        img_path = self._image_path(seq, fid)
        image = read_rgb(img_path, "an HO-3D RGB frame")
        K = self._field(meta, path, "camMat", (3, 3))
        sample = {"image": image, "K": K.astype(np.float32), "side": "right",
                  "id": f"ho3d/{self.set}/{seq}/{fid}"}
        if self.set == "train":
            j_gl = self._field(meta, path, "handJoints3D", (21, 3))
            j_cv = (j_gl @ GL_TO_CV.T)[_CANON]
            sample.update(joints_cam_m=j_cv.astype(np.float32), joints_2d=project(K, j_cv),
                          visible=np.ones(21, bool))
            beta = self._field(meta, path, "handBeta", (10,))
            sample["mano_shape"] = beta.astype(np.float32)
            if self.mano_model is not None:
                pose = self._field(meta, path, "handPose", (48,)).copy()
                trans = self._field(meta, path, "handTrans", (3,))
                pose[3:] -= np.asarray(self.mano_model["hands_mean"], np.float64).reshape(45)
                pose_cv, trans_cv = rotate_mano(pose, trans, j_gl[0], GL_TO_CV)
                sample.update(mano_pose=pose_cv, mano_trans=trans_cv)
                if self.verts:
                    sample["verts_cam_m"] = self._mano_verts(pose_cv, beta, trans_cv)
        else:
            root_gl = self._field(meta, path, "handJoints3D", (3,))
            box = self._field(meta, path, "handBoundingBox", (4,))
            root_cv = GL_TO_CV @ root_gl
            j3 = np.full((21, 3), np.nan, np.float32)
            j3[0] = root_cv
            x0, y0, x1, y1 = box
            corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)
            j2 = np.tile(np.array([(x0 + x1) / 2, (y0 + y1) / 2], np.float32), (21, 1))
            j2[1:5] = corners
            j2[0] = project(K, root_cv[None])[0]
            vis = np.zeros(21, bool)
            vis[0] = True
            sample.update(joints_cam_m=j3, joints_2d=j2, visible=vis)
        if self.depth:
            dpath = self.dir / seq / "depth" / f"{fid}.png"
            png = read_raw(dpath, "the HO-3D depth PNG (low byte red, high byte green)")
            if png.ndim != 3 or png.shape[:2] != image.shape[:2]:
                raise DatasetFormatError(f"{dpath}: expected a {image.shape[:2]} colour PNG, got {png.shape}")
            sample["depth_m"] = decode_depth(png)
        return validate_sample(sample)

    def _mano_verts(self, pose, beta, trans) -> np.ndarray:
        import torch

        from hand_pose_core.mano.layer import ManoLayer

        if self._layer is None:
            self._layer = ManoLayer(model=self.mano_model, use_pca=False, flat_hand_mean=False,
                                    side="right", dtype=torch.float64)
        with torch.no_grad():
            v, _ = self._layer(torch.as_tensor(pose, dtype=torch.float64)[None],
                               torch.as_tensor(beta, dtype=torch.float64)[None])
        return (v[0].numpy() / 1000.0 + trans).astype(np.float32)
