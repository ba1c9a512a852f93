"""The node's parameters: one table holding name, default, description and whether it can change
at runtime. ``config/hand_pose.yaml`` must list the same defaults (a test checks it)."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

# Parameters passed straight to HandPoseEstimator(...) under the same name.
ESTIMATOR_ARGS = (
    "max_hands", "backend", "device", "precision", "variant", "min_detection_score",
    "min_presence_score", "nms_iou", "mirrored", "tracking", "smoothing",
    "smoothing_min_cutoff", "smoothing_beta", "fit_mano", "with_mesh", "mano_root", "refine_passes",
    "model", "checkpoint",
)


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    description: str
    read_only: bool = False  # True: fixed at start-up (a change is refused with a reason)
    choices: tuple = ()
    min_value: float | None = None
    max_value: float | None = None


PARAMS: tuple[Param, ...] = (
    # --- estimator (changing one of the runtime ones rebuilds the estimator between frames)
    Param("backend", "auto", "inference backend (auto: the fastest measured for the device, LiteRT (MediaPipe's .tflite) on a CPU, torch on CUDA; litert; onnxruntime; torch; tensorrt for NVIDIA GPUs)", read_only=True),
    Param("device", "cpu", "inference device: cpu, cuda or auto", read_only=True),
    Param("precision", "fp32", "numeric precision of the networks (fp32, fp16)", read_only=True),
    Param("variant", "full", "MediaPipe model variant (full, lite)", read_only=True),
    Param("mano_root", "", "folder or file of the official MANO model (MANO_RIGHT.pkl / MANO_LEFT.pkl); empty: the fitter's default", read_only=True),
    Param("model", "mediapipe", "where the 3D comes from: mediapipe (built-in world landmarks) or a trained "
          "model (mano_regressor, zimmermann_brox, ...) loaded from checkpoint"),
    Param("checkpoint", "", "model file (.safetensors written by training) of a trained model; used "
          "when model is not mediapipe"),
    Param("max_hands", 2, "largest number of hands reported per frame", min_value=1, max_value=8),
    Param("min_detection_score", 0.5, "palm detection score threshold, 0..1", min_value=0.0, max_value=1.0),
    Param("min_presence_score", 0.5, "hand presence score threshold, 0..1", min_value=0.0, max_value=1.0),
    Param("nms_iou", 0.3, "IoU of palm non-maximum suppression, 0..1", min_value=0.0, max_value=1.0),
    Param("mirrored", False, "true for selfie-style (horizontally mirrored) images: swaps left/right"),
    Param("tracking", True, "reuse the previous frame's hand regions (video); false: detect every frame"),
    Param("smoothing", False, "one-euro filter on the joints over time"),
    Param("smoothing_min_cutoff", 1.0, "one-euro min cutoff, Hz (lower: smoother at rest)", min_value=1e-6),
    Param("smoothing_beta", 10.0, "one-euro speed coefficient (higher: less lag when moving)", min_value=0.0),
    Param("fit_mano", True, "fit MANO pose/shape/translation to the joints (needed for /hand/mano and /hand/mesh)"),
    Param("with_mesh", True, "compute MANO mesh vertices (needed for /hand/mesh)"),
    Param("refine_passes", 1, "extra landmark passes on crops re-framed from their own landmarks "
          "(new detections, fast motion); 0: MediaPipe's single pass", min_value=0, max_value=3),
    # --- input
    Param("image_transport", "raw", "raw: subscribe sensor_msgs/Image on 'image'; compressed: "
          "sensor_msgs/CompressedImage on 'image/compressed'", read_only=True, choices=("raw", "compressed")),
    Param("image_reliability", "best_effort", "QoS reliability of the image subscription (depth 1). "
          "best_effort matches every publisher; reliable only reliable ones", read_only=True,
          choices=("best_effort", "reliable")),
    Param("max_image_pixels", 7680 * 4320, "images with more pixels are refused (counted as too_large)", min_value=1),
    Param("frame_id", "", "override the output frame_id; empty: the image's header.frame_id"),
    Param("use_camera_info", True, "use camera_info intrinsics; false: always the default K (calibrated=0)"),
    Param("cameras", "", "comma-separated camera namespaces served by this node (e.g. 'wrist,head': topics "
          "wrist/image, wrist/camera_info, wrist/depth -> wrist/hand/joints3d, ...); the crops of all cameras' "
          "latest frames go through the networks as one batch. Empty: one camera on image, camera_info, depth",
          read_only=True),
    Param("use_depth", True, "fuse an aligned depth image from the 'depth' topic (sensor_msgs/Image 16UC1 mm "
          "or 32FC1 m, registered to the colour image) when one matches the image's stamp"),
    Param("depth_tolerance_s", 0.02, "largest stamp difference between an image and its depth image, s "
          "(0: exact stamps only)", min_value=0.0, max_value=1.0),
    # --- outputs
    Param("publish_mano", True, "publish /hand/mano"),
    Param("publish_mesh", True, "publish /hand/mesh (built only while someone subscribes)"),
    Param("publish_markers", True, "publish /hand/markers (built only while someone subscribes)"),
    Param("publish_debug_image", False, "always publish /hand/debug_image; false: only while someone subscribes"),
    Param("marker_lifetime_s", 1.0, "lifetime of RViz markers, s, so a stopped node leaves no stale hands "
          "(0: forever)", min_value=0.0, max_value=3600.0),
    Param("diagnostics_period_s", 1.0, "period of /diagnostics, s", read_only=True, min_value=0.05,
          max_value=3600.0),
)

PARAMS_BY_NAME = {p.name: p for p in PARAMS}


def check_value(p: Param, value: Any) -> str | None:
    """None when ``value`` is acceptable for ``p``, else the reason (for SetParametersResult).

    Numbers must be finite: NaN passes every range comparison, and inf overflows message fields
    (e.g. a marker lifetime), so both are refused for every numeric parameter.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return f"{p.name} must be a finite number, got {value!r}"
    if p.name == "cameras":
        names = [n.strip().strip("/") for n in str(value).split(",") if n.strip().strip("/")]
        bad = [n for n in names if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*", n)]
        if bad:
            return f"cameras: {bad} are not valid ROS namespaces (letters, digits, _ and /, not starting with a digit)"
        if len(set(names)) != len(names):
            return f"cameras: {names} has duplicates"
        if len(names) > 8:
            return f"cameras: at most 8, got {len(names)}"
    if p.choices and value not in p.choices:
        return f"{p.name} must be one of {list(p.choices)}, got {value!r}"
    if p.min_value is not None and value < p.min_value:
        return f"{p.name} must be >= {p.min_value}, got {value!r}"
    if p.max_value is not None and value > p.max_value:
        return f"{p.name} must be <= {p.max_value}, got {value!r}"
    return None
