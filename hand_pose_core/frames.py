"""Reading RGB frames from image files, image folders and video files (OpenCV).

One place for what the CLI, the ROS replay node, the benchmark and the tests all read.
Errors name the file and the problem (``FrameSourceError`` is a ``ValueError``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})
DEFAULT_IMAGE_RATE_HZ = 30.0


class FrameSourceError(ValueError):
    """An image, folder or video that cannot be read."""


def read_rgb(path: str | Path) -> np.ndarray:
    """One image file as HxWx3 uint8 RGB."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FrameSourceError(f"cannot read image {path} (missing, unreadable or not an image)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def image_files(folder: str | Path) -> list[Path]:
    """The images of ``folder`` (by suffix), sorted by name; at least one."""
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FrameSourceError(f"folder {folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def video_rate_hz(path: str | Path) -> float:
    """The frame rate a video file declares (checking that it opens and has a first frame);
    ``DEFAULT_IMAGE_RATE_HZ`` when the container gives none or nonsense."""
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise FrameSourceError(f"cannot open video {path} (missing file, unsupported codec or not a video)")
        fps = capture.get(cv2.CAP_PROP_FPS)
        if not capture.read()[0]:
            raise FrameSourceError(f"video {path} has no decodable frame")
    finally:
        capture.release()
    return float(fps) if np.isfinite(fps) and 0 < fps < 1000 else DEFAULT_IMAGE_RATE_HZ


def iter_video_rgb(path: str | Path) -> Iterator[np.ndarray]:
    """The frames of a video file, decoded one at a time, as HxWx3 uint8 RGB."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise FrameSourceError(f"cannot open video {path} (missing file, unsupported codec or not a video)")
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                return
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


def read_video_rgb(path: str | Path) -> list[np.ndarray]:
    """All frames of a video file in memory (for tests and benchmarks on short clips)."""
    frames = list(iter_video_rgb(path))
    if not frames:
        raise FrameSourceError(f"video {path} has no decodable frame")
    return frames


def iter_frames(source: str | Path, fps: float | None = None) -> tuple[Iterator[np.ndarray], int, float]:
    """(RGB frames, frame count or -1, frame rate) of a video file or an image folder.
    ``fps`` overrides the rate (image folders default to 30 Hz)."""
    source = Path(source)
    if source.is_dir():
        files = image_files(source)
        return (read_rgb(p) for p in files), len(files), fps or DEFAULT_IMAGE_RATE_HZ
    if not source.is_file():
        raise FileNotFoundError(f"no such video or folder: {source}")
    rate = fps or video_rate_hz(source)
    capture = cv2.VideoCapture(str(source))
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or -1
    capture.release()
    return iter_video_rgb(source), count, rate
