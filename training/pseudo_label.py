"""Pseudo-labelled footage: run the default tracker over a user's own video and keep its output
as teacher labels (``hand-pose pseudo-label``), read back by ``build_dataset('footage', DIR)``.

This is how a user adapts a model to their own camera without annotating anything.

Sources: a video file, a folder of images (sorted by name; :mod:`hand_pose_core.frames`), or a
ROS 2 bag (folder with ``metadata.yaml``, ``.mcap`` or ``.db3``; read with ``rosbags``, no
ROS install needed) holding ``sensor_msgs/Image`` (rgb8, bgr8, rgba8, bgra8, mono8) or
``sensor_msgs/CompressedImage``; a ``sensor_msgs/CameraInfo`` in the bag gives ``K`` when
``--K`` is not set.

The tracker is :class:`hand_pose_core.pipeline.estimator.HandPoseEstimator` with
``tracking=True`` and the MANO fit (the node's default pipeline).

Layout of ``DIR`` (``NAME`` = ``%08d_%d`` % (frame number, hand index in that frame))::

    DIR/meta.json          written last: {"format": "hand_pose_ros/footage", "version": 1,
                           "source", "count" (hands), "frames" (frames read), "fps",
                           "K" (3x3 of the full frames), "calibrated" (K given or from the bag),
                           "crop_size", "crop_scale", "min_score", "split" {...}, "confidence"}
    DIR/crops/NAME.jpg     the hand crop (RGB JPEG, crop_size x crop_size, axis-aligned square
                           around the tracker's 2D joints, crop_scale x their extent; outside the
                           frame is black)
    DIR/labels/NAME.npy    one record of LABEL_DTYPE (np.load allow_pickle=False):
                           frame, t_s, hand (index in the frame), side, score (presence),
                           handedness_score, K (3x3 of the CROP), crop_box (L, T, size: the crop's
                           outer square in frame pixel-edge coordinates, so frame pixel
                           u = L + (u_crop + 0.5) * size / crop_size - 0.5), joints_2d (crop px),
                           joints_cam_m (teacher 3D, metres, camera frame: the MANO-fitted joints),
                           joints_conf, visible, mano_pose, mano_shape, mano_trans, verts_cam_m,
                           has_mano, reproj_err_px

Per-joint confidence (``joints_conf``, 0..1):

    conf_j = presence_score * exp(-0.5 * (e_j / sigma)^2)

``e_j`` is the distance in frame pixels between the tracker's 2D joint and the projection of
its 3D joint (after the MANO fit, which only admits anatomically possible hands), and
``sigma = 0.05 x`` the hand's 2D extent (at least 2 px): joints where a plausible 3D hand
cannot explain the 2D detection are down-weighted. ``visible`` = the joint lies inside the crop
and ``conf >= 0.3``.

The crop is axis-aligned and only scaled, so the camera frame is unchanged: ``K`` of the crop is
the frame ``K`` scaled and shifted, and the 3D labels stay in the camera frame. With no
calibration (no ``--K``, no CameraInfo) the documented default K is used: the 3D shape is right
but its absolute depth is a guess (``calibrated: false`` in meta.json; the reader can drop such 3D).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

__all__ = ["pseudo_label", "iter_footage", "label_name", "parse_label_name", "joint_confidence", "crop_box", "LABEL_DTYPE",
           "FORMAT", "read_meta", "read_labels", "BAG_SUFFIXES"]

FORMAT = "hand_pose_ros/footage"
VERSION = 1
BAG_SUFFIXES = (".mcap", ".db3")
VISIBLE_MIN_CONF = 0.3
LABEL_DTYPE = np.dtype([
    ("frame", "<i8"), ("t_s", "<f8"), ("hand", "<i4"), ("side", "<U5"), ("score", "<f4"),
    ("handedness_score", "<f4"), ("K", "<f4", (3, 3)), ("crop_box", "<f8", (3,)),
    ("joints_2d", "<f4", (21, 2)), ("joints_cam_m", "<f4", (21, 3)), ("joints_conf", "<f4", (21,)),
    ("visible", "?", (21,)), ("mano_pose", "<f4", (48,)), ("mano_shape", "<f4", (10,)),
    ("mano_trans", "<f4", (3,)), ("verts_cam_m", "<f4", (778, 3)), ("has_mano", "?"),
    ("reproj_err_px", "<f4"),
])
CONFIDENCE_RULE = ("presence * exp(-0.5 (e/sigma)^2), e = |2D joint - projected 3D joint| px, "
                   "sigma = max(2, 0.05 * 2D hand extent)")


def label_name(frame: int, hand: int) -> str:
    """File stem of the label of ``hand`` in ``frame`` (sorting by name = by frame)."""
    return f"{int(frame):08d}_{int(hand)}"


def parse_label_name(stem: str) -> tuple[int, int]:
    """(frame, hand) from a label file stem; ValueError names the stem."""
    try:
        frame, hand = stem.split("_")
        return int(frame), int(hand)
    except ValueError:
        raise ValueError(f"label file name {stem!r} is not FRAME_HAND (e.g. 00000012_0)") from None


# --------------------------------------------------------------------------- sources
def _is_bag(path: Path) -> bool:
    return (path.is_dir() and (path / "metadata.yaml").is_file()) or path.suffix.lower() in BAG_SUFFIXES


def _bag_image_to_rgb(msg, msgtype: str) -> np.ndarray:
    if msgtype.endswith("CompressedImage"):
        bgr = cv2.imdecode(np.asarray(msg.data, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"cannot decode a CompressedImage ({msg.format!r})")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    channels = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
    enc = msg.encoding.lower()
    if enc not in channels:
        raise ValueError(f"unsupported Image encoding {msg.encoding!r} (supported: {', '.join(channels)})")
    h, w, c = int(msg.height), int(msg.width), channels[enc]
    data = np.asarray(msg.data, np.uint8)
    if int(msg.step) < w * c or data.size < h * int(msg.step):
        raise ValueError(f"Image {w}x{h} {enc}: step {msg.step} / {data.size} bytes do not fit")
    img = data[: h * int(msg.step)].reshape(h, int(msg.step))[:, : w * c].reshape(h, w, c)
    conv = {"rgb8": None, "bgr8": cv2.COLOR_BGR2RGB, "rgba8": cv2.COLOR_RGBA2RGB,
            "bgra8": cv2.COLOR_BGRA2RGB, "mono8": cv2.COLOR_GRAY2RGB}[enc]
    return np.ascontiguousarray(img) if conv is None else cv2.cvtColor(img, conv)


def _iter_bag(path: Path, topic: str | None):
    from rosbags.highlevel import AnyReader

    image_types = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
    try:
        reader = AnyReader([path])
        reader.open()
    except Exception as err:  # rosbags raises several reader errors
        raise ValueError(f"cannot read bag {path}: {err}") from err
    try:
        conns = {c.topic: c for c in reader.connections}
        images = [t for t, c in conns.items() if c.msgtype in image_types]
        if topic:
            if topic not in images:
                raise ValueError(f"bag {path} has no image topic {topic!r}; image topics: {images}")
            images = [topic]
        if not images:
            raise ValueError(f"bag {path} has no sensor_msgs Image/CompressedImage topic; "
                             f"topics: {sorted(conns)}")
        image_topic = images[0]
        infos = [t for t, c in conns.items() if c.msgtype == "sensor_msgs/msg/CameraInfo"]
        sibling = image_topic.rsplit("/", 1)[0] + "/camera_info"
        info_topic = sibling if sibling in infos else (infos[0] if len(infos) == 1 else None)
        wanted = [conns[image_topic]] + ([conns[info_topic]] if info_topic else [])
        K = None
        t0 = None
        for conn, t_ns, raw in reader.messages(connections=wanted):
            msg = reader.deserialize(raw, conn.msgtype)
            if conn.topic == info_topic:
                k = np.asarray(msg.k, np.float64).reshape(3, 3)
                K = k if k[0, 0] > 0 and k[1, 1] > 0 else K
                continue
            t0 = t_ns if t0 is None else t0
            yield _bag_image_to_rgb(msg, conn.msgtype), (t_ns - t0) * 1e-9, K
    finally:
        reader.close()


def iter_footage(source, fps: float | None = None, topic: str | None = None
                 ) -> Iterator[tuple[np.ndarray, float, np.ndarray | None]]:
    """(RGB frame, time in seconds, K from the source or None) for a video, image folder or bag."""
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"no such video, image folder or bag: {path}")
    if _is_bag(path):
        yield from _iter_bag(path, topic)
        return
    from hand_pose_core.frames import iter_frames

    frames, _count, rate = iter_frames(path, fps)
    for i, rgb in enumerate(frames):
        yield rgb, i / rate, None


# --------------------------------------------------------------------------- labels
def joint_confidence(joints_2d_px, joints_cam_m, K, presence: float) -> np.ndarray:
    """Per-joint confidence (see the module docstring), (21,) float32."""
    uv = np.asarray(joints_2d_px, np.float64)
    X = np.asarray(joints_cam_m, np.float64)
    if not np.all(np.isfinite(X)) or np.any(X[:, 2] <= 0):
        return np.zeros(21, np.float32)
    p = X @ np.asarray(K, np.float64).T
    proj = p[:, :2] / p[:, 2:]
    err = np.linalg.norm(proj - uv, axis=1)
    sigma = max(2.0, 0.05 * float(np.max(uv.max(0) - uv.min(0))))
    return (float(presence) * np.exp(-0.5 * (err / sigma) ** 2)).astype(np.float32)


def crop_box(joints_2d_px, scale: float, min_size_px: float = 32.0) -> tuple[float, float, float]:
    """Square (L, T, size) around the 2D joints in pixel-EDGE coordinates (pixel i spans i..i+1)."""
    uv = np.asarray(joints_2d_px, np.float64)
    lo, hi = uv.min(0), uv.max(0)
    size = max(float(np.max(hi - lo)) * scale, min_size_px)
    cu, cv = (lo + hi) / 2 + 0.5  # centre in edge coordinates
    return cu - size / 2, cv - size / 2, size


def crop_affine(box, crop_size: int) -> np.ndarray:
    """2x3 matrix taking frame pixels (centres at integers) to crop pixels."""
    L, T, size = box
    s = crop_size / size
    return np.array([[s, 0.0, (0.5 - L) * s - 0.5], [0.0, s, (0.5 - T) * s - 0.5]])


def _mano_layers(mano_root):
    from hand_pose_core.mano import ManoLayer, synthetic_mano

    layers = {}
    for side in ("right", "left"):
        if mano_root is None:
            layers[side] = ManoLayer(model=synthetic_mano(side), side=side, use_pca=False, flat_hand_mean=False)
        else:
            layers[side] = ManoLayer(mano_root=str(mano_root), side=side, use_pca=False, flat_hand_mean=False)
    return layers


def _mano_trans(layer, pose, shape, verts_cam_m) -> np.ndarray | None:
    """Translation that, added to ``layer(pose, shape)`` in metres (no trans, no centring),
    gives the estimator's vertices; None when they do not agree (then no MANO label is kept)."""
    import torch

    with torch.no_grad():
        v, _ = layer(torch.as_tensor(pose, dtype=torch.float32)[None],
                     torch.as_tensor(shape, dtype=torch.float32)[None])
    v = v[0].double().numpy() / 1000.0
    t = (np.asarray(verts_cam_m, np.float64) - v).mean(0)
    resid = np.abs(v + t - verts_cam_m).max()
    return t if resid < 2e-3 else None


