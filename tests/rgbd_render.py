"""Rendered RGB-D hands for the depth-fusion tests and benchmark (real offscreen OpenGL: the
project's moderngl/EGL renderer, ``training.synthetic.renderer``).

A MANO-format hand (the licence-free synthetic model, or the official one) is posed, placed in
the camera frame and rendered through an OpenCV K: a shaded RGB image, the exact depth (z, metres)
and the hand mask. :func:`structured_light_depth` then degrades the exact depth the way a
structured-light / active-stereo camera does: disparity quantisation, axial noise growing with
distance, holes in the projector's shadow beside the hand, dropped and mixed ("flying") pixels
at depth edges, random dropouts, and uint16 millimetres as a driver publishes them.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

def structured_light_depth(depth_m: np.ndarray, mask: np.ndarray, background_m: np.ndarray,
                           rng: np.random.Generator, fx: float, baseline_m: float = 0.05,
                           subpixel: float = 1.0 / 8.0, dropout: float = 0.01,
                           edge_hole: float = 0.5, flying: float = 0.3) -> np.ndarray:
    """Exact hand depth over a background depth -> uint16 millimetres with a structured-light
    camera's faults (projector ``baseline_m`` to the right of the camera)."""
    z = np.where(mask, depth_m, background_m).astype(np.float64)
    h, w = z.shape
    # axial noise (Nguyen et al. 2012, Kinect: 1.2 mm + 1.9 mm * (z - 0.4 m)^2) ...
    z = z + rng.normal(0.0, 1.0, z.shape) * (0.0012 + 0.0019 * (z - 0.4) ** 2)
    # ... and disparity quantisation to 1/8 pixel
    disp = fx * baseline_m / z
    z = fx * baseline_m / (np.round(disp / subpixel) * subpixel)
    holes = rng.random(z.shape) < dropout
    # projector shadow: background next to the hand that the projector cannot see
    d_hand = fx * baseline_m * (1.0 / np.where(mask, depth_m, np.inf) - 1.0 / background_m)
    shift = int(np.ceil(np.nanmax(np.where(mask, d_hand, 0.0)))) if mask.any() else 0
    shadow = np.zeros_like(mask)
    for s in range(1, shift + 1):
        shadow[:, :-s] |= mask[:, s:]
    holes |= shadow & ~mask
    # depth edges: holes and mixed pixels (between hand and background)
    edge = np.zeros_like(mask)
    edge[1:-1, 1:-1] = (mask[1:-1, 1:-1] != mask[:-2, 1:-1]) | (mask[1:-1, 1:-1] != mask[2:, 1:-1]) \
        | (mask[1:-1, 1:-1] != mask[1:-1, :-2]) | (mask[1:-1, 1:-1] != mask[1:-1, 2:])
    r = rng.random(z.shape)
    holes |= edge & (r < edge_hole)
    mix = edge & (r >= edge_hole) & (r < edge_hole + flying)
    t = rng.random(z.shape)
    fg = np.where(mask, depth_m, np.nan)
    with warnings.catch_warnings():  # all-NaN neighbourhoods (background) give NaN, as wanted
        warnings.simplefilter("ignore", RuntimeWarning)
        near_fg = np.nanmin(np.stack([np.roll(fg, k, axis=a) for a in (0, 1) for k in (-1, 1)]), axis=0)
    z = np.where(mix & np.isfinite(near_fg), t * near_fg + (1 - t) * background_m, z)
    # small blobs without a reading on the hand (dark / specular skin patches)
    for _ in range(int(rng.integers(0, 4))):
        ys, xs = np.nonzero(mask)
        if ys.size:
            k = int(rng.integers(ys.size))
            rr = int(rng.integers(1, 4))
            holes[max(ys[k] - rr, 0):ys[k] + rr + 1, max(xs[k] - rr, 0):xs[k] + rr + 1] = True
    mm = np.clip(np.round(z * 1000.0), 0, 65535).astype(np.uint16)
    mm[holes | ~np.isfinite(z)] = 0
    return mm


@dataclass
class RenderedHand:
    rgb: np.ndarray          # HxWx3 uint8
    depth_mm: np.ndarray     # HxW uint16, structured-light faults
    depth_exact_m: np.ndarray
    mask: np.ndarray
    joints_cam_m: np.ndarray  # (21, 3) ground truth
    K: np.ndarray
    scale: float             # hand size relative to the model's mean


