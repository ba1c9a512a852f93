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


class BagSource:
    """sensor_msgs/Image or CompressedImage (+ CameraInfo) from a ROS 2 bag (MCAP or sqlite3).

    The bag's CDR bytes are deserialised straight into rclpy messages. ``image_topic`` ''
    picks the first image topic in the bag; camera_info comes from ``<image ns>/camera_info``
    or, failing that, the only CameraInfo topic.
    """

    _IMAGE_TYPES = {"sensor_msgs/msg/Image": Image, "sensor_msgs/msg/CompressedImage": CompressedImage}

    def __init__(self, path: Path, image_topic: str = "") -> None:
        from rosbags.highlevel import AnyReader

        self.path = path
        try:
            with AnyReader([path]) as reader:
                conns = {c.topic: c.msgtype for c in reader.connections}
        except Exception as e:  # rosbags raises several reader errors
            raise ReplaySourceError(f"cannot read bag {path}: {e}") from e
        images = [t for t, ty in conns.items() if ty in self._IMAGE_TYPES]
        if image_topic:
            if image_topic not in images:
                raise ReplaySourceError(f"bag {path} has no image topic {image_topic!r}; image topics: {images}")
            images = [image_topic]
        if not images:
            raise ReplaySourceError(f"bag {path} has no sensor_msgs Image/CompressedImage topic; topics: {conns}")
        self.image_topic = images[0]
        self.image_type = self._IMAGE_TYPES[conns[self.image_topic]]
        infos = [t for t, ty in conns.items() if ty == "sensor_msgs/msg/CameraInfo"]
        sibling = self.image_topic.rsplit("/", 1)[0] + "/camera_info"
        self.info_topic = sibling if sibling in infos else (infos[0] if len(infos) == 1 else None)
        self.native_rate_hz = DEFAULT_IMAGE_RATE_HZ  # bags replay at their recorded timing

    def __iter__(self) -> Iterator[ReplayFrame]:
        from rclpy.serialization import deserialize_message
        from rosbags.highlevel import AnyReader

        with AnyReader([self.path]) as reader:
            topics = {self.image_topic, self.info_topic} - {None}
            conns = [c for c in reader.connections if c.topic in topics]
            info = None
            t0 = None
            for conn, t_ns, raw in reader.messages(connections=conns):
                if conn.topic == self.info_topic:
                    info = deserialize_message(bytes(raw), CameraInfo)
                    continue
                t0 = t_ns if t0 is None else t0
                yield ReplayFrame(deserialize_message(bytes(raw), self.image_type), info, (t_ns - t0) * 1e-9)


def open_source(path: str | Path, compressed: bool = False, bag_image_topic: str = ""):
    """Pick the source type from ``path``: a bag (folder with metadata.yaml, .mcap, .db3), a
    folder of images, an image file or a video file."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ReplaySourceError(f"replay source {p} does not exist")
    if p.is_dir():
        if (p / "metadata.yaml").is_file():
            return BagSource(p, bag_image_topic)
        return FolderSource(p, compressed)
    suffix = p.suffix.lower()
    if suffix in BAG_SUFFIXES:
        return BagSource(p, bag_image_topic)
    if suffix in IMAGE_SUFFIXES:
        return StillImageSource(p, compressed)
    return VideoSource(p, compressed)  # let OpenCV try anything else
