"""ROS 2 node: RGB images (+ camera_info) -> 3D hand joints, MANO parameters, mesh, markers.

Threads: the executor thread runs the subscription callbacks, which only drop the newest
message into a 1-slot buffer (:class:`LatestSlot`), and the 1 Hz diagnostics timer; one worker
thread converts, runs the estimator and publishes. So the output rate is min(input rate,
estimator rate), nothing queues up, and latency stays flat under overload.

Run: ``ros2 run hand_pose_ros hand_pose_node --ros-args --params-file config/hand_pose.yaml``
or the console script ``hand_pose_node`` (PyPI ROS wheels). See docs/ros.md.
"""
from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from visualization_msgs.msg import MarkerArray

from hand_pose_core.camera import InvalidIntrinsicsError, K_from_camera_info_k, default_intrinsics
from hand_pose_core.overlay import draw_hands
from hand_pose_ros import hand_msgs
from hand_pose_ros.diagnostics import NodeStats, diagnostic_array
from hand_pose_ros.image_conv import (ImageFormatError, compressed_msg_to_rgb, depth_msg_to_array, image_msg_to_rgb,
                                      rgb_to_image_msg)
from hand_pose_ros.latest_slot import LatestSlot, StampedBuffer
from hand_pose_ros.params import ESTIMATOR_ARGS, PARAMS, PARAMS_BY_NAME, check_value
from hand_pose_ros.shutdown import SigintGuard

OUTPUT_QOS = QoSProfile(depth=5, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)
# Latency samples (stamp -> publish) outside this range say that the stamp is not from this
# clock (a camera with its own clock, a bag's original stamps, a frame from long ago), not how
# slow the node is: they are counted (``stamps_off_clock``) and kept out of the statistics.
LATENCY_VALID_MS = (-1000.0, 10_000.0)
# bad-input kinds after which the frame is still processed (with the default K, or without depth)
_PROCESSED_KINDS = ("bad_camera_info", "camera_info_size_mismatch")
# How long the worker waits for the depth image of a frame whose colour image came first (a depth
# camera driver publishes both for every frame; they cross the transport separately).
DEPTH_WAIT_S = 0.05


