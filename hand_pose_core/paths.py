"""Where hand_pose_ros keeps what it downloads and builds (weights, ONNX files, engines, samples),
and the two file helpers every cache writer uses."""
from __future__ import annotations

import hashlib
import os
import tempfile
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


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_file_mode() -> int:
    """Permission bits of every file the cache writers publish: ``0o666 & ~umask``, what a plain
    ``open(path, 'w')`` would give (0644 with the usual umask 022). Temporary files from
    ``tempfile.mkstemp`` are 0600 whatever the umask, so writers must not publish them as they
    are; :func:`publish_file` applies this mode."""
    try:  # Linux >= 4.7 reports the umask without changing it (os.umask is process-global)
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def publish_file(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Give a finished temporary file the cache's file mode and move it to ``path`` atomically."""
    os.chmod(tmp, cache_file_mode())
    os.replace(tmp, path)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``,
    so a reader never sees a half-written cache file (several processes may fill the cache)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        publish_file(tmp, path)  # mkstemp creates 0600: publish with the cache's file mode
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
