"""sensor_msgs/Image and CompressedImage <-> numpy RGB arrays (no cv_bridge needed).

Every rejected message raises an :class:`ImageFormatError` subclass whose ``kind`` names the
problem for the node's diagnostics counters, and whose message says what to fix.
"""
from __future__ import annotations

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image

# encoding -> (channels, cv2 conversion to RGB or None when already RGB)
_ENCODINGS: dict[str, tuple[int, int | None]] = {
    "rgb8": (3, None),
    "bgr8": (3, cv2.COLOR_BGR2RGB),
    "rgba8": (4, cv2.COLOR_RGBA2RGB),
    "bgra8": (4, cv2.COLOR_BGRA2RGB),
    "mono8": (1, cv2.COLOR_GRAY2RGB),
    "8UC1": (1, cv2.COLOR_GRAY2RGB),
    "8UC3": (3, cv2.COLOR_BGR2RGB),  # OpenCV's default channel order
    "yuv422": (2, cv2.COLOR_YUV2RGB_UYVY),  # ROS name for UYVY
    "uyvy": (2, cv2.COLOR_YUV2RGB_UYVY),
    "yuv422_yuy2": (2, cv2.COLOR_YUV2RGB_YUY2),
    "yuyv": (2, cv2.COLOR_YUV2RGB_YUY2),
}
SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_ENCODINGS)

# 8K UHD; larger frames are refused rather than risking seconds-long stalls and GBs of memory.
DEFAULT_MAX_PIXELS = 7680 * 4320


class ImageFormatError(ValueError):
    """An image message that cannot be turned into an RGB array."""

    kind = "bad_image"


class UnsupportedEncodingError(ImageFormatError):
    kind = "bad_encoding"


class ZeroSizeImageError(ImageFormatError):
    kind = "zero_size"


class StepMismatchError(ImageFormatError):
    kind = "bad_step"


class DataSizeMismatchError(ImageFormatError):
    kind = "bad_data_size"


class ImageTooLargeError(ImageFormatError):
    kind = "too_large"


class DecodeError(ImageFormatError):
    kind = "decode_failed"


