"""Several cameras in one hand_pose_node (parameter ``cameras``, e.g. ``['wrist', 'head']``).

Each camera namespace ``<ns>`` gets what the single-camera node has: a subscription to
``<ns>/image`` (or ``<ns>/image/compressed``) feeding its own latest-wins one-slot buffer, a
``<ns>/camera_info`` subscription, an optional aligned ``<ns>/depth`` (matched to each image by
stamp, as the single-camera node's ``depth``), its publishers ``<ns>/hand/joints3d``, ``<ns>/hand/mano``,
``<ns>/hand/mesh``, ``<ns>/hand/markers``, ``<ns>/hand/debug_image``, its own bad-input /
latency bookkeeping (one ``/diagnostics`` status per camera) and its own tracking state in the
estimator (stream = the namespace).

One worker cycle takes the newest frame of every camera that has one (after waiting at most
``cameras_wait_s`` for the other cameras that are streaming, so frames captured together are
processed together) and runs them through ``HandPoseEstimator.estimate_many``: palm detection
per image, the hand crops of all images in one landmark-network batch per pass, then the
per-image placement and MANO fit. Every output carries its own image's header.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from visualization_msgs.msg import MarkerArray

from hand_pose_core.camera import InvalidIntrinsicsError, K_from_camera_info_k, default_intrinsics
from hand_pose_core.overlay import draw_hands
from hand_pose_ros import hand_msgs
from hand_pose_ros.diagnostics import NodeStats, diagnostic_array
from hand_pose_ros.hand_pose_node import _PROCESSED_KINDS, DEPTH_WAIT_S, LATENCY_VALID_MS
from hand_pose_ros.image_conv import (ImageFormatError, compressed_msg_to_rgb, depth_msg_to_array, image_msg_to_rgb,
                                      rgb_to_image_msg)
from hand_pose_ros.latest_slot import LatestSlot, StampedBuffer

# a camera counts as streaming (worth waiting for in a cycle) this long after its last frame
ACTIVE_AFTER_LAST_FRAME_S = 0.5


def _often(n: int) -> bool:
    """Log at the 1st, 10th, 100th, ... occurrence."""
    return n == 1 or (n >= 10 and str(n).strip("0") == "1")


@dataclass
class PreparedFrame:
    """A camera's frame converted and checked, ready for the estimator."""
    camera: "CameraInput"
    msg: object
    received_monotonic: float
    rgb: np.ndarray
    K: np.ndarray | None
    depth: np.ndarray | None  # aligned depth image matched by stamp, or None
    header: object
    stamp_s: float
    t_start: float  # perf_counter when its conversion started
    prep_ms: float = 0.0  # conversion and checks


