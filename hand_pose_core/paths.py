"""Where hand_pose_ros keeps what it downloads and builds (weights, ONNX files, engines, samples)."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """The cache root: ``override`` if given, else ``$HAND_POSE_CACHE_DIR``, else the per-user
    cache directory of 'hand_pose_ros' (``~/.cache/hand_pose_ros`` on Linux)."""
    if override is not None:
        return Path(override).expanduser()
    env = os.environ.get("HAND_POSE_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("hand_pose_ros"))
