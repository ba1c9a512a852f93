"""Frame sources for the replay node: a video file, a folder of images, a still image, or a
ROS 2 bag (rosbags). Each yields :class:`ReplayFrame` with a ready-to-publish message.

Iterating a source again starts it from the beginning (that is how the replay loops).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from hand_pose_core.frames import (DEFAULT_IMAGE_RATE_HZ, IMAGE_SUFFIXES, FrameSourceError, image_files,
                                   iter_video_rgb, read_rgb, video_rate_hz)
from hand_pose_ros.image_conv import rgb_to_compressed_msg, rgb_to_image_msg

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg"}
BAG_SUFFIXES = {".mcap", ".db3"}

# A replay source that cannot be opened or read: the core's error for unreadable frame sources.
ReplaySourceError = FrameSourceError


@dataclass
class ReplayFrame:
    msg: Image | CompressedImage
    camera_info: CameraInfo | None = None  # only bags carry their own
    t_s: float | None = None  # position in the recording (bags), for native-rate replay
    depth: Image | None = None  # the aligned depth image recorded with this frame (bags)


def _to_msg(rgb: np.ndarray, compressed: bool):
    return rgb_to_compressed_msg(rgb) if compressed else rgb_to_image_msg(rgb)


class StillImageSource:
    """One image, published over and over (the message is built once)."""

    def __init__(self, path: Path, compressed: bool = False) -> None:
        self.path = path
        self.native_rate_hz = DEFAULT_IMAGE_RATE_HZ
        self._msg = _to_msg(read_rgb(path), compressed)

    def __iter__(self) -> Iterator[ReplayFrame]:
        yield ReplayFrame(self._msg)


class FolderSource:
    """The images of a folder in name order, decoded as they are published."""

    def __init__(self, path: Path, compressed: bool = False) -> None:
        self.files = image_files(path)
        self.native_rate_hz = DEFAULT_IMAGE_RATE_HZ
        self._compressed = compressed

    def __iter__(self) -> Iterator[ReplayFrame]:
        for f in self.files:
            yield ReplayFrame(_to_msg(read_rgb(f), self._compressed))


class VideoSource:
    """A video file decoded with OpenCV, at its own frame rate unless a rate is given."""

    def __init__(self, path: Path, compressed: bool = False) -> None:
        self.path = path
        self.native_rate_hz = video_rate_hz(path)  # also checks that it opens and decodes
        self._compressed = compressed

    def __iter__(self) -> Iterator[ReplayFrame]:
        for rgb in iter_video_rgb(self.path):
            yield ReplayFrame(_to_msg(rgb, self._compressed))


# recorded depth and colour images of one frame are paired when their header stamps differ by this much
DEPTH_PAIR_TOLERANCE_S = 0.02


def _is_depth_topic(topic: str) -> bool:
    return "depth" in topic.lower()


def _stamp_s(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


class BagSource:
    """sensor_msgs/Image or CompressedImage (+ CameraInfo, + aligned depth) from a ROS 2 bag
    (MCAP or sqlite3).

    The bag's CDR bytes are deserialised straight into rclpy messages. ``image_topic`` ''
    picks the first image topic whose name does not contain "depth"; camera_info comes from
    ``<image ns>/camera_info`` or, failing that, the only CameraInfo topic. ``depth_topic`` ''
    picks the first other ``sensor_msgs/Image`` topic whose name contains "depth" (e.g.
    ``/camera/aligned_depth_to_color/image_raw``); ``"none"`` replays no depth. Each colour
    image is paired with the recorded depth image whose header stamp is within 20 ms of its own.
    """

    _IMAGE_TYPES = {"sensor_msgs/msg/Image": Image, "sensor_msgs/msg/CompressedImage": CompressedImage}

    def __init__(self, path: Path, image_topic: str = "", depth_topic: str = "") -> None:
        from rosbags.highlevel import AnyReader

        self.path = path
        try:
            with AnyReader([path]) as reader:
                conns = {c.topic: c.msgtype for c in reader.connections}
        except Exception as e:  # rosbags raises several reader errors
            raise ReplaySourceError(f"cannot read bag {path}: {e}") from e
        all_images = [t for t, ty in conns.items() if ty in self._IMAGE_TYPES]
        images = [t for t in all_images if not _is_depth_topic(t)] or all_images
        if image_topic:
            if image_topic not in all_images:
                raise ReplaySourceError(f"bag {path} has no image topic {image_topic!r}; image topics: {all_images}")
            images = [image_topic]
        if not images:
            raise ReplaySourceError(f"bag {path} has no sensor_msgs Image/CompressedImage topic; topics: {conns}")
        self.image_topic = images[0]
        self.image_type = self._IMAGE_TYPES[conns[self.image_topic]]
        raw_images = [t for t, ty in conns.items() if ty == "sensor_msgs/msg/Image" and t != self.image_topic]
        if depth_topic == "none":
            self.depth_topic = None
        elif depth_topic:
            if depth_topic not in raw_images:
                raise ReplaySourceError(f"bag {path} has no sensor_msgs/Image topic {depth_topic!r} for depth; "
                                        f"candidates: {raw_images}")
            self.depth_topic = depth_topic
        else:
            self.depth_topic = next((t for t in raw_images if _is_depth_topic(t)), None)
        infos = [t for t, ty in conns.items() if ty == "sensor_msgs/msg/CameraInfo"]
        sibling = self.image_topic.rsplit("/", 1)[0] + "/camera_info"
        self.info_topic = sibling if sibling in infos else (infos[0] if len(infos) == 1 else None)
        self.native_rate_hz = DEFAULT_IMAGE_RATE_HZ  # bags replay at their recorded timing

    def __iter__(self) -> Iterator[ReplayFrame]:
        from rclpy.serialization import deserialize_message
        from rosbags.highlevel import AnyReader

        with AnyReader([self.path]) as reader:
            topics = {self.image_topic, self.info_topic, self.depth_topic} - {None}
            conns = [c for c in reader.connections if c.topic in topics]
            info = None
            t0 = None
            depth = None  # the newest recorded depth image
            pending = None  # a colour frame whose depth image may still follow in the bag
            for conn, t_ns, raw in reader.messages(connections=conns):
                if conn.topic == self.info_topic:
                    info = deserialize_message(bytes(raw), CameraInfo)
                    continue
                if conn.topic == self.depth_topic:
                    depth = deserialize_message(bytes(raw), Image)
                    if pending is not None and abs(_stamp_s(depth) - _stamp_s(pending.msg)) <= DEPTH_PAIR_TOLERANCE_S:
                        pending.depth = depth
                        yield pending
                        pending = None
                    continue
                if pending is not None:
                    yield pending  # no depth came for it
                    pending = None
                t0 = t_ns if t0 is None else t0
                frame = ReplayFrame(deserialize_message(bytes(raw), self.image_type), info, (t_ns - t0) * 1e-9)
                if depth is not None and abs(_stamp_s(depth) - _stamp_s(frame.msg)) <= DEPTH_PAIR_TOLERANCE_S:
                    frame.depth = depth
                    yield frame
                elif self.depth_topic is not None:
                    pending = frame
                else:
                    yield frame
            if pending is not None:
                yield pending


def open_source(path: str | Path, compressed: bool = False, bag_image_topic: str = "", bag_depth_topic: str = ""):
    """Pick the source type from ``path``: a bag (folder with metadata.yaml, .mcap, .db3), a
    folder of images, an image file or a video file."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ReplaySourceError(f"replay source {p} does not exist")
    if p.is_dir():
        if (p / "metadata.yaml").is_file():
            return BagSource(p, bag_image_topic, bag_depth_topic)
        return FolderSource(p, compressed)
    suffix = p.suffix.lower()
    if suffix in BAG_SUFFIXES:
        return BagSource(p, bag_image_topic, bag_depth_topic)
    if suffix in IMAGE_SUFFIXES:
        return StillImageSource(p, compressed)
    return VideoSource(p, compressed)  # let OpenCV try anything else