def image_msg_to_rgb(msg: Image, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Return an (H, W, 3) uint8 RGB array for a sensor_msgs/Image.

    Honours ``step`` (row padding). For ``rgb8`` without padding the result is a zero-copy view
    of ``msg.data`` (keep ``msg`` alive while using it).
    """
    enc = msg.encoding
    if enc not in _ENCODINGS:
        raise UnsupportedEncodingError(
            f"unsupported image encoding {enc!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}"
        )
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise ZeroSizeImageError(f"image has zero size ({w}x{h})")
    if h * w > max_pixels:
        raise ImageTooLargeError(
            f"image {w}x{h} ({h * w / 1e6:.1f} MP) exceeds max_image_pixels={max_pixels}"
        )
    channels, conversion = _ENCODINGS[enc]
    row_bytes = w * channels
    if step < row_bytes:
        raise StepMismatchError(
            f"step {step} is smaller than width*channels = {w}*{channels} = {row_bytes} for {enc!r}"
        )
    n = len(msg.data)
    if n != step * h:
        raise DataSizeMismatchError(
            f"data has {n} bytes but step*height = {step}*{h} = {step * h} ({w}x{h} {enc!r})"
        )
    buf = np.frombuffer(msg.data, dtype=np.uint8).reshape(h, step)[:, :row_bytes]
    if channels == 2 and w % 2:
        raise DataSizeMismatchError(f"{enc!r} needs an even width, got {w}")
    img = buf.reshape(h, w, channels)
    if conversion is None:
        return img if step == row_bytes else np.ascontiguousarray(img)
    return cv2.cvtColor(np.ascontiguousarray(img), conversion)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, extended, progressive, lossless, arithmetic...): C0-CF
# except DHT (C4), JPG (C8) and DAC (CC). Markers without a length field: TEM (01), RSTn, SOI, EOI.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_NO_LENGTH = {0x01, *range(0xD0, 0xDA)}


def compressed_image_size(data) -> tuple[str, int, int]:
    """``(format, width, height)`` of a PNG or JPEG from its header, without decoding.

    PNG: the IHDR chunk (always first). JPEG: the first start-of-frame segment, found by walking
    the marker segments. Raises :class:`UnsupportedEncodingError` for other formats and
    :class:`DecodeError` for a header that is cut short or malformed.
    """
    b = bytes(data[:8]) if len(data) >= 8 else bytes(data)
    if b.startswith(_PNG_SIGNATURE):
        head = bytes(data[8:24])
        if len(head) < 16 or head[4:8] != b"IHDR":
            raise DecodeError("PNG without an IHDR chunk after the signature")
        return "png", int.from_bytes(head[8:12], "big"), int.from_bytes(head[12:16], "big")
    if b[:2] == b"\xff\xd8":
        mv = memoryview(data)
        i, n = 2, len(mv)
        while i + 4 <= n:
            if mv[i] != 0xFF:
                raise DecodeError(f"JPEG header malformed at byte {i} (no marker)")
            marker = mv[i + 1]
            if marker == 0xFF:  # fill byte
                i += 1
                continue
            if marker in _JPEG_NO_LENGTH:
                i += 2
                continue
            if marker == 0xDA:  # start of scan before any frame header
                break
            length = (mv[i + 2] << 8) | mv[i + 3]
            if marker in _JPEG_SOF:
                if i + 9 > n:
                    break
                h, w = (mv[i + 5] << 8) | mv[i + 6], (mv[i + 7] << 8) | mv[i + 8]
                if h == 0:  # height given later by a DNL segment: the size is not known up front
                    raise DecodeError("JPEG with its height in a DNL segment is not supported")
                return "jpeg", w, h
            if length < 2:
                raise DecodeError(f"JPEG segment at byte {i} has length {length}")
            i += 2 + length
        raise DecodeError("JPEG header has no frame header (SOF segment)")
    raise UnsupportedEncodingError(
        "compressed image is neither PNG nor JPEG (the only formats whose size is checked against "
        f"max_image_pixels before decoding); first bytes {b[:8].hex()}"
    )


def compressed_msg_to_rgb(msg: CompressedImage, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode a sensor_msgs/CompressedImage (JPEG/PNG) to an (H, W, 3) uint8 RGB array.

    The size is read from the PNG/JPEG header first: an image over ``max_pixels`` is refused
    before any pixel is decoded (a small file can decode to gigabytes).
    """
    if len(msg.data) == 0:
        raise ZeroSizeImageError(f"compressed image ({msg.format!r}) has no data")
    fmt, w, h = compressed_image_size(msg.data)
    if w <= 0 or h <= 0:
        raise ZeroSizeImageError(f"compressed {fmt} image has zero size ({w}x{h}) in its header")
    if h * w > max_pixels:
        raise ImageTooLargeError(
            f"compressed {fmt} image is {w}x{h} ({h * w / 1e6:.1f} MP) by its header, over "
            f"max_image_pixels={max_pixels}: refused before decoding"
        )
    raw = np.frombuffer(msg.data, dtype=np.uint8)
    bgr = cv2.imdecode(raw, cv2.IMREAD_COLOR)
    if bgr is None:
        raise DecodeError(f"could not decode compressed image of format {msg.format!r} ({len(raw)} bytes)")
    if bgr.shape[0] * bgr.shape[1] > max_pixels:  # the header lied
        raise ImageTooLargeError(f"image {bgr.shape[1]}x{bgr.shape[0]} exceeds max_image_pixels={max_pixels}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


# depth encodings (REP 118): 16UC1 millimetres, 32FC1 metres; 0 / NaN = no reading
DEPTH_ENCODINGS = {"16UC1": np.dtype("<u2"), "mono16": np.dtype("<u2"), "32FC1": np.dtype("<f4")}


def depth_msg_to_array(msg: Image, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An (H, W) depth array for a sensor_msgs/Image: uint16 millimetres (16UC1) or float32
    metres (32FC1), as :meth:`HandPoseEstimator.__call__` takes it. Honours ``step`` and
    ``is_bigendian``. Raises :class:`ImageFormatError` subclasses like :func:`image_msg_to_rgb`."""
    enc = msg.encoding
    if enc not in DEPTH_ENCODINGS:
        raise UnsupportedEncodingError(
            f"unsupported depth encoding {enc!r}; supported: 16UC1 (millimetres), 32FC1 (metres)")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise ZeroSizeImageError(f"depth image has zero size ({w}x{h})")
    if h * w > max_pixels:
        raise ImageTooLargeError(f"depth image {w}x{h} exceeds max_image_pixels={max_pixels}")
    dtype = DEPTH_ENCODINGS[enc]
    row_bytes = w * dtype.itemsize
    if step < row_bytes:
        raise StepMismatchError(f"depth step {step} is smaller than width*{dtype.itemsize} = {row_bytes} for {enc!r}")
    if len(msg.data) != step * h:
        raise DataSizeMismatchError(f"depth data has {len(msg.data)} bytes but step*height = {step * h}")
    if msg.is_bigendian:
        dtype = dtype.newbyteorder(">")
    rows = np.frombuffer(msg.data, dtype=np.uint8).reshape(h, step)[:, :row_bytes]
    return np.ascontiguousarray(rows).view(dtype).reshape(h, w).astype(dtype.newbyteorder("="), copy=False)


def depth_to_image_msg(depth: np.ndarray, header=None) -> Image:
    """sensor_msgs/Image from a uint16 (16UC1, mm) or float32 (32FC1, m) depth array."""
    arr = np.ascontiguousarray(depth)
    if arr.ndim != 2 or arr.dtype not in (np.uint16, np.float32):
        raise ValueError(f"expected an (H, W) uint16 or float32 depth array, got {arr.shape} {arr.dtype}")
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(arr.shape[0]), int(arr.shape[1])
    msg.encoding = "16UC1" if arr.dtype == np.uint16 else "32FC1"
    msg.is_bigendian = 0
    msg.step = int(arr.shape[1] * arr.dtype.itemsize)
    msg.data = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
    return msg


def rgb_to_image_msg(rgb: np.ndarray, header=None, encoding: str = "rgb8") -> Image:
    """Build a sensor_msgs/Image from an (H, W, 3) uint8 RGB array (``rgb8`` or ``bgr8``).

    ``data`` is filled from bytes: assigning a numpy array to it is ~100x slower in rclpy.
    """
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 array, got {arr.shape} {arr.dtype}")
    if encoding == "bgr8":
        arr = arr[:, :, ::-1]
    elif encoding != "rgb8":
        raise ValueError(f"rgb_to_image_msg writes 'rgb8' or 'bgr8', not {encoding!r}")
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(arr.shape[0]), int(arr.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(arr.shape[1] * 3)
    msg.data = np.ascontiguousarray(arr).tobytes()
    return msg


def rgb_to_compressed_msg(rgb: np.ndarray, header=None, quality: int = 90) -> CompressedImage:
    """JPEG-encode an RGB array into a sensor_msgs/CompressedImage."""
    ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    msg = CompressedImage()
    if header is not None:
        msg.header = header
    msg.format = "jpeg"
    msg.data = jpg.tobytes()
    return msg
