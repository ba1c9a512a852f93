"""Compressed images whose headers claim a huge size while the files stay tiny (what a hostile
or broken publisher can send): a real PNG/JPEG of a few pixels with the size fields rewritten."""
from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np


def huge_png(width: int, height: int) -> bytes:
    """A PNG whose IHDR says ``width`` x ``height`` (valid CRC) followed by the IDAT of a 1x1
    image: a decoder allocates the full frame before it finds the data too short."""
    small = cv2.imencode(".png", np.zeros((1, 1, 3), np.uint8))[1].tobytes()
    assert small[12:16] == b"IHDR"
    ihdr = b"IHDR" + struct.pack(">II", width, height) + small[24:29]
    chunk = struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr) & 0xFFFFFFFF)
    return small[:8] + chunk + small[33:]


def huge_jpeg(width: int, height: int) -> bytes:
    """A baseline JPEG of 8x8 pixels whose SOF0 segment says ``width`` x ``height``."""
    data = bytearray(cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    i = data.index(b"\xff\xc0")
    data[i + 5:i + 9] = struct.pack(">HH", height, width)
    return bytes(data)