class CameraInput:
    """One camera namespace: subscriptions, latest-wins slot, camera_info, publishers, stats."""

    def __init__(self, node, ns: str, cond: threading.Condition, cfg: dict, image_qos, info_qos, depth_qos,
                 output_qos) -> None:
        self.node = node
        self.ns = ns
        self._cfg = cfg  # the node's live settings (runtime parameters apply here too)
        self.slot = LatestSlot(cond)
        self.depth_buffer = StampedBuffer(size=4)
        self.depth_counts = {"frames_with_depth": 0, "frames_without_depth": 0, "hands_depth_used": 0,
                             "hands_depth_fallback": 0}
        self.stats = NodeStats()
        self.last_received_monotonic: float | None = None
        self._info_lock = threading.Lock()
        self._camera_info: CameraInfo | None = None
        self.camera_info_state = "waiting"
        self.last_stamp_s: float | None = None
        self._warned_once: set[str] = set()
        self._last_bad_text: dict[str, str] = {}
        self._mesh_serializer = hand_msgs.MeshMarkerSerializer()
        if cfg["image_transport"] == "compressed":
            self.sub_image = node.create_subscription(CompressedImage, f"{ns}/image/compressed", self._on_image, image_qos)
        else:
            self.sub_image = node.create_subscription(Image, f"{ns}/image", self._on_image, image_qos)
        self.sub_info = node.create_subscription(CameraInfo, f"{ns}/camera_info", self._on_camera_info, info_qos)
        self.sub_depth = node.create_subscription(Image, f"{ns}/depth", self._on_depth, depth_qos)
        self.pub_joints = node.create_publisher(PointCloud2, f"{ns}/hand/joints3d", output_qos)
        self.pub_mano = node.create_publisher(PointCloud2, f"{ns}/hand/mano", output_qos)
        self.pub_mesh = node.create_publisher(MarkerArray, f"{ns}/hand/mesh", output_qos)
        self.pub_markers = node.create_publisher(MarkerArray, f"{ns}/hand/markers", output_qos)
        self.pub_debug = node.create_publisher(Image, f"{ns}/hand/debug_image",
                                               QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))

    @property
    def image_topic(self) -> str:
        return self.sub_image.topic_name

    # -------------------------------------------------------------- callbacks (executor thread)
    def _on_image(self, msg) -> None:
        now = time.monotonic()
        self.last_received_monotonic = now
        self.slot.put((msg, now))

    def _on_camera_info(self, msg: CameraInfo) -> None:
        with self._info_lock:
            self._camera_info = msg

    def _on_depth(self, msg: Image) -> None:
        self.depth_buffer.put(msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec, msg)

    # -------------------------------------------------------------- logging
    def _log(self):
        return self.node.get_logger()

    def warn_bad(self, kind: str, text: str) -> None:
        """As the single-camera node: the first in full, then at 10, 100, ... occurrences."""
        n = self.stats.count_bad(kind)
        new_problem = kind in _PROCESSED_KINDS and self._last_bad_text.get(kind) != text
        self._last_bad_text[kind] = text
        if _often(n) or new_problem:
            if kind.startswith("depth_"):
                self._log().warning(f"camera '{self.ns}': bad depth image ({kind}, seen {n}x): {text}. The frame "
                                    "is processed without depth (RGB-only placement)")
            elif kind in _PROCESSED_KINDS:
                self._log().warning(f"camera '{self.ns}': bad camera_info ({kind}, seen {n}x): {text}. The frame "
                                    "is processed using the default K (outputs flagged calibrated=0)")
            else:
                self._log().warning(f"camera '{self.ns}': dropped frame ({kind}, seen {n}x): {text}")

    def _warn_once(self, key: str, text: str) -> None:
        if key not in self._warned_once:
            self._warned_once.add(key)
            self._log().warning(f"camera '{self.ns}': {text}")

    # -------------------------------------------------------------- worker thread
    def intrinsics(self, width: int, height: int):
        """K (3x3) from this camera's camera_info, or None (default K, calibrated=0)."""
        if not self._cfg["use_camera_info"]:
            self.camera_info_state = "disabled (default K)"
            return None
        with self._info_lock:
            info = self._camera_info
        if info is None:
            self.camera_info_state = "missing (default K)"
            self._warn_once("no_camera_info", f"no camera_info on '{self.sub_info.topic_name}' yet: using the "
                            "default intrinsics (fx = fy = 1.2 * max(w, h)); depth is a guess (calibrated=0) "
                            "until one arrives")
            return None
        if (info.width, info.height) != (width, height) and (info.width or info.height):
            self.camera_info_state = "size mismatch (default K)"
            self.warn_bad("camera_info_size_mismatch",
                          f"camera_info is for {info.width}x{info.height} but the image is {width}x{height}")
            return None
        try:
            K = K_from_camera_info_k(info.k, width, height)
        except InvalidIntrinsicsError as e:
            self.camera_info_state = "invalid (default K)"
            self.warn_bad("bad_camera_info", f"camera_info.k rejected: {e}")
            return None
        if self.camera_info_state != "ok":
            self._log().info(f"camera '{self.ns}': using camera_info intrinsics fx={K[0, 0]:.1f} "
                             f"fy={K[1, 1]:.1f} cx={K[0, 2]:.1f} cy={K[1, 2]:.1f}")
            self.camera_info_state = "ok"
        return K

    def depth_state(self) -> str:
        if not self._cfg["use_depth"]:
            return "disabled"
        last = self.depth_buffer.last_arrival()
        if last is None:
            return f"none received on '{self.sub_depth.topic_name}'"
        return "ok" if time.monotonic() - last < 2.0 else f"stale ({time.monotonic() - last:.0f} s)"

    def depth_for(self, header, width: int, height: int):
        """This camera's depth image matching the image's stamp (within depth_tolerance_s), or
        None; as the single-camera node."""
        if not self._cfg["use_depth"] or self.depth_buffer.last_arrival() is None:
            return None
        stamp_ns = header.stamp.sec * 1_000_000_000 + header.stamp.nanosec
        live = time.monotonic() - self.depth_buffer.last_arrival() < 1.0
        msg = self.depth_buffer.match(stamp_ns, int(self._cfg["depth_tolerance_s"] * 1e9),
                                      DEPTH_WAIT_S if live else 0.0)
        if msg is None:
            return None
        try:
            depth = depth_msg_to_array(msg, self._cfg["max_image_pixels"])
        except ImageFormatError as e:
            self.warn_bad(f"depth_{e.kind}", str(e))
            return None
        if depth.shape != (height, width):
            self.warn_bad("depth_size_mismatch", f"depth image is {depth.shape[1]}x{depth.shape[0]} but the colour "
                          f"image is {width}x{height}: the depth must be aligned (registered) to the colour image")
            return None
        return depth

    def prepare(self, msg, received_monotonic: float, estimator) -> PreparedFrame | None:
        """Convert and check one frame; None when it is dropped (counted and logged)."""
        t0 = time.perf_counter()
        try:
            if isinstance(msg, CompressedImage):
                rgb = compressed_msg_to_rgb(msg, self._cfg["max_image_pixels"])
            else:
                rgb = image_msg_to_rgb(msg, self._cfg["max_image_pixels"])
        except ImageFormatError as e:
            self.warn_bad(e.kind, str(e))
            return None
        height, width = rgb.shape[:2]
        K = self.intrinsics(width, height)
        header = msg.header
        if self._cfg["frame_id"]:
            header.frame_id = self._cfg["frame_id"]
        elif not header.frame_id:
            self._warn_once("no_frame_id", "image header.frame_id is empty: outputs carry an empty frame_id; "
                            "set the frame_id parameter")
        stamp_s = header.stamp.sec + header.stamp.nanosec * 1e-9
        if stamp_s == 0.0:
            self._warn_once("no_stamp", "image header.stamp is zero: the driver does not stamp its images")
            stamp_s = self.node.get_clock().now().nanoseconds * 1e-9
        if self.last_stamp_s is not None and stamp_s < self.last_stamp_s:
            self._log().info(f"camera '{self.ns}': image stamps went backwards (replay loop?): resetting "
                             "its tracker")
            estimator.reset(stream=self.ns)
        self.last_stamp_s = stamp_s
        depth = self.depth_for(header, width, height)
        return PreparedFrame(self, msg, received_monotonic, rgb, K, depth, header, stamp_s, t0)

    def publish(self, frame: PreparedFrame, hands, estimator_ms: float) -> None:
        """Publish one frame's outputs with its own header and record its statistics."""
        header = frame.header
        t0 = time.perf_counter()
        if self._cfg["use_depth"]:
            self.depth_counts["frames_with_depth" if frame.depth is not None else "frames_without_depth"] += 1
            if frame.depth is not None:
                used = sum(h.depth_used for h in hands)
                self.depth_counts["hands_depth_used"] += used
                self.depth_counts["hands_depth_fallback"] += len(hands) - used
        self.pub_joints.publish(hand_msgs.joints_cloud(hands, header))
        if self._cfg["publish_mano"]:
            self.pub_mano.publish(hand_msgs.mano_cloud(hands, header))
        lifetime = self._cfg["marker_lifetime_s"]
        if self._cfg["publish_markers"] and self.pub_markers.get_subscription_count() > 0:
            self.pub_markers.publish(hand_msgs.skeleton_markers(hands, header, lifetime))
        if self._cfg["publish_mesh"] and self.pub_mesh.get_subscription_count() > 0:
            self.pub_mesh.publish(self._mesh_serializer.serialize(hands, header, lifetime))
        if self._cfg["publish_debug_image"] or self.pub_debug.get_subscription_count() > 0:
            h, w = frame.rgb.shape[:2]
            K_draw = frame.K if frame.K is not None else default_intrinsics(w, h)
            self.pub_debug.publish(rgb_to_image_msg(draw_hands(frame.rgb, hands, K_draw), header))
        t1 = time.perf_counter()
        now_ns = self.node.get_clock().now().nanoseconds
        stamp_ns = header.stamp.sec * 1_000_000_000 + header.stamp.nanosec
        latency_ms = ((now_ns - stamp_ns) * 1e-6 if stamp_ns
                      else (time.monotonic() - frame.received_monotonic) * 1e3)
        if not LATENCY_VALID_MS[0] <= latency_ms <= LATENCY_VALID_MS[1]:
            n = self.stats.count_stamp_off_clock()
            if _often(n):
                self._log().warning(
                    f"camera '{self.ns}': image stamp is {abs(latency_ms) / 1e3:.1f} s "
                    f"{'old' if latency_ms > 0 else 'in the future'} by this node's clock (seen {n}x): the frame "
                    "was processed, but its latency is not counted; do the camera and the node share a clock?")
            latency_ms = None
        # overhead: this frame's own conversion and publishing (the shared estimator call excluded)
        self.stats.record_frame(len(hands), latency_ms, estimator_ms, (t1 - t0) * 1e3 + frame.prep_ms)

    def diagnostic_extra(self) -> dict:
        return {"camera": self.ns, "input_topic": self.image_topic,
                "output_topic": self.pub_joints.topic_name,
                "frames_received": self.slot.received, "frames_dropped_latest_wins": self.slot.dropped,
                "camera_info": self.camera_info_state, "depth": self.depth_state(), **self.depth_counts}