class HandScene:
    """Random right hands at 0.3-1.0 m in front of a textured wall, rendered as RGB-D."""

    def __init__(self, width: int = 640, height: int = 480, fx: float = 600.0, mano_root=None) -> None:
        import torch

        from hand_pose_core.mano import ManoLayer, synthetic_mano

        self.K = np.array([[fx, 0, (width - 1) / 2], [0, fx, (height - 1) / 2], [0, 0, 1.0]])
        if mano_root:
            self.layer = ManoLayer(mano_root=mano_root, side="right", use_pca=False, flat_hand_mean=False)
        else:
            self.layer = ManoLayer(model=synthetic_mano("right"), use_pca=False, flat_hand_mean=False)
        self.faces = self.layer.faces_np
        from training.synthetic.renderer import Renderer

        self.width, self.height = int(width), int(height)
        self.renderer = Renderer(self.width, self.height)
        self._torch = torch

    def sample(self, rng: np.random.Generator, z_range=(0.3, 1.0), size_range=(0.85, 1.15)) -> RenderedHand:
        from scipy.spatial.transform import Rotation

        torch = self._torch
        w, h = self.width, self.height
        pose = np.zeros(48)
        pose[3:] = rng.normal(0.0, 0.25, 45)  # finger articulation around the mean pose
        # fingers up (-y), palm towards the camera (-z), then up to ~40 degrees of tilt
        base = Rotation.from_matrix(np.array([[0, 0, 1.0], [1.0, 0, 0], [0, 1.0, 0]]))  # model -x -> -y, -y -> -z
        tilt = Rotation.from_rotvec(rng.normal(0.0, 0.35, 3))
        pose[:3] = (tilt * base).as_rotvec()
        with torch.no_grad():
            v_mm, j_mm = self.layer(torch.tensor(pose[None], dtype=torch.float32), torch.zeros(1, 10))
        scale = float(rng.uniform(*size_range))
        v = v_mm[0].numpy().astype(np.float64) / 1000.0
        j = j_mm[0].numpy().astype(np.float64) / 1000.0
        centre = j[9].copy()  # middle MCP
        v, j = (v - centre) * scale, (j - centre) * scale
        z = rng.uniform(*z_range)
        # keep the whole hand in the image: offset by at most ~30 % of the half field of view
        x = rng.uniform(-0.3, 0.3) * z * (w / 2) / self.K[0, 0]
        y = rng.uniform(-0.2, 0.2) * z * (h / 2) / self.K[1, 1]
        t = np.array([x, y, z])
        v, j = v + t, j + t
        out = self.renderer.render(v, self.faces, self.K)
        rgb, depth, mask = out.rgb, out.depth_m, out.mask.astype(bool)
        # a textured wall 0.3-0.8 m behind the hand, slightly slanted
        zb = z + rng.uniform(0.3, 0.8)
        uu, vv = np.meshgrid(np.arange(w), np.arange(h))
        background = zb + 0.0002 * (uu - w / 2) * rng.uniform(-1, 1) + 0.0002 * (vv - h / 2) * rng.uniform(-1, 1)
        wall = (90 + 40 * np.sin(uu / 17.0) * np.cos(vv / 23.0) + rng.normal(0, 6, (h, w))).clip(0, 255)
        rgb = np.where(mask[:, :, None], rgb, np.stack([wall * 0.9, wall, wall * 1.1], -1).clip(0, 255).astype(np.uint8))
        depth_mm = structured_light_depth(depth, mask, background, rng, self.K[0, 0])
        return RenderedHand(rgb.astype(np.uint8), depth_mm, np.where(mask, depth, background).astype(np.float32),
                            mask, j, self.K.copy(), scale)

    def close(self) -> None:
        self.renderer.release()


def render_or_skip(seed: int, count: int, **sample_kw) -> list:
    """``count`` rendered RGB-D hands from ``HandScene().sample(rng, **sample_kw)``; the calling
    test is skipped (not failed) where no EGL context can be made."""
    import pytest

    from training.synthetic.renderer import RendererError

    scene = HandScene()
    rng = np.random.default_rng(seed)
    try:
        return [scene.sample(rng, **sample_kw) for _ in range(count)]
    except RendererError as e:  # no EGL on this machine
        pytest.skip(f"offscreen OpenGL (moderngl EGL) unavailable: {e}")
    finally:
        scene.close()