def _stamp_s(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


class HandPoseNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("hand_pose_node", **kwargs)
        for p in PARAMS:
            self.declare_parameter(p.name, p.default, ParameterDescriptor(description=p.description, read_only=p.read_only))
        self._cfg = {p.name: self.get_parameter(p.name).value for p in PARAMS}
        for p in PARAMS:
            reason = check_value(p, self._cfg[p.name])
            if reason:
                raise ValueError(f"bad parameter: {reason}")
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.add_post_set_parameters_callback(self._after_set_parameters)

        self._rebuild = threading.Event()
        self._frame_ready = threading.Event()  # any camera's slot got a frame
        self._closed = False
        namespaces = camera_namespaces(self._cfg["cameras"]) or [""]

        # Build the estimator before subscribing: a missing model file fails loudly here.
        # _estimator_cfg: the settings the running estimator was built with (rollback target).
        self._estimator_cfg = {k: self._cfg[k] for k in ESTIMATOR_ARGS}
        self.estimator = self._make_estimator(self._estimator_cfg)
        self.multi = self._make_multi(self.estimator, len(namespaces))

        image_qos = QoSProfile(
            depth=1, history=HistoryPolicy.KEEP_LAST,
            reliability=ReliabilityPolicy.RELIABLE if self._cfg["image_reliability"] == "reliable"
            else ReliabilityPolicy.BEST_EFFORT,
        )
        self.cameras = [_Camera(self, ns, image_qos) for ns in namespaces]
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(self._cfg["diagnostics_period_s"], self._publish_diagnostics)

        self._worker = threading.Thread(target=self._work_loop, name="hand_pose_worker", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"ready: backend={self._cfg['backend']} device={self._cfg['device']} "
            f"precision={self._cfg['precision']}; input {', '.join(repr(c.image_topic) for c in self.cameras)} "
            f"({self._cfg['image_transport']}, {self._cfg['image_reliability']}), "
            f"output {', '.join(repr(c.pub_joints.topic_name) for c in self.cameras)}"
            + (f"; {len(self.cameras)} cameras, their crops batched into one network call per round"
               if len(self.cameras) > 1 else "")
        )

    # ------------------------------------------------------------------ set-up helpers
    @staticmethod
    def _make_multi(estimator, n: int):
        """Several cameras share one estimator's networks (one batched call per round)."""
        if n == 1:
            return None
        from hand_pose_core.pipeline.multi_stream import MultiStreamEstimator

        return MultiStreamEstimator(estimator, n)

    def _make_estimator(self, cfg: dict):
        from hand_pose_core.pipeline.estimator import HandPoseEstimator

        kwargs = {k: cfg[k] for k in ESTIMATOR_ARGS}
        kwargs["mano_root"] = kwargs["mano_root"] or None
        kwargs["checkpoint"] = (kwargs["checkpoint"] or None) if kwargs["model"] != "mediapipe" else None
        kwargs["with_mesh"] = kwargs["with_mesh"] and kwargs["fit_mano"]  # the mesh comes from the fit
        return HandPoseEstimator(**kwargs)

    def _on_set_parameters(self, params) -> SetParametersResult:
        for prm in params:
            spec = PARAMS_BY_NAME.get(prm.name)
            if spec is None:
                continue
            reason = check_value(spec, prm.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        new = {prm.name: prm.value for prm in params}
        if "model" in new or "checkpoint" in new:  # refuse a bad model file before the rebuild
            from hand_pose_core.pipeline.lifters import check_model_choice

            reason = check_model_choice(new.get("model", self._cfg["model"]),
                                        new.get("checkpoint", self._cfg["checkpoint"]))
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def _after_set_parameters(self, params) -> None:
        for prm in params:
            if prm.name in self._cfg:
                self._cfg[prm.name] = prm.value
                if prm.name in ESTIMATOR_ARGS:
                    if prm.value != self._estimator_cfg[prm.name]:
                        self.get_logger().info(f"parameter {prm.name} = {prm.value!r} accepted: the estimator "
                                               "is rebuilt before the next frame")
                else:
                    self.get_logger().info(f"parameter {prm.name} = {prm.value!r} applied")
        if any(self._cfg[k] != self._estimator_cfg[k] for k in ESTIMATOR_ARGS):
            self._rebuild.set()  # the worker rebuilds between two frames

    def _rebuild_estimator(self) -> None:
        """Build the estimator for the current settings. If that fails, keep the old one and roll
        the parameters back to the settings it was built with, so that what ``ros2 param get``
        shows is what runs, and later changes start from a working state."""
        wanted = {k: self._cfg[k] for k in ESTIMATOR_ARGS}
        if wanted == self._estimator_cfg:
            return
        changed = {k: v for k, v in wanted.items() if v != self._estimator_cfg[k]}
        try:
            estimator = self._make_estimator(wanted)
        except Exception as e:  # keep the old one: the node stays up
            old = {k: self._estimator_cfg[k] for k in changed}
            self.get_logger().error(
                f"could not rebuild the estimator with {changed}: {e}; keeping the old estimator and "
                f"rolling the parameters back to {old}")
            from rclpy.parameter import Parameter

            results = self.set_parameters([Parameter(k, value=v) for k, v in old.items()])
            for k, r in zip(old, results):
                if not r.successful:  # cannot happen for values that were accepted before
                    self.get_logger().error(f"rollback of {k} refused: {r.reason}")
            return
        self.estimator = estimator
        self.multi = self._make_multi(estimator, len(self.cameras))
        self._estimator_cfg = wanted
        self.get_logger().info(f"estimator rebuilt with the new parameters {changed}")

    def _warn_bad(self, cam: "_Camera", kind: str, text: str) -> None:
        """Log a bad input clearly: the first one in full, then at 10, 100, 1000... occurrences.
        The text says what happened to the frame: dropped, or processed with the default K.
        A camera_info with a different problem is logged when it first appears."""
        n = cam.stats.count_bad(kind)
        new_problem = kind in _PROCESSED_KINDS and cam.last_bad_text.get(kind) != text
        cam.last_bad_text[kind] = text
        text = cam.prefix + text
        if n == 1 or new_problem or (n >= 10 and str(n).strip("0") == "1"):
            if kind.startswith("depth_"):
                self.get_logger().warning(f"bad depth image ({kind}, seen {n}x): {text}. The frame is processed "
                                          "without depth (RGB-only placement)")
            elif kind in _PROCESSED_KINDS:
                self.get_logger().warning(f"bad camera_info ({kind}, seen {n}x): {text}. The frame is processed "
                                          "using the default K (outputs flagged calibrated=0)")
            else:
                self.get_logger().warning(f"dropped frame ({kind}, seen {n}x): {text}")

    def _warn_once(self, cam: "_Camera", key: str, text: str) -> None:
        if key not in cam.warned_once:
            cam.warned_once.add(key)
            self.get_logger().warning(cam.prefix + text)

    # ------------------------------------------------------------------ callbacks (executor thread)
    def _publish_diagnostics(self) -> None:
        """One status per camera (``<node>: pipeline``; with several cameras ``<node>/<ns>: pipeline``)."""
        out = None
        for i, cam in enumerate(self.cameras):
            snap = cam.stats.snapshot()
            extra = {
                "backend": self._cfg["backend"], "device": self._cfg["device"], "precision": self._cfg["precision"],
                "frames_received": cam.slot.received, "frames_dropped_latest_wins": cam.slot.dropped,
                "camera_info": cam.camera_info_state, "input_topic": cam.image_topic,
                "depth": self._depth_state(cam), **cam.depth_counts,
            }
            est = self.multi.streams[i] if self.multi is not None else self.estimator
            for k, v in (getattr(est, "last_timings_ms", None) or {}).items():
                extra[f"estimator.{k}_ms"] = float(v)
            if self.multi is not None:
                extra["cameras"] = len(self.cameras)
                extra["network_calls"] = sum(self.multi.batcher.calls.values())
            name = self.get_name() if len(self.cameras) == 1 else f"{self.get_name()}/{cam.ns}"
            msg = diagnostic_array(self.get_clock().now().to_msg(), name,
                                   f"{self._cfg['backend']}/{self._cfg['device']}", snap, extra)
            if out is None:
                out = msg
            else:
                out.status.extend(msg.status)
        self.pub_diag.publish(out)

    # ------------------------------------------------------------------ worker thread
    def _work_loop(self) -> None:
        """Take the newest frame of every camera that has one, run them as one round (one batched
        network call per stage with several cameras), publish each on its camera's topics."""
        while not self._closed and self.context.ok():
            if not self._frame_ready.wait(timeout=0.5):
                continue
            self._frame_ready.clear()
            items = {i: it for i, cam in enumerate(self.cameras) if (it := cam.slot.take(timeout=0)) is not None}
            if not items or self._closed:
                continue
            if self._rebuild.is_set():
                self._rebuild.clear()
                self._rebuild_estimator()
            try:
                self._process_round(items)
            except Exception:  # never let one frame kill the worker
                if not self.context.ok():
                    return  # shutting down (Ctrl-C/SIGTERM): publishers are gone, nothing to report
                for i in items:
                    self.cameras[i].stats.estimator_errors += 1
                self.get_logger().error(f"frame failed:\n{traceback.format_exc()}", throttle_duration_sec=5.0)

    def _depth_state(self, cam: "_Camera") -> str:
        if not self._cfg["use_depth"]:
            return "disabled"
        last = cam.depth_buffer.last_arrival()
        if last is None:
            return f"none received on '{cam.depth_topic}'"
        return "ok" if time.monotonic() - last < 2.0 else f"stale ({time.monotonic() - last:.0f} s)"

    def _depth_for(self, cam: "_Camera", header, width: int, height: int):
        """The depth image matching this image's stamp (within depth_tolerance_s), or None."""
        if not self._cfg["use_depth"] or cam.depth_buffer.last_arrival() is None:
            return None
        stamp_ns = header.stamp.sec * 1_000_000_000 + header.stamp.nanosec
        live = time.monotonic() - cam.depth_buffer.last_arrival() < 1.0
        msg = cam.depth_buffer.match(stamp_ns, int(self._cfg["depth_tolerance_s"] * 1e9),
                                     DEPTH_WAIT_S if live else 0.0)
        if msg is None:
            return None
        try:
            depth = depth_msg_to_array(msg, self._cfg["max_image_pixels"])
        except ImageFormatError as e:
            self._warn_bad(cam, f"depth_{e.kind}", str(e))
            return None
        if depth.shape != (height, width):
            self._warn_bad(cam, "depth_size_mismatch", f"depth image is {depth.shape[1]}x{depth.shape[0]} but the colour "
                           f"image is {width}x{height}: the depth must be aligned (registered) to the colour image")
            return None
        return depth

    def _intrinsics(self, cam: "_Camera", width: int, height: int):
        """K (3x3) from camera_info, or None (the estimator then uses the default K, calibrated=0)."""
        if not self._cfg["use_camera_info"]:
            cam.camera_info_state = "disabled (default K)"
            return None
        with cam.info_lock:
            info = cam.camera_info
        if info is None:
            cam.camera_info_state = "missing (default K)"
            self._warn_once(cam, "no_camera_info", f"no camera_info on '{cam.info_topic}' "
                            "yet: using the default intrinsics (fx = fy = 1.2 * max(w, h)); depth is a guess "
                            "(calibrated=0) until one arrives")
            return None
        if (info.width, info.height) != (width, height) and (info.width or info.height):
            cam.camera_info_state = "size mismatch (default K)"
            self._warn_bad(cam, "camera_info_size_mismatch",
                           f"camera_info is for {info.width}x{info.height} but the image is {width}x{height}")
            return None
        try:
            # the estimator's own check, with the image size: a K accepted here is accepted there
            K = K_from_camera_info_k(info.k, width, height)
        except InvalidIntrinsicsError as e:
            cam.camera_info_state = "invalid (default K)"
            self._warn_bad(cam, "bad_camera_info", f"camera_info.k rejected: {e}")
            return None
        if cam.camera_info_state != "ok":
            self.get_logger().info(f"{cam.prefix}using camera_info intrinsics fx={K[0, 0]:.1f} fy={K[1, 1]:.1f} "
                                   f"cx={K[0, 2]:.1f} cy={K[1, 2]:.1f}")
            cam.camera_info_state = "ok"
        return K

    def _prepare(self, cam: "_Camera", msg, received_monotonic: float):
        """Convert one camera's frame; None when it is dropped (bad image, logged and counted)."""
        t0 = time.perf_counter()
        try:
            if isinstance(msg, CompressedImage):
                rgb = compressed_msg_to_rgb(msg, self._cfg["max_image_pixels"])
            else:
                rgb = image_msg_to_rgb(msg, self._cfg["max_image_pixels"])
        except ImageFormatError as e:
            self._warn_bad(cam, e.kind, str(e))
            return None
        height, width = rgb.shape[:2]
        K = self._intrinsics(cam, width, height)

        header = msg.header
        if self._cfg["frame_id"]:
            header.frame_id = self._cfg["frame_id"]
        elif not header.frame_id:
            self._warn_once(cam, "no_frame_id", "image header.frame_id is empty: outputs carry an empty frame_id; "
                            "set the frame_id parameter")
        stamp_s = _stamp_s(header.stamp)
        if stamp_s == 0.0:
            self._warn_once(cam, "no_stamp", "image header.stamp is zero: the driver does not stamp its images")
            stamp_s = self.get_clock().now().nanoseconds * 1e-9
        if cam.last_stamp_s is not None and stamp_s < cam.last_stamp_s:
            self.get_logger().info(f"{cam.prefix}image stamps went backwards (replay loop?): resetting the tracker")
            if self.multi is None:
                self.estimator.reset()
            else:
                self.multi.reset(self.cameras.index(cam))
        cam.last_stamp_s = stamp_s
        depth = self._depth_for(cam, header, width, height)
        return _Frame(rgb, K, depth, header, stamp_s, received_monotonic, time.perf_counter() - t0)

    def _process_round(self, items: dict) -> None:
        frames = {}
        for i, (msg, received) in items.items():
            frame = self._prepare(self.cameras[i], msg, received)
            if frame is not None:
                frames[i] = frame
        if not frames:
            return
        t1 = time.perf_counter()
        if self.multi is None:
            (i, f), = frames.items()
            results = {i: self.estimator(f.rgb, f.K, f.depth, timestamp_s=f.stamp_s)}
        else:
            results = self.multi({i: (f.rgb, f.K, f.depth, f.stamp_s) for i, f in frames.items()})
        estimator_s = time.perf_counter() - t1
        for i, f in frames.items():
            cam, hands = self.cameras[i], results[i]
            if isinstance(hands, Exception):  # one camera's failure (several cameras)
                cam.stats.estimator_errors += 1
                self.get_logger().error(f"{cam.prefix}frame failed: {hands!r}", throttle_duration_sec=5.0)
                continue
            self._publish(cam, f, hands, estimator_s)

    def _publish(self, cam: "_Camera", f: "_Frame", hands, estimator_s: float) -> None:
        t2 = time.perf_counter()
        header, depth, K, rgb = f.header, f.depth, f.K, f.rgb
        if self._cfg["use_depth"]:
            cam.depth_counts["frames_with_depth" if depth is not None else "frames_without_depth"] += 1
            if depth is not None:
                used = sum(h.depth_used for h in hands)
                cam.depth_counts["hands_depth_used"] += used
                cam.depth_counts["hands_depth_fallback"] += len(hands) - used

        cam.pub_joints.publish(hand_msgs.joints_cloud(hands, header))
        if self._cfg["publish_mano"]:
            cam.pub_mano.publish(hand_msgs.mano_cloud(hands, header))
        lifetime = self._cfg["marker_lifetime_s"]
        if self._cfg["publish_markers"] and cam.pub_markers.get_subscription_count() > 0:
            cam.pub_markers.publish(hand_msgs.skeleton_markers(hands, header, lifetime))
        if self._cfg["publish_mesh"] and cam.pub_mesh.get_subscription_count() > 0:
            cam.pub_mesh.publish(cam.mesh_serializer.serialize(hands, header, lifetime))  # CDR bytes
        if self._cfg["publish_debug_image"] or cam.pub_debug.get_subscription_count() > 0:
            height, width = rgb.shape[:2]
            K_draw = K if K is not None else default_intrinsics(width, height)
            cam.pub_debug.publish(rgb_to_image_msg(draw_hands(rgb, hands, K_draw), header))
        t3 = time.perf_counter()

        now_ns = self.get_clock().now().nanoseconds
        stamp_ns = header.stamp.sec * 1_000_000_000 + header.stamp.nanosec
        latency_ms = (now_ns - stamp_ns) * 1e-6 if stamp_ns else (time.monotonic() - f.received_monotonic) * 1e3
        if not LATENCY_VALID_MS[0] <= latency_ms <= LATENCY_VALID_MS[1]:
            n = cam.stats.count_stamp_off_clock()
            if n == 1 or (n >= 10 and str(n).strip("0") == "1"):
                self.get_logger().warning(
                    f"{cam.prefix}image stamp is {abs(latency_ms) / 1e3:.1f} s "
                    f"{'old' if latency_ms > 0 else 'in the future'} "
                    f"by this node's clock (seen {n}x): the frame was processed, but its latency is not "
                    "counted; do the camera and the node share a clock (use_sim_time for bags)?")
            latency_ms = None
        cam.stats.record_frame(len(hands), latency_ms, estimator_s * 1e3, (f.prepare_s + t3 - t2) * 1e3)

    def close(self) -> None:
        """Stop the worker and wait for it: it must not be inside the estimator (onnxruntime/torch
        threads) or a publish when rclpy shuts down and the interpreter exits."""
        self._closed = True
        for cam in self.cameras:
            cam.slot.close()
        self._frame_ready.set()
        self._worker.join(timeout=10.0)
        if self._worker.is_alive():
            self.get_logger().warning("the worker thread did not stop within 10 s")


@dataclass
class _Frame:
    rgb: object
    K: object
    depth: object
    header: object
    stamp_s: float
    received_monotonic: float
    prepare_s: float


def camera_namespaces(text: str) -> list[str]:
    """'wrist, head' -> ['wrist', 'head'] (the ``cameras`` parameter); '' -> []."""
    return [n.strip().strip("/") for n in str(text).split(",") if n.strip().strip("/")]


class _Camera:
    """One camera's topics and state: its subscriptions feed its own latest-wins slot, depth
    buffer and camera_info; its outputs go to ``<ns>/hand/...`` (``hand/...`` without a namespace)."""

    def __init__(self, node: "HandPoseNode", ns: str, image_qos: QoSProfile) -> None:
        self.ns = ns
        self.prefix = f"[{ns}] " if ns else ""
        base = f"{ns}/" if ns else ""
        self.stats = NodeStats()
        self.slot = LatestSlot()
        self.depth_buffer = StampedBuffer(size=4)
        self.depth_counts = {"frames_with_depth": 0, "frames_without_depth": 0, "hands_depth_used": 0,
                             "hands_depth_fallback": 0}
        self.info_lock = threading.Lock()
        self.camera_info: CameraInfo | None = None
        self.camera_info_state = "waiting"
        self.warned_once: set[str] = set()
        self.last_bad_text: dict[str, str] = {}
        self.last_stamp_s: float | None = None
        self.mesh_serializer = hand_msgs.MeshMarkerSerializer()

        def on_image(msg) -> None:
            self.slot.put((msg, time.monotonic()))
            node._frame_ready.set()

        def on_depth(msg: Image) -> None:
            self.depth_buffer.put(msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec, msg)

        def on_camera_info(msg: CameraInfo) -> None:
            with self.info_lock:
                self.camera_info = msg

        if node._cfg["image_transport"] == "compressed":
            node.create_subscription(CompressedImage, base + "image/compressed", on_image, image_qos)
            self.image_topic = node.resolve_topic_name(base + "image") + "/compressed"
        else:
            node.create_subscription(Image, base + "image", on_image, image_qos)
            self.image_topic = node.resolve_topic_name(base + "image")
        # best effort matches both reliable and best-effort camera_info publishers
        info_qos = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.BEST_EFFORT)
        node.create_subscription(CameraInfo, base + "camera_info", on_camera_info, info_qos)
        self.info_topic = node.resolve_topic_name(base + "camera_info")
        # aligned depth (optional): its own small buffer, matched to each image by stamp
        depth_qos = QoSProfile(depth=2, history=HistoryPolicy.KEEP_LAST, reliability=image_qos.reliability)
        node.create_subscription(Image, base + "depth", on_depth, depth_qos)
        self.depth_topic = node.resolve_topic_name(base + "depth")

        self.pub_joints = node.create_publisher(PointCloud2, base + "hand/joints3d", OUTPUT_QOS)
        self.pub_mano = node.create_publisher(PointCloud2, base + "hand/mano", OUTPUT_QOS)
        self.pub_mesh = node.create_publisher(MarkerArray, base + "hand/mesh", OUTPUT_QOS)
        self.pub_markers = node.create_publisher(MarkerArray, base + "hand/markers", OUTPUT_QOS)
        self.pub_debug = node.create_publisher(Image, base + "hand/debug_image",
                                               QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))