class MultiCameraInputs:
    """The cameras of one node and the worker-side cycle over them (see the module docstring)."""

    def __init__(self, node, namespaces: list[str], cfg: dict, image_qos, info_qos, depth_qos, output_qos) -> None:
        self.node = node
        self._cfg = cfg
        self._cond = threading.Condition()
        self._closed = False
        self.cameras = [CameraInput(node, ns, self._cond, cfg, image_qos, info_qos, depth_qos, output_qos)
                        for ns in namespaces]
        self.cycles_multi_camera = 0  # cycles that processed frames of more than one camera

    @property
    def image_topics(self) -> list[str]:
        return [c.image_topic for c in self.cameras]

    def take(self, timeout: float) -> list | None:
        """Wait for a frame of any camera, then at most ``cameras_wait_s`` for every other
        streaming camera to have one too; take (and empty) every non-empty slot.
        Returns [(camera, (msg, received_monotonic))] or None on timeout / close."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._closed or any(c.slot.has_item for c in self.cameras), timeout):
                return None
            if self._closed:
                return None
            now = time.monotonic()
            streaming = [c for c in self.cameras if c.last_received_monotonic is not None
                         and now - c.last_received_monotonic <= ACTIVE_AFTER_LAST_FRAME_S]
            wait_s = float(self._cfg["cameras_wait_s"])
            if wait_s > 0:
                self._cond.wait_for(lambda: self._closed or all(c.slot.has_item for c in streaming), wait_s)
            if self._closed:
                return None
            items = []
            for c in self.cameras:
                item = c.slot.take_nowait()
                if item is not None:
                    items.append((c, item))
            return items or None

    def process(self, items: list, estimator, node_stats: NodeStats) -> None:
        """One cycle: convert every camera's frame, one estimate_many call, publish each."""
        t0 = time.perf_counter()
        frames = []
        for cam, (msg, received) in items:
            f = cam.prepare(msg, received, estimator)
            if f is not None:
                f.prep_ms = (time.perf_counter() - f.t_start) * 1e3
                frames.append(f)
        if not frames:
            return
        t1 = time.perf_counter()
        try:
            results = estimator.estimate_many([f.rgb for f in frames], [f.K for f in frames],
                                              [f.depth for f in frames], timestamps_s=[f.stamp_s for f in frames],
                                              streams=[f.camera.ns for f in frames])
        except Exception:
            for f in frames:
                f.camera.stats.estimator_errors += 1
            raise
        t2 = time.perf_counter()
        estimator_ms = (t2 - t1) * 1e3
        self.cycles_multi_camera += int(len(frames) > 1)
        for f, hands in zip(frames, results):
            f.camera.publish(f, hands, estimator_ms)
        t3 = time.perf_counter()
        node_stats.record_frame(sum(len(h) for h in results), None, estimator_ms, ((t3 - t0) - (t2 - t1)) * 1e3)

    def close(self) -> None:
        with self._cond:
            self._closed = True
        for c in self.cameras:
            c.slot.close()

    def diagnostics(self, stamp, node_name: str, hardware_id: str, node_stats: NodeStats,
                    estimator) -> DiagnosticArray:
        """The node-level ``<node>: pipeline`` status (one frame there = one cycle over the
        cameras; batching counters) followed by one ``<node>: camera <ns>`` status per camera."""
        counters = getattr(estimator, "counters", {}) or {}
        batches = getattr(estimator, "last_landmark_batches", []) or []
        snap = node_stats.snapshot()
        extra = {"backend": self._cfg["backend"], "device": self._cfg["device"],
                 "precision": self._cfg["precision"], "cameras": ",".join(c.ns for c in self.cameras),
                 "cycles": snap["frames_processed"], "cycles_multi_camera": self.cycles_multi_camera,
                 # crops per camera in each landmark-network call of the latest cycle, e.g. "1+1"
                 "last_landmark_batches": ";".join("+".join(str(n) for n in b) for b in batches)}
        for k, v in (getattr(estimator, "last_timings_ms", None) or {}).items():
            extra[f"estimator.{k}_ms"] = float(v)
        for k, v in counters.items():
            extra[f"estimator.{k}"] = int(v)
        msg = diagnostic_array(stamp, node_name, hardware_id, snap, extra)
        for cam in self.cameras:
            cam_msg = diagnostic_array(stamp, node_name, hardware_id, cam.stats.snapshot(), cam.diagnostic_extra())
            status = cam_msg.status[0]
            status.name = f"{node_name}: camera {cam.ns}"
            msg.status.append(status)
        return msg
