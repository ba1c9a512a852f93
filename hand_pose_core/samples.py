"""The built-in sample input: OpenCV's sample photo ``handSrc.jpg`` (640x480, one real hand).

The photo is part of OpenCV's documentation (Apache-2.0) and ships in Debian's ``opencv-doc``
package, so it is fetched from the package registry rather than committed here. Lookup order:

1. the cache (``<cache>/samples/handSrc.jpg``; cache = ``$HAND_POSE_CACHE_DIR`` or the user
   cache directory),
2. an installed ``opencv-doc`` (``/usr/share/doc/opencv-doc/opencv4/html/handSrc.jpg``),
3. ``apt-get download opencv-doc`` into a temporary folder and extract that one file
   (needs Debian/Ubuntu's apt; the package is ~95 MB, downloaded once).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from hand_pose_core.paths import cache_dir

SAMPLE_NAME = "handSrc.jpg"
_DOC_PATH = "usr/share/doc/opencv-doc/opencv4/html/handSrc.jpg"


class SampleUnavailableError(RuntimeError):
    """The built-in sample image could not be found or fetched."""


def builtin_sample_image(fetch: bool = True) -> Path:
    """Path to the built-in sample photo, fetching it once from Debian's ``opencv-doc`` if needed."""
    target = cache_dir() / "samples" / SAMPLE_NAME
    if target.is_file():
        return target
    installed = Path("/") / _DOC_PATH
    if installed.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(installed, target)
        return target
    if not fetch:
        raise SampleUnavailableError(f"sample image not cached at {target}")
    _fetch_from_debian(target)
    return target


def _fetch_from_debian(target: Path) -> None:
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise SampleUnavailableError(
            "the built-in sample image comes from Debian's opencv-doc package, but apt-get/dpkg-deb "
            f"are not available here; pass your own image or video instead, or copy any hand photo to {target}"
        )
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        if not _apt_download(tmp_path):
            # A fresh machine may have empty package lists: refresh them once and retry.
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
            if not _apt_download(tmp_path):
                raise SampleUnavailableError(
                    "could not download Debian's opencv-doc package (apt-get download opencv-doc failed); "
                    f"pass your own image or video, or copy a hand photo to {target}"
                )
        deb = next(tmp_path.glob("opencv-doc_*.deb"))
        tar = subprocess.run(
            f"dpkg-deb --fsys-tarfile '{deb}' | tar -x -C '{tmp_path}' './{_DOC_PATH}'",
            shell=True, capture_output=True,
        )
        extracted = tmp_path / _DOC_PATH
        if tar.returncode != 0 or not extracted.is_file():
            raise SampleUnavailableError(f"{deb.name} does not contain {_DOC_PATH}: {tar.stderr.decode()[-300:]}")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        shutil.copyfile(extracted, partial)
        os.replace(partial, target)


def _apt_download(folder: Path) -> bool:
    result = subprocess.run(["apt-get", "download", "-qq", "opencv-doc"], cwd=folder, capture_output=True)
    return result.returncode == 0 and any(folder.glob("opencv-doc_*.deb"))
