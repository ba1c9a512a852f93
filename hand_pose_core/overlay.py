"""Overlay drawing: the 2D skeleton and the projected MANO mesh on an RGB image.

Pure drawing: it reads ``Hand`` results and the intrinsics ``K`` used to compute them and never
changes them. Used by the CLI (``--overlay``) and the ROS node's debug image.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from hand_pose_core.types import Hand

# Bones of the canonical 21-joint skeleton (parent, child), grouped by finger for colouring.
_FINGER_CHAINS = ((0, 1, 2, 3, 4), (0, 5, 6, 7, 8), (0, 9, 10, 11, 12), (0, 13, 14, 15, 16), (0, 17, 18, 19, 20))
_FINGER_COLOURS_RGB = ((230, 60, 60), (240, 180, 40), (60, 200, 80), (50, 140, 240), (180, 80, 220))
_MESH_COLOUR_RGB = np.array((120, 190, 255), np.float32)


def draw_hands(
    image_rgb: np.ndarray,
    hands: Sequence[Hand],
    K: np.ndarray | None = None,
    draw_mesh: bool = True,
    mesh_alpha: float = 0.55,
) -> np.ndarray:
    """Return a copy of ``image_rgb`` (HxWx3 uint8) with each hand's mesh (when ``K`` and vertices
    are given) and 2D skeleton drawn on it, plus a small label with side and score."""
    canvas = np.ascontiguousarray(image_rgb).copy()
    thickness = max(1, round(max(canvas.shape[:2]) / 400))
    if draw_mesh and K is not None:
        for hand in hands:
            if hand.vertices is not None and hand.faces is not None:
                canvas = _blend_mesh(canvas, hand.vertices, hand.faces, np.asarray(K, np.float64), mesh_alpha)
    for hand in hands:
        _draw_skeleton(canvas, hand.joints_2d, thickness)
        wrist = hand.joints_2d[0]
        label = f"{hand.side} {hand.score:.2f}" + ("" if hand.calibrated else " (uncalibrated)")
        org = _label_origin(canvas.shape, wrist, label, thickness)
        cv2.putText(canvas, label, org, cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thickness, (0, 0, 0), 3 * thickness, cv2.LINE_AA)
        cv2.putText(canvas, label, org, cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thickness, (255, 255, 255), thickness, cv2.LINE_AA)
    return canvas


def _label_origin(shape, anchor_px, label: str, thickness: int) -> tuple[int, int]:
    """Bottom-left corner for ``label`` next to ``anchor_px``, kept inside the image."""
    (w, h), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thickness, 3 * thickness)
    x = int(np.clip(anchor_px[0] + 4, 2, max(2, shape[1] - w - 2))) if np.isfinite(anchor_px[0]) else 2
    y = int(np.clip(anchor_px[1] + 14, h + 2, max(h + 2, shape[0] - 4))) if np.isfinite(anchor_px[1]) else h + 2
    return x, y


def _draw_skeleton(canvas: np.ndarray, uv_px: np.ndarray, thickness: int) -> None:
    if not np.all(np.isfinite(uv_px)):
        return
    points = np.round(uv_px).astype(np.int32)
    for chain, colour in zip(_FINGER_CHAINS, _FINGER_COLOURS_RGB):
        for parent, child in zip(chain[:-1], chain[1:]):
            cv2.line(canvas, tuple(points[parent]), tuple(points[child]), colour, 2 * thickness, cv2.LINE_AA)
    for joint, point in enumerate(points):
        colour = (255, 255, 255) if joint == 0 else _FINGER_COLOURS_RGB[(joint - 1) // 4]
        cv2.circle(canvas, tuple(point), 2 * thickness + 1, colour, -1, cv2.LINE_AA)


def _blend_mesh(canvas: np.ndarray, vertices_cam_m: np.ndarray, faces: np.ndarray, K: np.ndarray, alpha: float) -> np.ndarray:
    """Painter's-algorithm render of the mesh with flat Lambert shading (light at the camera)."""
    verts = np.asarray(vertices_cam_m, np.float64)
    if not np.all(np.isfinite(verts)) or np.any(verts[:, 2] <= 1e-3):
        return canvas  # behind or at the camera: nothing sensible to draw
    uv = verts[:, :2] / verts[:, 2:3] * np.array([K[0, 0], K[1, 1]]) + np.array([K[0, 2], K[1, 2]])
    tri = verts[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
    centres = tri.mean(axis=1)
    view = -centres / np.linalg.norm(centres, axis=1, keepdims=True)
    shade = np.abs(np.sum(normals * view, axis=1))  # two-sided: the synthetic model's winding may vary
    order = np.argsort(-centres[:, 2])  # far to near
    layer = canvas.copy()
    tri_uv = np.round(uv[faces] * 4).astype(np.int32)  # 2 bits of sub-pixel precision
    for f in order:
        colour = tuple(int(c) for c in _MESH_COLOUR_RGB * (0.35 + 0.65 * shade[f]))
        cv2.fillConvexPoly(layer, tri_uv[f], colour, cv2.LINE_AA, shift=2)
    return cv2.addWeighted(layer, alpha, canvas, 1.0 - alpha, 0.0)
