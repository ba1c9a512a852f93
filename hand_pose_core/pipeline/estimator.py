"""HandPoseEstimator: RGB image -> list of :class:`~hand_pose_core.types.Hand`.

Stages per frame (times in ``last_timings_ms``):

1. ``palm``: letterbox to 192x192, palm detector, decode + weighted NMS, palm -> hand ROI.
   Skipped in tracking mode while ``max_hands`` hands are tracked.
2. ``landmark``: warp every ROI (tracked and new) to 224x224, run them as ONE batch, map
   landmarks back to the image; drop crops whose presence is below the threshold. Crops that
   were badly framed (new palm ROIs, fast motion) are re-made from their own landmarks and
   re-run as a second batch (``refine_passes``).
3. ``lifter`` (only with a trained ``model``/``checkpoint``): the lifter of :mod:`.lifters`
   replaces the world landmarks by its own wrist-relative 3D (and, with ``lifter_2d``, the 2D).
   ``metric3d``: place the hand-centred metric landmarks in the camera frame
   from the 2D joints and K (:mod:`.metric3d`).
   ``depth``: with an aligned depth image, each hand's distance comes from the depth readings
   under it instead of the assumed hand size (:mod:`.depth_fusion`; RGB placement kept, per
   hand, where the depth is missing or disagrees).
4. ``mano``: fit MANO to the placed joints (optional), giving pose/shape/trans and the mesh.

Tracking (video): each hand's landmarks give the next frame's ROI; the palm detector runs
only while fewer than ``max_hands`` hands are tracked (so a lost hand is re-detected on
the next frame), and detections that overlap a tracked hand are dropped.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..types import Hand
from .handedness import side_from_handedness
from .landmarks import crop_to_image_landmarks, is_present, rotate_world_to_image
from .palm_decoding import decode_palm_detections, unletterbox_detections
from .roi import (Roi, apply_affine, crop_roi, invert_affine, landmarks_to_roi, letterbox,
                  palm_to_roi)
from .anchors import PALM_INPUT_SIZE_PX
from .threads import SingleThreadBlas

# a new detection whose ROI overlaps a tracked hand's ROI this much is that hand
TRACK_DEDUP_IOU = 0.5
# handedness is averaged over a track (exponential weight of the newest frame)
HANDEDNESS_EMA = 0.3
# A crop is re-run on its landmark-derived ROI when it came from a palm detection (palm ROIs
# frame the hand coarsely) or when that ROI differs from the crop's ROI by more than this
# (centre shift and log size change relative to the size, rotation in rad; fast motion leaves
# tracked ROIs behind). The landmark network is most accurate on crops framed the way its
# tracking ROI frames them. On the shared video, against MediaPipe's tracked landmarks: static
# images 3.4 -> 1.6 px (median; MediaPipe's own static mode: 3.4 px), tracking on every 5th
# frame 1.6 -> 1.5 px, while at the full 25 fps ~1 % of frames need the second pass.
REFINE_SHIFT = 0.05
REFINE_SCALE = 0.10
REFINE_ROT_RAD = 0.10


def _create_runner(model: str, backend: str, variant: str, device: str, precision: str):
    from ..backends import create_runner

    options = {}
    if backend == "torch" and str(device).startswith("cuda"):
        options["cuda_graphs"] = True  # fixed-shape networks: replay captured graphs
    return create_runner(model, backend=backend, variant=variant, device=device,
                         precision=precision, **options)


def _run_network(runner, x) -> tuple[np.ndarray, ...]:
    """Run ``runner`` on a numpy batch, or on a torch batch (GPU pre-processing): on the
    runner's own device when it takes tensors (torch, tensorrt), else via the host."""
    if isinstance(x, np.ndarray):
        return runner(x)
    if hasattr(runner, "run_torch"):
        return tuple(o.float().cpu().numpy() for o in runner.run_torch(x))
    return runner(x.cpu().numpy())


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def validate_image(image_rgb) -> np.ndarray:
    """Check an RGB image: numpy uint8 array of shape (H, W, 3) with H, W > 0."""
    if not isinstance(image_rgb, np.ndarray):
        raise ValueError("image must be a numpy array (H, W, 3) uint8 RGB, "
                         f"got {type(image_rgb).__name__}")
    if image_rgb.dtype != np.uint8:
        raise ValueError(f"image dtype must be uint8 (0..255 RGB), got {image_rgb.dtype}")
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
        raise ValueError(f"image must have shape (H, W, 3) RGB, got {image_rgb.shape}")
    if image_rgb.shape[0] == 0 or image_rgb.shape[1] == 0:
        raise ValueError(f"image is empty: shape {image_rgb.shape}")
    return image_rgb


