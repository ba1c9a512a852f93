"""Replay node: publishes a video file, an image folder, a still image or a ROS 2 bag as
sensor_msgs/Image (or CompressedImage) + CameraInfo, like a camera driver, looping.

Default source (no arguments): the built-in sample photo (hand_pose_core.samples).
Messages are restamped with the current time (so latency can be measured downstream);
frame_id is the ``frame_id`` parameter. Runs as the console script ``hand_pose_replay``::

    hand_pose_replay --ros-args -p source:=video.mp4 -p rate_hz:=30.0 -p intrinsics:=600,600,320,240
"""
from __future__ import annotations

import threading
import time

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from hand_pose_core.camera import InvalidIntrinsicsError, K_from_fxfycxcy, default_intrinsics, validate_intrinsics
from hand_pose_ros.replay_sources import open_source
from hand_pose_ros.shutdown import SigintGuard

_PARAMS = (
    ("source", "builtin", "video file, image folder, image file or ROS 2 bag; 'builtin' or empty: the built-in sample photo"),
    ("rate_hz", 0.0, "publish rate, Hz; 0: native (video fps, bag timing, 30 Hz for images)"),
    ("loop", True, "start again at the end of the source"),
    ("max_frames", 0, "stop after this many frames (0: no limit)"),
    ("frame_id", "camera_optical_frame", "header.frame_id of the published messages"),
    ("intrinsics", "", "camera_info K: 'fx,fy,cx,cy' in pixels, 'default' for the documented "
     "default K, or empty to publish no camera_info (bags: the bag's own camera_info is used)"),
    ("transport", "raw", "raw: sensor_msgs/Image on 'image'; compressed: JPEG CompressedImage on 'image/compressed'"),
    ("reliability", "best_effort", "QoS reliability of the image publisher (depth 1), like a camera driver"),
    ("bag_image_topic", "", "image topic to read from a bag; empty: the first one whose name has no 'depth'"),
    ("bag_depth_topic", "", "aligned depth image topic to replay from a bag on 'depth' (same stamp as its colour "
     "image); empty: the first other Image topic whose name contains 'depth'; 'none': no depth"),
    ("wait_for_subscribers", 0, "start publishing only once this many subscribers listen to the image topic"),
)


def parse_intrinsics(text: str, width: int, height: int):
    """'fx,fy,cx,cy' | 'default' | '' -> validated 3x3 K or None."""
    text = text.strip()
    if not text:
        return None
    if text == "default":
        return default_intrinsics(width, height)
    parts = text.split(",")
    if len(parts) != 4:
        raise InvalidIntrinsicsError(f"intrinsics must be 'fx,fy,cx,cy', 'default' or empty, got {text!r}")
    try:
        fx, fy, cx, cy = (float(v) for v in parts)
    except ValueError as e:
        raise InvalidIntrinsicsError(f"intrinsics must be four numbers 'fx,fy,cx,cy', got {text!r}") from e
    return validate_intrinsics(K_from_fxfycxcy(fx, fy, cx, cy), width, height)


