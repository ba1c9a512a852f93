"""Result types shared by the pipeline, the CLI and the ROS adapters.

Units and frames are in the field names: ``*_px`` are image pixels, ``*_m`` metres,
``*_cam_*`` the camera optical frame (x right, y down, z forward). All joint arrays use
the canonical 21-joint order (see :mod:`hand_pose_core.skeleton`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Hand:
    """One detected hand in one image.

    Attributes:
        side: 'left' or 'right' as seen by a non-mirrored camera (set ``mirrored=True`` on the
            estimator for selfie-style images).
        score: detection/presence confidence in [0, 1].
        joints_2d: (21, 2) float32, pixel coordinates (u, v) in the input image.
        joints_3d: (21, 3) float32, metres, camera optical frame.
        pose: (48,) float32 MANO axis-angle (global rotation first, then 15 joints), full pose
            (not PCA), MANO internal joint order, with hands_mean removed (flat_hand_mean=False).
        shape: (10,) float32 MANO betas.
        trans: (3,) float32 MANO translation, metres, camera frame.
        vertices: (778, 3) float32 MANO mesh vertices, metres, camera frame, or None when the
            mesh was not requested.
        faces: (1538, 3) int32 triangle indices into ``vertices`` (shared, do not modify).
        calibrated: False when no valid camera intrinsics were given and the default K was used;
            then the depth (z) of ``joints_3d`` is only a guess.
        handedness_score: probability that the hand is ``side`` (0.5..1).
        roi: rotated hand region as (cx_px, cy_px, size_px, rotation_rad), used for tracking.
        world_m: (21, 3) float32 hand-centred metric landmarks from the landmark network.
        joints_std_m: (21,) float32 per-joint uncertainty in metres (spread of the hypotheses of
            a sampling model such as the diffusion lift), or None when the model gives none.
        depth_used: True when an aligned depth image set this hand's distance (RGB-D fusion);
            False when it was placed from RGB alone.
    """

    side: str
    score: float
    joints_2d: np.ndarray
    joints_3d: np.ndarray
    pose: np.ndarray | None = None
    shape: np.ndarray | None = None
    trans: np.ndarray | None = None
    vertices: np.ndarray | None = None
    faces: np.ndarray | None = None
    calibrated: bool = True
    handedness_score: float = 1.0
    roi: tuple[float, float, float, float] | None = None
    world_m: np.ndarray | None = None
    joints_std_m: np.ndarray | None = None
    depth_used: bool = False
    extras: dict = field(default_factory=dict)

    def to_dict(self, with_mesh: bool = False) -> dict:
        """JSON-ready dict (lists of floats). Vertices and faces only when ``with_mesh``."""

        def as_list(a):
            return None if a is None else np.asarray(a).tolist()

        out = {
            "side": self.side,
            "score": float(self.score),
            "handedness_score": float(self.handedness_score),
            "calibrated": bool(self.calibrated),
            "joints_2d_px": as_list(self.joints_2d),
            "joints_3d_cam_m": as_list(self.joints_3d),
            "mano_pose": as_list(self.pose),
            "mano_shape": as_list(self.shape),
            "mano_trans_m": as_list(self.trans),
            "joints_std_m": as_list(self.joints_std_m),
            "depth_used": bool(self.depth_used),
        }
        if with_mesh:
            out["vertices_cam_m"] = as_list(self.vertices)
            out["faces"] = as_list(self.faces)
        return out