def roi_bounds(roi: Roi) -> np.ndarray:
    """Axis-aligned bounds (x_min, y_min, x_max, y_max) of a rotated square ROI."""
    cx, cy, size, rot = roi
    half = 0.5 * size * (abs(np.cos(rot)) + abs(np.sin(rot)))
    return np.array([cx - half, cy - half, cx + half, cy + half])


def roi_changed(a: Roi, b: Roi) -> bool:
    """True when ROI ``b`` is not within the refinement tolerances of ROI ``a``."""
    shift = np.hypot(b[0] - a[0], b[1] - a[1]) / a[2]
    dscale = abs(np.log(b[2] / a[2]))
    drot = abs((b[3] - a[3] + np.pi) % (2 * np.pi) - np.pi)
    return bool(shift > REFINE_SHIFT or dscale > REFINE_SCALE or drot > REFINE_ROT_RAD)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    lt, rb = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = float(np.prod(np.clip(rb - lt, 0, None)))
    union = float(np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter)
    return inter / union if union > 0 else 0.0


def _to_batch(crops: list[np.ndarray]) -> np.ndarray:
    """uint8 HxWx3 crops -> float32 [B, 3, H, W] in [0, 1]."""
    return np.stack(crops).transpose(0, 3, 1, 2).astype(np.float32) * np.float32(1.0 / 255.0)


@dataclass
class _Track:
    roi: Roi
    p_right: float
    from_palm: bool = False
    mano_init: object = None  # previous ManoParams (warm start), for side mano_side
    mano_side: str = ""
    lift_uv: object = None  # the lifter's 2D joints (image px) when they replace the landmarks
    lift_std: object = None  # the lifter's per-joint uncertainty (m), if any
    scale_px: float = 0.0
    filters: dict = field(default_factory=dict)


