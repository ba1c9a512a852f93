"""Random MANO hands rendered into common samples (:mod:`training.datasets.sample`).

Sample ``i`` of a generator with seed ``s`` depends only on ``(s, i)`` (its own
``numpy.random.default_rng([s, i])``), so on-the-fly generation is reproducible in any worker
and order, and ``hand-pose synth`` writes exactly the samples the on-the-fly dataset yields
(up to JPEG compression of the image).

What is random per sample:

* side: right or left (``left_fraction``, default 0.5), each with its own MANO model
  (the synthetic MANO-format model by default; the official files with ``mano_root``);
* finger pose within per-joint limits (:mod:`.pose_prior`), a uniformly random global
  rotation, shape ``betas ~ N(0, 1)`` clipped to +-2.5;
* a virtual full-frame camera (width 640-1920, 4:3 or 16:9, ``fx`` 0.55-1.4 x width, principal
  point near the centre); the middle-finger MCP (canonical joint 9) is placed at a random pixel
  of the inner 80 % of that frame at a depth of ``distance_m`` (default 0.2-1.5 m, uniform);
* the output image is a square crop of that frame around the hand (1.15-1.8 x the hand's
  bounding box, 15 % of samples 1.8-3 x, centre jittered by up to 12 % of the crop), resized to
  ``image_size``: ``K`` is the exact intrinsics of the crop, so the perspective of off-centre
  and near hands is real; parts of the hand may leave the image (those joints are not visible);
* skin colour between light and dark tones with smooth per-vertex variation (5 % of samples a
  uniform "glove" colour), a directional light from the camera side with random direction,
  ambient/diffuse/specular strengths and tint;
* a background (:mod:`.backgrounds`) and a soft inner edge of the hand. Noise, blur, colour
  jitter and clutter are left to the training augmentations (``training.augment``).

Labels are exact: ``verts_cam_m`` and ``joints_cam_m`` come from ``ManoLayer`` (metres, camera
frame), ``joints_2d`` is their projection by ``K``, ``mask`` and ``depth_m`` are the renderer's
(:mod:`.renderer`). ``visible[j]`` is true when joint ``j`` projects inside the image and the
rendered surface in its 3x3 pixel neighbourhood is no more than ``r_j + 8 mm`` in front of
the joint, ``r_j`` being the joint's distance to the nearest mesh vertex in the rest pose (the
local thickness of its finger or palm; 0 for fingertips, which are vertices): a finger or the
palm in front of the joint hides it. ``mano_pose`` uses ``flat_hand_mean=False`` (the sample
convention) and ``mano_trans`` is the translation added to the layer output (metres), so
``ManoLayer(flat_hand_mean=False, use_pca=False, center_idx=None)(mano_pose, mano_shape)`` in
metres plus ``mano_trans`` reproduces ``verts_cam_m``.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from training.synthetic.backgrounds import BackgroundSource
from training.synthetic.pose_prior import (
    anatomical_frames,
    finger_pose_to_mano,
    random_rotation,
    sample_finger_pose,
)
from training.synthetic.renderer import Light, Renderer

__all__ = ["SyntheticHands", "SKIN_TONES"]

# sRGB 0..1, light to dark.
SKIN_TONES = np.array([
    (0.98, 0.85, 0.76), (0.94, 0.76, 0.64), (0.88, 0.67, 0.53), (0.78, 0.56, 0.42),
    (0.64, 0.44, 0.31), (0.49, 0.32, 0.22), (0.34, 0.22, 0.15),
])
VISIBILITY_MARGIN_M = 0.008
HAND_CENTRE_JOINT = 9  # middle-finger MCP, canonical order


@dataclass
class _Draw:
    index: int
    rng: np.random.Generator
    side: str
    pose48: np.ndarray
    betas: np.ndarray
    frame_K: np.ndarray
    centre_px: np.ndarray
    depth_m: float


class SyntheticHands:
    """Generator of synthetic common samples; :meth:`sample` for one, :meth:`samples` batched.

    Args:
        image_size: output images are ``image_size`` x ``image_size``.
        seed: the dataset seed; sample ``i`` is a function of ``(seed, i)`` only.
        mano_root: folder or file of the official MANO models; None = synthetic model.
        background_dir: folder of background images; None = procedural backgrounds.
        distance_m: (min, max) camera depth of the hand centre.
        left_fraction: share of left hands.
        with_depth: also return ``depth_m`` (the rendered depth) in each sample.

    Rendering and MANO are set up lazily on first use, in the calling process (see the note on
    processes in :mod:`.renderer`).
    """

    def __init__(self, image_size: int = 256, seed: int = 0, mano_root=None, background_dir=None,
                 distance_m=(0.2, 1.5), left_fraction: float = 0.5, with_depth: bool = False):
        self.image_size = int(image_size)
        if self.image_size < 16:
            raise ValueError(f"image_size must be >= 16, got {image_size}")
        self.seed = int(seed)
        self.mano_root = None if mano_root is None else str(mano_root)
        self.distance_m = (float(distance_m[0]), float(distance_m[1]))
        if not 0.05 <= self.distance_m[0] <= self.distance_m[1]:
            raise ValueError(f"distance_m must be (min, max) with 0.05 <= min <= max, got {distance_m}")
        self.left_fraction = float(left_fraction)
        if not 0.0 <= self.left_fraction <= 1.0:
            raise ValueError(f"left_fraction must be in [0, 1], got {left_fraction}")
        if self.mano_root is not None:  # fail now (names the missing file), not in a worker
            from hand_pose_core.mano import resolve_mano_path

            for side in ("right", "left"):
                resolve_mano_path(self.mano_root, side)
        self.with_depth = bool(with_depth)
        self.backgrounds = BackgroundSource(background_dir, self.image_size, seed=self.seed)
        self._models = None
        self._renderer = None

    # ------------------------------------------------------------------ set-up
    def __getstate__(self):
        state = dict(self.__dict__)
        state["_models"] = None
        state["_renderer"] = None
        return state

    def _setup(self):
        if self._models is not None:
            return
        import torch

        from hand_pose_core.mano import ManoLayer, synthetic_mano

        models = {}
        for side in ("right", "left"):
            if self.mano_root is None:
                layer = ManoLayer(model=synthetic_mano(side), side=side, use_pca=False,
                                  flat_hand_mean=False)
            else:
                layer = ManoLayer(mano_root=self.mano_root, side=side, use_pca=False,
                                  flat_hand_mean=False)
            layer.eval()
            with torch.no_grad():
                flat = torch.zeros(1, 48)
                flat[0, 3:] = -layer.hands_mean  # flat hand in flat_hand_mean=False convention
                v0, j0 = layer(flat)
            v0 = v0[0].double().numpy() / 1000.0
            j0 = j0[0].double().numpy() / 1000.0
            J16 = layer.J_template.double().numpy()
            d = np.linalg.norm(j0[:, None] - v0[None], axis=2).min(axis=1)
            models[side] = dict(
                layer=layer,
                faces=layer.faces_np,
                frames=anatomical_frames(J16, side),
                hands_mean=layer.hands_mean.double().numpy(),
                rest_verts=v0,
                radius_m=d,
            )
        self._models = models
        self._renderer = Renderer(self.image_size, self.image_size)

    # ------------------------------------------------------------------ sampling
    def _draw(self, index: int) -> _Draw:
        rng = np.random.default_rng([self.seed, int(index)])
        side = "left" if rng.random() < self.left_fraction else "right"
        m = self._models[side]
        fingers = finger_pose_to_mano(sample_finger_pose(rng, m["frames"]), m["hands_mean"])
        pose48 = np.concatenate([random_rotation(rng), fingers])
        betas = np.clip(rng.normal(size=10), -2.5, 2.5)
        W0 = float(rng.choice([640, 848, 1280, 1920]))
        H0 = round(W0 * float(rng.choice([0.75, 0.5625])))
        fx = W0 * rng.uniform(0.55, 1.4)
        fy = fx * rng.uniform(0.98, 1.02)
        cx = (W0 - 1) / 2 + rng.normal(0, 0.01 * W0)
        cy = (H0 - 1) / 2 + rng.normal(0, 0.01 * H0)
        frame_K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]])
        centre_px = np.array([rng.uniform(0.1, 0.9) * W0, rng.uniform(0.1, 0.9) * H0])
        depth = rng.uniform(*self.distance_m)
        return _Draw(index, rng, side, pose48, betas, frame_K, centre_px, depth)

    def sample(self, index: int) -> dict:
        return self.samples([index])[0]

    def samples(self, indices) -> list[dict]:
        """Common samples for ``indices`` (MANO evaluated in one batch per side)."""
        import torch

        self._setup()
        draws = [self._draw(i) for i in indices]
        meshes = {}
        for side in ("right", "left"):
            sel = [k for k, d in enumerate(draws) if d.side == side]
            if not sel:
                continue
            pose = torch.as_tensor(np.stack([draws[k].pose48 for k in sel]), dtype=torch.float32)
            betas = torch.as_tensor(np.stack([draws[k].betas for k in sel]), dtype=torch.float32)
            with torch.no_grad():
                v, j = self._models[side]["layer"](pose, betas)  # trans=None; we add our own
            v = v.double().numpy() / 1000.0
            j = j.double().numpy() / 1000.0
            for n, k in enumerate(sel):
                meshes[k] = (v[n], j[n])
        return [self._finish(d, *meshes[k]) for k, d in enumerate(draws)]

    def _finish(self, d: _Draw, verts_m: np.ndarray, joints_m: np.ndarray) -> dict:
        rng, S, m = d.rng, self.image_size, self._models[d.side]
        # Place the hand centre at the chosen pixel and depth of the full-frame camera.
        ray = np.linalg.solve(d.frame_K, np.array([d.centre_px[0], d.centre_px[1], 1.0]))
        trans = ray * d.depth_m - joints_m[HAND_CENTRE_JOINT]
        verts = verts_m + trans
        joints = joints_m + trans
        # Square crop around the projected hand -> K of the crop.
        uv = verts @ d.frame_K.T
        uv = uv[:, :2] / uv[:, 2:]
        lo, hi = uv.min(0), uv.max(0)
        scale = rng.uniform(1.15, 1.8) if rng.random() < 0.85 else rng.uniform(1.8, 3.0)
        size = float(max(hi - lo)) * scale
        centre = (lo + hi) / 2 + rng.uniform(-0.12, 0.12, 2) * size
        left_top = centre - size / 2  # continuous coordinates of the crop's outer corner
        s = S / size
        K = np.array([[d.frame_K[0, 0] * s, 0.0, (d.frame_K[0, 2] - left_top[0] + 0.5) * s - 0.5],
                      [0.0, d.frame_K[1, 1] * s, (d.frame_K[1, 2] - left_top[1] + 0.5) * s - 0.5],
                      [0.0, 0.0, 1.0]])
        # Appearance.
        if rng.random() < 0.05:
            colours = np.broadcast_to(rng.uniform(0.1, 0.95, 3), verts.shape)
        else:
            t = rng.uniform(0, len(SKIN_TONES) - 1)
            i0 = int(np.floor(t))
            i1 = min(i0 + 1, len(SKIN_TONES) - 1)
            base = SKIN_TONES[i0] * (1 - (t - i0)) + SKIN_TONES[i1] * (t - i0)
            base = base * rng.uniform(0.93, 1.07, 3)
            w = rng.normal(size=(3, 3)) * (2 * np.pi / 0.06)
            phase = rng.uniform(0, 2 * np.pi, 3)
            var = 1.0 + 0.05 * np.sin(m["rest_verts"] @ w.T + phase).sum(1)
            colours = np.clip(base[None] * var[:, None], 0, 1)
        direction = rng.normal(size=3)
        direction[2] = -abs(direction[2]) - 0.3
        tint = 1.0 + rng.uniform(-0.1, 0.1, 3)
        light = Light(direction_cam=tuple(direction), color=tuple(tint / tint.max()),
                      ambient=rng.uniform(0.2, 0.5), diffuse=rng.uniform(0.45, 0.9),
                      specular=rng.uniform(0.0, 0.25), shininess=rng.uniform(5, 40))
        out = self._renderer.render(verts, m["faces"], K, vertex_colors=colours, light=light)
        # Composite on a background with a soft inner edge (only inside the hand's box).
        image = self.backgrounds(rng)
        rows = np.flatnonzero(out.mask.any(axis=1))
        cols = np.flatnonzero(out.mask.any(axis=0))
        if len(rows):
            y0, y1 = max(rows[0] - 1, 0), rows[-1] + 2
            x0, x1 = max(cols[0] - 1, 0), cols[-1] + 2
            maskf = out.mask[y0:y1, x0:x1].astype(np.float32)
            alpha = (maskf * cv2.GaussianBlur(maskf, (3, 3), 0.7))[..., None]
            bg = image[y0:y1, x0:x1].astype(np.float32)
            fg = out.rgb[y0:y1, x0:x1].astype(np.float32)
            image[y0:y1, x0:x1] = (bg + alpha * (fg - bg) + 0.5).astype(np.uint8)
        # Labels.
        j2 = joints @ K.T
        joints_2d = j2[:, :2] / j2[:, 2:]
        visible = self._visibility(joints, joints_2d, out.depth_m, m["radius_m"])
        sample = {
            "image": image,
            "K": K.astype(np.float32),
            "joints_cam_m": joints.astype(np.float32),
            "joints_2d": joints_2d.astype(np.float32),
            "visible": visible,
            "side": d.side,
            "id": f"synthetic/{self.seed}/{d.index:08d}",
            "mask": out.mask,
            "mano_pose": d.pose48.astype(np.float32),
            "mano_shape": d.betas.astype(np.float32),
            "mano_trans": trans.astype(np.float32),
            "verts_cam_m": verts.astype(np.float32),
        }
        if self.with_depth:
            sample["depth_m"] = out.depth_m
        return sample

    @staticmethod
    def _visibility(joints, joints_2d, depth, radius_m) -> np.ndarray:
        """Joint in the image and no surface more than r_j + 8 mm in front of it (3x3 pixels)."""
        H, W = depth.shape
        uv = np.round(joints_2d).astype(np.int64)
        inside = (uv[:, 0] >= 0) & (uv[:, 0] < W) & (uv[:, 1] >= 0) & (uv[:, 1] < H) & (joints[:, 2] > 0)
        pad = np.pad(depth, 1)
        offs = np.array([(dy, dx) for dy in range(3) for dx in range(3)])
        uc = np.clip(uv, [0, 0], [W - 1, H - 1])
        patch = pad[uc[:, 1:2] + offs[None, :, 0], uc[:, 0:1] + offs[None, :, 1]]  # (21, 9)
        limit = (joints[:, 2] - radius_m - VISIBILITY_MARGIN_M)[:, None]
        return inside & np.any((patch > 0) & (patch >= limit), axis=1)