def node_usage() -> str:
    from hand_pose_ros.cli_help import usage

    return usage("hand_pose_node", __doc__.split("\n")[0], [
        ("image (in)", "sensor_msgs/Image (image_transport:=compressed: image/compressed)"),
        ("camera_info (in)", "sensor_msgs/CameraInfo, optional"),
        ("depth (in)", "sensor_msgs/Image 16UC1 (mm) / 32FC1 (m) aligned to the image, optional"),
        ("hand/joints3d", "sensor_msgs/PointCloud2, 21 points per hand (empty: no hand)"),
        ("hand/mano", "sensor_msgs/PointCloud2, MANO pose/shape/trans per hand"),
        ("hand/mesh, hand/markers", "visualization_msgs/MarkerArray for RViz"),
        ("hand/debug_image", "sensor_msgs/Image overlay"),
        ("/diagnostics", "diagnostic_msgs/DiagnosticArray"),
    ], [(p.name, p.default, p.description + (" (read-only)" if p.read_only else "")) for p in PARAMS])


def main(args=None) -> int:
    from hand_pose_ros.cli_help import help_requested

    if help_requested(args):  # print usage and exit instead of starting to publish
        print(node_usage())
        return 0
    # Only the first SIGINT interrupts; repeated ones (terminal + launch) cannot break the
    # clean-up below (hand_pose_ros.shutdown). Installed before rclpy.init: rclpy chains to it.
    sigint = SigintGuard().install()
    rclpy.init(args=args)
    node = None
    try:
        node = HandPoseNode()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as e:
        # e.g. a missing model file or a bad parameter: say what and stop with an error code
        rclpy.logging.get_logger("hand_pose_node").fatal(f"hand_pose_node failed to start: {e}")
        return 1
    finally:
        sigint.begin_shutdown()
        if node is not None:
            node.close()
            node.destroy_node()
        rclpy.try_shutdown()
        sigint.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