class HandPoseEstimator:
    """Monocular RGB -> 2D/3D hand joints in the camera frame and MANO parameters/mesh.

    Args:
        max_hands: most hands returned per image.
        backend, device, precision, variant: inference backend ('auto' | 'litert' |
            'onnxruntime' | 'torch' | 'tensorrt'), device ('cpu' | 'cuda' | 'auto'),
            'fp32' | 'fp16', model variant ('full' | 'lite'). 'auto' (default) picks the fastest
            measured backend per network: on the CPU 'litert' (MediaPipe's .tflite palm detector
            in XNNPACK; onnxruntime without ai-edge-litert) and 'onnxruntime' for the landmark
            network; 'torch' on CUDA (docs/benchmarks.md).
        min_detection_score: palm detector threshold; nms_iou: weighted-NMS IoU.
        min_presence_score: landmark presence threshold (below it the hand is dropped/lost).
        mirrored: the images are mirrored (selfie view); swaps the reported side.
        tracking: reuse the previous frame's hands (video). Use False for unrelated images.
        smoothing: One-Euro filter 2D joints and world landmarks over time (tracking only).
        fit_mano: fit MANO to every hand (pose/shape/trans; refined ``joints_3d``).
        with_mesh: also return MANO vertices/faces (needs ``fit_mano``).
        mano_root: folder/file of the official MANO model (None: the fitter's default).
        refine_passes: extra landmark passes for hands whose crop was badly framed (new palm
            detections, fast motion): the crop is re-made from the landmarks and re-run.
            0 gives MediaPipe's behaviour; 1 (default) halves the static-image distance to
            MediaPipe's tracked reference landmarks of the shared video (3.4 -> 1.6 px median),
            at the cost of a second landmark batch on frames with new detections.
        model: 'mediapipe' (default: MediaPipe's world landmarks give the 3D) or the name of a
            trained model ('mano_regressor', 'zimmermann_brox', ...) whose model file
            ``checkpoint`` supplies the wrist-relative 3D instead (:mod:`.lifters`; a missing or
            corrupt file raises :class:`~hand_pose_core.models.checkpoint.CheckpointError`).
        checkpoint: model file (safetensors written by training) for a trained ``model``.
        lifter_2d: report and place with the trained model's own 2D joints instead of the
            landmark network's (crops and tracking still follow the landmark network).
        coarse_variant: landmark network variant for the first (framing-only) pass over new
            palm crops when ``refine_passes`` >= 1; None uses ``variant``. 'lite' saves ~1/3 of
            that pass but was measured worse on the shared video (static median 1.90 vs
            1.66 px), so it is off by default (docs/benchmarks.md).
        preprocess: 'numpy' (OpenCV on the host), 'torch' (letterbox, ROI crops and
            normalisation in torch on the network's device, the frame uploaded once through a
            pinned buffer: :mod:`.torch_preprocess`) or 'auto' (torch for the torch and
            tensorrt backends on CUDA, else numpy).

    ``__call__`` returns :class:`~hand_pose_core.types.Hand` objects, highest presence first.
    ``joints_2d`` use the OpenCV/ROS pixel convention (pixel centres at integer coordinates).
    ``joints_3d`` are the MANO-fitted joints when ``fit_mano``, else the placed network joints.
    ``extras``: ``reproj_err_px`` (RMS of the metric placement), ``z_rel_px`` (the network's
    relative depth, image pixels), ``joints_3d_placed_m`` (placed joints before the MANO fit;
    depth-fused when depth was used), ``depth_fusion`` (with depth: used, the reason when not,
    the scale applied to the RGB placement, windows / inliers).
    ``last_timings_ms`` holds the stage times of the latest call: palm, landmark, metric3d,
    mano, total (a skipped stage is 0), and depth when a depth image was given.
    """

    def __init__(self, max_hands: int = 2, backend: str = "auto", device: str = "cpu",
                 precision: str = "fp32", variant: str = "full", min_detection_score: float = 0.5,
                 min_presence_score: float = 0.5, nms_iou: float = 0.3, mirrored: bool = False,
                 tracking: bool = True, smoothing: bool = False, smoothing_min_cutoff: float = 1.0,
                 smoothing_beta: float = 10.0, fit_mano: bool = True, with_mesh: bool = True,
                 mano_root: str | None = None, refine_passes: int = 1, model: str = "mediapipe",
                 checkpoint: str | None = None, lifter_2d: bool = False,
                 coarse_variant: str | None = None, preprocess: str = "auto") -> None:
        if (not isinstance(max_hands, (int, np.integer)) or isinstance(max_hands, bool)
                or max_hands < 1):
            raise ValueError(f"max_hands must be a positive integer, got {max_hands!r}")
        for name, v in (("min_detection_score", min_detection_score),
                        ("min_presence_score", min_presence_score), ("nms_iou", nms_iou)):
            if not (isinstance(v, (int, float)) and 0.0 <= float(v) <= 1.0):
                raise ValueError(f"{name} must be a number in [0, 1], got {v!r}")
        if variant not in ("full", "lite"):
            raise ValueError(f"unknown variant {variant!r}; choose 'full' or 'lite'")
        if with_mesh and not fit_mano:
            raise ValueError("with_mesh=True needs fit_mano=True (the mesh comes from the MANO "
                             "fit)")
        if not isinstance(refine_passes, (int, np.integer)) or refine_passes < 0:
            raise ValueError(f"refine_passes must be an integer >= 0, got {refine_passes!r}")
        self.refine_passes = int(refine_passes)
        if coarse_variant not in (None, "full", "lite"):
            raise ValueError(f"unknown coarse_variant {coarse_variant!r}; choose None, 'full' or 'lite'")
        self.max_hands = int(max_hands)
        self.min_detection_score = float(min_detection_score)
        self.min_presence_score = float(min_presence_score)
        self.nms_iou = float(nms_iou)
        self.mirrored = bool(mirrored)
        self.tracking = bool(tracking)
        self.smoothing = bool(smoothing)
        self.smoothing_min_cutoff = float(smoothing_min_cutoff)
        self.smoothing_beta = float(smoothing_beta)
        self.fit_mano = bool(fit_mano)
        self.with_mesh = bool(with_mesh)
        if self.smoothing:  # fail early on bad filter parameters
            from .smoothing import OneEuroFilter

            OneEuroFilter(self.smoothing_min_cutoff, self.smoothing_beta)

        from ..backends import resolve_auto_backend

        self.backend = backend
        palm_backend = resolve_auto_backend(device, "palm") if backend == "auto" else backend
        landmark_backend = resolve_auto_backend(device, "landmark") if backend == "auto" else backend
        backend = palm_backend
        if preprocess not in ("auto", "numpy", "torch"):
            raise ValueError(f"unknown preprocess {preprocess!r}; choose 'auto', 'numpy' or 'torch'")
        on_cuda = str(device).startswith("cuda") or (device == "auto" and backend in ("torch", "tensorrt")
                                                      and _cuda_available())
        if preprocess == "auto":
            preprocess = "torch" if on_cuda and backend in ("torch", "tensorrt") else "numpy"
        self.preprocess = preprocess
        self._uploader = None
        if preprocess == "torch":
            from .torch_preprocess import PinnedUploader

            self._uploader = PinnedUploader(("cuda" if device == "auto" else device) if on_cuda else "cpu")
        self._frame_t = None  # the current frame on the pre-processing device (torch path)
        self.model = str(model)
        self.lifter_2d = bool(lifter_2d)
        self._lifter = None
        if self.model == "mediapipe":
            if checkpoint:
                raise ValueError("checkpoint is only used with a trained model (model='mano_regressor', "
                                 "'zimmermann_brox', ...); model='mediapipe' uses the built-in networks")
        else:
            from .lifters import load_lifter

            self._lifter = load_lifter(checkpoint, device=device, expected_model=self.model)

        self._palm = _create_runner("palm", backend, variant, device, precision)
        self._landmark = _create_runner("landmark", landmark_backend, variant, device, precision)
        # landmark network for the first, framing-only pass over new palm crops (refined after)
        self._coarse = self._landmark
        if self.refine_passes and coarse_variant not in (None, variant):
            self._coarse = _create_runner("landmark", landmark_backend, coarse_variant, device, precision)
        self._fitter = None
        if self.fit_mano:
            from ..mano.fit import ManoFitter

            self._fitter = ManoFitter(mano_root=mano_root,
                                      device=device if device != "auto" else "cpu")
        self._tracks: list[_Track] = []
        self.last_timings_ms: dict[str, float] = {}

    @property
    def lifter(self):
        """The trained model's :class:`~.lifters.Lifter` (None with ``model='mediapipe'``); its
        attributes (e.g. a sampling model's number of hypotheses) can be changed here."""
        return self._lifter

    def reset(self) -> None:
        """Forget tracked hands (call between unrelated videos)."""
        self._tracks = []

    # -- stages ------------------------------------------------------------------------
    def detect_palms(self, image_rgb: np.ndarray) -> list[tuple[float, Roi]]:
        """Palm detector on the whole image -> [(score, hand ROI)], best first."""
        if self._frame_t is not None:
            from .torch_preprocess import letterbox_torch

            x, m = letterbox_torch(self._frame_t, PALM_INPUT_SIZE_PX)
        else:
            img, m = letterbox(image_rgb, PALM_INPUT_SIZE_PX)
            x = _to_batch([img])
        boxes, logits = _run_network(self._palm, x)[:2]
        dets = decode_palm_detections(boxes[0], logits[0], self.min_detection_score, self.nms_iou)
        dets = unletterbox_detections(dets, m)
        return [(d.score, palm_to_roi(d.box_px, d.keypoints_px)) for d in dets]

    def _landmarks(self, image_rgb: np.ndarray, rois: list[Roi], runner=None):
        if self._frame_t is not None:
            from .torch_preprocess import crop_rois_torch

            x = crop_rois_torch(self._frame_t, rois)
        else:
            x = _to_batch([crop_roi(image_rgb, r)[0] for r in rois])
        lm, presence, p_right, world = _run_network(runner or self._landmark, x)[:4]
        return (np.asarray(lm).reshape(len(rois), 21, 3), np.asarray(presence).reshape(-1),
                np.asarray(p_right).reshape(-1), np.asarray(world).reshape(len(rois), 21, 3))

    # -- main entry ----------------------------------------------------------------------
    def __call__(self, image_rgb: np.ndarray, K: np.ndarray | None = None,
                 depth: np.ndarray | None = None, timestamp_s: float | None = None) -> list[Hand]:
        """Estimate the hands in one RGB uint8 image (H, W, 3).

        K: 3x3 intrinsics in pixels; None uses the documented default guess (results are
        then flagged ``calibrated=False``). depth: optional (H, W) depth image aligned to the
        colour image (registered to its pixels), float32 metres or uint16 millimetres, 0 or NaN
        where there is no reading (REP 118); it sets each hand's distance (``Hand.depth_used``).
        timestamp_s: capture time for smoothing (default: the host clock).
        """
        from ..camera import resolve_intrinsics

        t_start = time.perf_counter()
        validate_image(image_rgb)
        h, w = image_rgb.shape[:2]
        K, calibrated = resolve_intrinsics(K, w, h)
        depth_m = None
        if depth is not None:
            if not isinstance(depth, np.ndarray):
                raise TypeError(f"depth must be an (H, W) numpy array, got {type(depth).__name__} "
                                "(the capture time is the keyword argument timestamp_s=)")
            from .depth_fusion import depth_to_metres

            depth_m = depth_to_metres(depth, (h, w))
        t_s = time.monotonic() if timestamp_s is None else float(timestamp_s)
        self._frame_t = self._uploader.upload(image_rgb) if self._uploader is not None else None
        try:
            return self._estimate(image_rgb, K, calibrated, t_s, t_start, depth_m)
        finally:
            self._frame_t = None

    def _estimate(self, image_rgb, K, calibrated, t_s, t_start, depth_m=None) -> list[Hand]:
        timings = {"palm": 0.0, "landmark": 0.0, "metric3d": 0.0, "mano": 0.0}
        if depth_m is not None:
            timings["depth"] = 0.0
        tracks = self._tracks if self.tracking else []
        candidates: list[_Track] = list(tracks)
        if len(tracks) < self.max_hands:
            t0 = time.perf_counter()
            tracked_bounds = [roi_bounds(t.roi) for t in tracks]
            for _score, roi in self.detect_palms(image_rgb):
                if len(candidates) >= self.max_hands:
                    break
                b = roi_bounds(roi)
                if any(_iou(b, tb) > TRACK_DEDUP_IOU for tb in tracked_bounds):
                    continue
                candidates.append(_Track(roi=roi, p_right=float("nan"), from_palm=True))
            timings["palm"] = (time.perf_counter() - t0) * 1e3

        results: list[tuple[_Track, float, np.ndarray, np.ndarray]] = []
        if candidates:
            t0 = time.perf_counter()
            results = self._dedup(self._track_landmarks(image_rgb, candidates))
            timings["landmark"] = (time.perf_counter() - t0) * 1e3

        if self._lifter is not None and results:
            t0 = time.perf_counter()
            results = self._lift(image_rgb, results)
            timings["lifter"] = (time.perf_counter() - t0) * 1e3

        hands: list[Hand] = []
        new_tracks: list[_Track] = []
        placed = []
        t0 = time.perf_counter()
        from .metric3d import place_hand_in_camera

        for c, presence, joints_px, world_m in results:
            uv = joints_px[:, :2] if c.lift_uv is None else c.lift_uv
            if self.smoothing and self.tracking:
                uv, world_m = self._smooth(c, uv, world_m, t_s)
            try:
                placement = place_hand_in_camera(uv, world_m, K)
            except ValueError:  # collapsed landmarks: not a usable hand, drop it (and its track)
                continue
            placed.append((c, presence, uv, world_m, placement, joints_px))
        timings["metric3d"] = (time.perf_counter() - t0) * 1e3

        fusions = [None] * len(placed)
        if depth_m is not None and placed:
            t0 = time.perf_counter()
            from dataclasses import replace

            from .depth_fusion import fuse_hand_depth

            for i, p in enumerate(placed):
                fusions[i] = fuse_hand_depth(p[4].joints_cam_m, p[2], depth_m, K)
                if fusions[i].used:  # the MANO fit and the outputs start from the fused joints
                    placed[i] = p[:4] + (replace(p[4], joints_cam_m=fusions[i].joints_cam_m),) + p[5:]
            timings["depth"] = (time.perf_counter() - t0) * 1e3

        fits = [None] * len(placed)
        if self._fitter is not None and placed:
            t0 = time.perf_counter()
            sides = [side_from_handedness(c.p_right, self.mirrored)[0] for c, *_ in placed]
            init = [c.mano_init if (self.tracking and c.mano_side == side) else None
                    for (c, *_), side in zip(placed, sides)]
            with SingleThreadBlas():
                fits = self._fitter.fit(
                    np.stack([p[4].joints_cam_m for p in placed]), np.stack([p[2] for p in placed]),
                    K, sides=sides, init=init, with_vertices=self.with_mesh)
            timings["mano"] = (time.perf_counter() - t0) * 1e3

        for (c, presence, uv, world_m, placement, joints_px), fit, fusion in zip(placed, fits, fusions):
            side, side_score = side_from_handedness(c.p_right, self.mirrored)
            joints_3d = np.asarray(placement.joints_cam_m, np.float32)
            hand = Hand(side=side, score=presence, joints_2d=np.asarray(uv, np.float32),
                        joints_3d=joints_3d, calibrated=bool(calibrated),
                        handedness_score=float(side_score), roi=tuple(float(v) for v in c.roi),
                        world_m=np.asarray(world_m, np.float32), joints_std_m=c.lift_std)
            hand.extras["reproj_err_px"] = float(placement.reproj_err_px)
            hand.extras["z_rel_px"] = np.asarray(joints_px[:, 2], np.float32)
            if fusion is not None:
                hand.depth_used = bool(fusion.used)
                hand.extras["depth_fusion"] = {"used": bool(fusion.used), "reason": fusion.reason,
                                               "scale": float(fusion.scale), "windows": fusion.n_windows,
                                               "inliers": fusion.n_inliers}
            if fit is not None:
                hand.joints_3d = np.asarray(fit.joints_m, np.float32)
                hand.pose = np.asarray(fit.params.pose, np.float32).reshape(48)
                hand.shape = np.asarray(fit.params.shape, np.float32).reshape(10)
                hand.trans = np.asarray(fit.params.trans, np.float32).reshape(3)
                if self.with_mesh:
                    hand.vertices = np.asarray(fit.vertices_m, np.float32)
                    hand.faces = self._fitter.faces(side)
                hand.extras["joints_3d_placed_m"] = joints_3d
                c.mano_init, c.mano_side = fit.params, side
            hands.append(hand)
            c.roi = landmarks_to_roi(joints_px)
            new_tracks.append(c)

        self._tracks = new_tracks if self.tracking else []
        timings["total"] = (time.perf_counter() - t_start) * 1e3
        self.last_timings_ms = timings
        return hands

    def _track_landmarks(self, image_rgb: np.ndarray, candidates: list[_Track]):
        """Landmarks for all candidate ROIs in one batch, then (``refine_passes``) one more
        batch for those whose landmark-derived ROI differs notably from the crop's ROI.
        Returns [(track, presence, joints_px [21,3], world_m [21,3])] for present hands;
        each track's ``roi`` is the ROI its landmarks came from."""
        found: dict[int, tuple] = {}
        todo = list(range(len(candidates)))
        rois = {i: candidates[i].roi for i in todo}
        for it in range(1 + self.refine_passes):
            if not todo:
                break
            if it == 0 and self._coarse is not self._landmark:
                # new palm crops only need framing on this pass: the (cheaper) coarse network
                groups = [[i for i in todo if not candidates[i].from_palm],
                          [i for i in todo if candidates[i].from_palm]]
                runners = [self._landmark, self._coarse]
            else:
                groups, runners = [todo], [self._landmark]
            nxt = []
            for group, runner in zip(groups, runners):
                if group:
                    nxt += self._landmark_pass(image_rgb, candidates, group, rois, runner, it, found)
            todo = nxt
        out = []
        for i, (presence, joints_px, world_m, p, roi) in sorted(found.items()):
            c = candidates[i]
            c.roi, c.from_palm = roi, False
            c.p_right = p if not np.isfinite(c.p_right) else (
                (1 - HANDEDNESS_EMA) * c.p_right + HANDEDNESS_EMA * p)
            out.append((c, presence, joints_px, world_m))
        return out

    def _lift(self, image_rgb: np.ndarray, results):
        """Run the trained lifter on crops of the hands' ROIs: its wrist-relative 3D (crop axes)
        replaces the world landmarks, rotated to the image axes like MediaPipe's."""
        S = self._lifter.crop_size_px
        crops, uv_crop, affines = [], [], []
        for c, _presence, joints_px, _world in results:
            crop, a = crop_roi(image_rgb, c.roi, S)
            crops.append(crop)
            affines.append(a)
            uv_crop.append(apply_affine(invert_affine(a), joints_px[:, :2]))
        kw = {}
        if getattr(self._lifter, "wants_sides", False):
            # the side as it looks in the crop (not the person's hand in a mirrored image)
            kw["sides"] = [side_from_handedness(c.p_right, False)[0] for c, *_ in results]
        out = self._lifter(np.stack(crops), np.asarray(uv_crop, np.float32), None, **kw)
        lifted = []
        for k, (c, presence, joints_px, _world) in enumerate(results):
            c.lift_uv = apply_affine(affines[k], out.joints_2d_crop_px[k]) if self.lifter_2d else None
            c.lift_std = (None if out.joints_std_m is None
                          else np.asarray(out.joints_std_m[k], np.float32))
            world = rotate_world_to_image(out.joints_rel_m[k], c.roi)
            lifted.append((c, presence, joints_px, world))
        return lifted

    def _landmark_pass(self, image_rgb, candidates, todo, rois, runner, it, found) -> list[int]:
        """One landmark batch over ``todo``; fills ``found`` and returns the indices whose
        crop should be re-made from their landmarks and re-run."""
        lm, presence, p_right, world = self._landmarks(image_rgb, [rois[i] for i in todo], runner)
        nxt = []
        for k, i in enumerate(todo):
            if not is_present(presence[k], self.min_presence_score):
                continue  # lost (tracked), false palm (new), or a refinement that lost it
            joints_px = crop_to_image_landmarks(lm[k], rois[i])
            found[i] = (float(presence[k]), joints_px, rotate_world_to_image(world[k], rois[i]),
                        float(p_right[k]), rois[i])
            new_roi = landmarks_to_roi(joints_px)
            if (it == 0 and candidates[i].from_palm) or roi_changed(rois[i], new_roi):
                rois[i] = new_roi
                nxt.append(i)
        return nxt

    @staticmethod
    def _dedup(results):
        """Two crops can lock onto the same hand (e.g. a tracked ROI and a new palm, or two
        tracks converging); keep the one with the higher presence."""
        results = sorted(results, key=lambda r: -r[1])
        kept, kept_bounds = [], []
        for r in results:
            pts = r[2][:, :2]
            b = np.concatenate([pts.min(0), pts.max(0)])
            if any(_iou(b, kb) > TRACK_DEDUP_IOU for kb in kept_bounds):
                continue
            kept.append(r)
            kept_bounds.append(b)
        return kept

    def _smooth(self, track: _Track, uv_px: np.ndarray, world_m: np.ndarray, t_s: float):
        """One-Euro filter per track. 2D joints are filtered in units of the hand's size
        (fixed when the track starts) so ``smoothing_beta`` does not depend on resolution."""
        from .smoothing import OneEuroFilter

        if not track.filters:
            span = uv_px.max(0) - uv_px.min(0)
            track.scale_px = float(max(span.max(), 1.0))
            track.filters = {k: OneEuroFilter(self.smoothing_min_cutoff, self.smoothing_beta)
                             for k in ("uv", "world")}
        uv = track.filters["uv"].filter(uv_px / track.scale_px, t_s) * track.scale_px
        # metres -> units of ~10 cm (a hand's size), so one beta suits both streams
        world = track.filters["world"].filter(world_m / 0.1, t_s) * 0.1
        return uv, world