def camera_info_msg(K, width: int, height: int) -> CameraInfo:
    info = CameraInfo()
    info.width, info.height = int(width), int(height)
    info.distortion_model = "plumb_bob"
    info.d = [0.0] * 5
    info.k = [float(v) for v in K.reshape(-1)]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [float(K[0, 0]), 0.0, float(K[0, 2]), 0.0, 0.0, float(K[1, 1]), float(K[1, 2]), 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


def _image_size(msg) -> tuple[int, int]:
    if isinstance(msg, Image):
        return msg.width, msg.height
    import cv2
    import numpy as np

    img = cv2.imdecode(np.frombuffer(msg.data, np.uint8), cv2.IMREAD_COLOR)
    return img.shape[1], img.shape[0]


class ReplayNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("hand_pose_replay", **kwargs)
        for name, default, desc in _PARAMS:
            self.declare_parameter(name, default, ParameterDescriptor(description=desc, read_only=True))
        cfg = {name: self.get_parameter(name).value for name, _, _ in _PARAMS}
        self.cfg = cfg
        if cfg["transport"] not in ("raw", "compressed"):
            raise ValueError(f"transport must be 'raw' or 'compressed', got {cfg['transport']!r}")
        if cfg["reliability"] not in ("best_effort", "reliable"):
            raise ValueError(f"reliability must be 'best_effort' or 'reliable', got {cfg['reliability']!r}")
        if cfg["rate_hz"] < 0:
            raise ValueError(f"rate_hz must be >= 0, got {cfg['rate_hz']}")
        source = cfg["source"]
        if source in ("", "builtin"):
            from hand_pose_core.samples import builtin_sample_image

            source = str(builtin_sample_image())
        self.source = open_source(source, cfg["transport"] == "compressed", cfg["bag_image_topic"],
                                  cfg["bag_depth_topic"])
        self.source_path = source

        qos = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.RELIABLE if cfg["reliability"] == "reliable"
                         else ReliabilityPolicy.BEST_EFFORT)
        self.pub_raw = self.create_publisher(Image, "image", qos)
        self.pub_compressed = self.create_publisher(CompressedImage, "image/compressed", qos)
        self.pub_info = self.create_publisher(CameraInfo, "camera_info", qos)
        self.pub_depth = self.create_publisher(Image, "depth", qos)
        self._info: CameraInfo | None = None
        self._info_size: tuple[int, int] | None = None
        self.published = 0
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="replay", daemon=True)
        self._thread.start()
        rate = cfg["rate_hz"] or self.source.native_rate_hz
        self.get_logger().info(f"replaying {source} ({type(self.source).__name__}) at "
                               f"{'native ' if not cfg['rate_hz'] else ''}{rate:.1f} Hz"
                               f"{', looping' if cfg['loop'] else ''} on '{self.resolve_topic_name('image')}'")

    def _camera_info_for(self, msg) -> CameraInfo | None:
        if not self.cfg["intrinsics"]:
            return None
        size = _image_size(msg) if self._info_size is None or isinstance(msg, Image) else self._info_size
        if size != self._info_size:
            K = parse_intrinsics(self.cfg["intrinsics"], *size)
            self._info, self._info_size = camera_info_msg(K, *size), size
        return self._info

    def _run(self) -> None:
        try:
            self._publish_loop()
        except Exception as e:  # report and stop the node instead of dying silently
            if not self.context.ok():
                return  # shutting down: the publishers are gone
            self.error = str(e)
            self.get_logger().fatal(f"replay failed: {e}")
        finally:
            self._stop.set()

    def _publish_loop(self) -> None:
        fixed_period = 1.0 / self.cfg["rate_hz"] if self.cfg["rate_hz"] > 0 else None
        native_period = 1.0 / self.source.native_rate_hz
        max_frames = self.cfg["max_frames"]
        pub = self.pub_compressed if self.cfg["transport"] == "compressed" else self.pub_raw
        while pub.get_subscription_count() < self.cfg["wait_for_subscribers"] and not self._stop.is_set():
            self._stop.wait(0.05)
        next_t = time.monotonic()
        while not self._stop.is_set() and self.context.ok():
            n_this_pass = 0
            loop_start = None
            for frame in self.source:
                if self._stop.is_set() or (max_frames and self.published >= max_frames):
                    return
                if fixed_period is None and frame.t_s is not None:  # bag: recorded timing
                    loop_start = time.monotonic() if loop_start is None else loop_start
                    next_t = loop_start + frame.t_s
                delay = next_t - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                elif delay < -0.5:  # fell far behind (slow decode): do not burst to catch up
                    next_t = time.monotonic()
                self._publish(frame)
                n_this_pass += 1
                next_t += fixed_period or native_period
            if n_this_pass == 0:
                raise RuntimeError(f"source {self.source_path} produced no frames")
            if not self.cfg["loop"]:
                return

    def _publish(self, frame) -> None:
        msg = frame.msg
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.cfg["frame_id"]
        info = frame.camera_info if frame.camera_info is not None else self._camera_info_for(msg)
        if info is not None:
            info.header = msg.header
            self.pub_info.publish(info)  # before the image: the node pairs an image with the newest info
        if frame.depth is not None:
            frame.depth.header = msg.header  # the same (new) stamp: the node matches them exactly
            self.pub_depth.publish(frame.depth)
        (self.pub_compressed if isinstance(msg, CompressedImage) else self.pub_raw).publish(msg)
        self.published += 1

    @property
    def finished(self) -> bool:
        return self._stop.is_set()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)


def main(args=None) -> int:
    from hand_pose_ros.cli_help import help_requested, usage

    if help_requested(args):  # print usage and exit instead of starting to publish
        print(usage("hand_pose_replay", __doc__.split("\n")[0] + " " + __doc__.split("\n")[1], [
            ("image (out)", "sensor_msgs/Image (transport:=compressed: image/compressed)"),
            ("camera_info (out)", "sensor_msgs/CameraInfo (when intrinsics are given or the bag has them)"),
            ("depth (out)", "sensor_msgs/Image 16UC1/32FC1, a bag's aligned depth with its colour image's stamp"),
        ], _PARAMS))
        return 0
    sigint = SigintGuard().install()  # repeated SIGINT cannot break the clean-up (see shutdown.py)
    rclpy.init(args=args)
    node = None
    try:
        node = ReplayNode()
        while rclpy.ok() and not node.finished:
            rclpy.spin_once(node, timeout_sec=0.1)
        if node.error:
            return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as e:
        rclpy.logging.get_logger("hand_pose_replay").fatal(f"hand_pose_replay failed to start: {e}")
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