def pseudo_label(source, out, *, K=None, crop_size: int = 256, crop_scale: float = 1.6,
                 min_score: float = 0.5, max_frames: int | None = None, every: int = 1,
                 fps: float | None = None, topic: str | None = None, max_hands: int = 2,
                 backend: str = "onnxruntime", variant: str = "full", mirrored: bool = False,
                 mano_root=None, jpeg_quality: int = 95, progress: bool = True,
                 estimator=None) -> dict:
    """Track hands through ``source`` and write teacher labels into ``out`` (layout above).

    ``every`` keeps every n-th frame (the tracker still sees all of them); ``max_frames``
    stops after that many frames read. Returns the meta dict.
    """
    from tqdm import tqdm

    from hand_pose_core.camera import resolve_intrinsics, validate_intrinsics

    out = Path(out)
    if (out / "meta.json").exists():
        raise ValueError(f"{out} already holds a footage dataset; choose another --out")
    if (out / "labels").is_dir() and any((out / "labels").iterdir()):
        raise ValueError(f"{out} holds labels of an unfinished run (no meta.json); delete it or "
                         "choose another --out")
    if int(crop_size) < 16 or not crop_scale > 1.0 or int(every) < 1:
        raise ValueError(f"need crop_size >= 16, crop_scale > 1 and every >= 1; got {crop_size}, "
                         f"{crop_scale}, {every}")
    (out / "crops").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    if estimator is None:
        from hand_pose_core.pipeline.estimator import HandPoseEstimator

        estimator = HandPoseEstimator(max_hands=max_hands, backend=backend, variant=variant,
                                      mirrored=mirrored, tracking=True, fit_mano=True,
                                      with_mesh=True, mano_root=None if mano_root is None else str(mano_root))
    layers = _mano_layers(mano_root)
    user_K = None if K is None else validate_intrinsics(K)
    count = frames = 0
    frame_K = None
    calibrated = False
    bar = tqdm(desc="pseudo-label", unit="frame", disable=not progress)
    for index, (rgb, t_s, bag_K) in enumerate(iter_footage(source, fps, topic)):
        if max_frames is not None and index >= int(max_frames):
            break
        frames += 1
        h, w = rgb.shape[:2]
        K_in = user_K if user_K is not None else bag_K
        frame_K, calibrated = resolve_intrinsics(K_in, w, h)
        hands = estimator(rgb, frame_K if calibrated else None, timestamp_s=t_s)
        bar.update(1)
        if index % int(every):
            continue
        for n, hand in enumerate(hands):
            if hand.score < min_score:
                continue
            rec = np.zeros((), LABEL_DTYPE)
            box = crop_box(hand.joints_2d, crop_scale)
            M = crop_affine(box, crop_size)
            crop = cv2.warpAffine(rgb, M, (crop_size, crop_size), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            Kc = np.vstack([M @ frame_K, [0.0, 0.0, 1.0]])
            uv_crop = hand.joints_2d @ M[:, :2].T + M[:, 2]
            conf = joint_confidence(hand.joints_2d, hand.joints_3d, frame_K, hand.score)
            inside = np.all((uv_crop >= -0.5) & (uv_crop <= crop_size - 0.5), axis=1)
            rec["frame"], rec["t_s"], rec["hand"], rec["side"] = index, t_s, n, hand.side
            rec["score"], rec["handedness_score"] = hand.score, hand.handedness_score
            rec["K"], rec["crop_box"] = Kc, box
            rec["joints_2d"], rec["joints_cam_m"] = uv_crop, hand.joints_3d
            rec["joints_conf"], rec["visible"] = conf, inside & (conf >= VISIBLE_MIN_CONF)
            rec["reproj_err_px"] = hand.extras.get("reproj_err_px", np.nan)
            if hand.pose is not None and hand.vertices is not None:
                t = _mano_trans(layers[hand.side], hand.pose, hand.shape, hand.vertices)
                if t is not None:
                    rec["mano_pose"], rec["mano_shape"], rec["mano_trans"] = hand.pose, hand.shape, t
                    rec["verts_cam_m"], rec["has_mano"] = hand.vertices, True
            name = label_name(index, n)
            ok, jpg = cv2.imencode(".jpg", crop[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
            (out / "crops" / f"{name}.jpg").write_bytes(jpg.tobytes())
            with open(out / "labels" / f"{name}.npy", "wb") as f:
                np.save(f, rec, allow_pickle=False)
            count += 1
        bar.set_postfix(hands=count)
    bar.close()
    if frames == 0:
        raise ValueError(f"{source}: no frames read")
    meta = {
        "format": FORMAT, "version": VERSION, "source": str(source), "count": count,
        "frames": frames, "K": np.asarray(frame_K).tolist(), "calibrated": bool(calibrated),
        "crop_size": int(crop_size), "crop_scale": float(crop_scale), "min_score": float(min_score),
        "every": int(every), "mano": "synthetic" if mano_root is None else str(mano_root),
        "confidence": CONFIDENCE_RULE, "visible_min_conf": VISIBLE_MIN_CONF,
    }
    tmp = out / f".meta.json.{os.getpid()}"
    tmp.write_text(json.dumps(meta, indent=1))
    tmp.replace(out / "meta.json")
    return meta


def read_meta(root) -> dict:
    path = Path(root) / "meta.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {root} is not a complete footage dataset "
                                "(write one with `hand-pose pseudo-label VIDEO --out DIR`)")
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} meta file")
    if meta.get("version") != VERSION:
        raise ValueError(f"{path}: unsupported version {meta.get('version')!r} (this reader knows {VERSION})")
    for key, typ in (("count", int), ("frames", int), ("calibrated", bool), ("crop_size", int)):
        if not isinstance(meta.get(key), typ):
            raise ValueError(f"{path}: {key!r} must be {typ.__name__}, got {meta.get(key)!r}")
    return meta


def read_labels(path) -> np.ndarray:
    try:
        rec = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable label file ({err})") from err
    if rec.dtype != LABEL_DTYPE or rec.shape != ():
        raise ValueError(f"{path}: expected one record of dtype {LABEL_DTYPE.descr}, got {rec.dtype} {rec.shape}")
    return rec
