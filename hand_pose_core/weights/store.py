"""Weight cache: MediaPipe TFLite models -> our modules -> safetensors files.

Layout of the cache directory (``platformdirs.user_cache_dir('hand_pose_ros')``, or
``$HAND_POSE_CACHE_DIR``)::

    tflite/<name>.tflite                       the extracted source models (kept for re-conversion)
    <name>-<source sha256[:12]>.safetensors    converted float32 weights
    <name>.json                                manifest: source, sha256, variant, converter version,
                                               safetensors file and its sha256

Every .tflite is checked against the known SHA-256 of the mediapipe 0.10.14 file before it
enters the cache and again on every conversion; a cached safetensors file is used only when its
manifest names that known source hash. A mismatch is a :class:`WeightsIntegrityError` naming the
file and the fix (``hand-pose weights --force``), never weights that silently find no hands.
Cache files are published with :func:`hand_pose_core.paths.cache_file_mode` (``0o666 & ~umask``).

Only safetensors are ever loaded (no pickle, no ``torch.load``). The mediapipe *runtime* is never
installed or imported: the wheel is fetched with ``pip download --no-deps`` and opened as a zip.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch
from torch import nn

import hashlib

from ..paths import atomic_write_bytes, cache_dir, file_sha256, publish_file
from .convert import CONVERTER_VERSION, MODEL_KINDS, build_model, convert_tflite
from .tflite_reader import TFLiteFormatError

__all__ = ["WeightsUnavailableError", "WeightsIntegrityError", "KNOWN_SHA256", "verify_tflite",
           "MODEL_NAMES", "MEDIAPIPE_WHEEL", "cache_dir",
           "ensure_tflite", "ensure_weights", "load_state_dict", "load_palm_detector",
           "load_hand_landmark", "weights_command"]

MEDIAPIPE_WHEEL = "mediapipe==0.10.14"
MODEL_NAMES = tuple(MODEL_KINDS)
# Member paths inside the wheel.
_WHEEL_MEMBERS = {
    "palm_detection_full": "mediapipe/modules/palm_detection/palm_detection_full.tflite",
    "palm_detection_lite": "mediapipe/modules/palm_detection/palm_detection_lite.tflite",
    "hand_landmark_full": "mediapipe/modules/hand_landmark/hand_landmark_full.tflite",
    "hand_landmark_lite": "mediapipe/modules/hand_landmark/hand_landmark_lite.tflite",
}
# SHA-256 of the models in mediapipe 0.10.14; a download that differs is rejected.
KNOWN_SHA256 = {
    "palm_detection_full": "1b14e9422c6ad006cde6581a46c8b90dd573c07ab7f3934b5589e7cea3f89a54",
    "palm_detection_lite": "e9a4aaddf90dda56a87235303cf00e4c2d3fb28725f68fd88772997dac905c18",
    "hand_landmark_full": "11c272b891e1a99ab034208e23937a8008388cf11ed2a9d776ed3d01d0ba00e3",
    "hand_landmark_lite": "048edd3645c9bf7397d19a9f6e3a42957d6e414c9bea6598030a2e9b624156e6",
}
# The .tflite files are identical in every platform wheel, so always fetch this one.
_PIP_PLATFORM_ARGS = ["--only-binary=:all:", "--platform", "manylinux2014_x86_64",
                      "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311"]
_TRUTHY = {"1", "true", "yes", "on"}


class WeightsUnavailableError(RuntimeError):
    """The model weights are neither cached nor obtainable; the message says what to do."""


class WeightsIntegrityError(WeightsUnavailableError):
    """A .tflite file is not the known mediapipe 0.10.14 model (damaged or a different file)."""


def _check_sha(name: str, sha: str, where: str, *, from_source: bool) -> None:
    expected = KNOWN_SHA256[name]
    if sha == expected:
        return
    if from_source:
        fix = (f"Pass the {MEDIAPIPE_WHEEL} wheel (or the .tflite files from it) as --source, "
               "or run `hand-pose weights --force` to download them again.")
    else:
        fix = ("Run `hand-pose weights --force` to fetch it again (without network access: "
               f"`hand-pose weights --force --source mediapipe-0.10.14-*.whl`).")
    raise WeightsIntegrityError(
        f"{where}: SHA-256 {sha} is not the known {name}.tflite of {MEDIAPIPE_WHEEL} "
        f"({expected}); the file is damaged or a different model, and weights converted from it "
        f"would not find hands, so it is not used. {fix}")


def verify_tflite(name: str, path: str | Path, *, from_source: bool = False) -> str:
    """SHA-256 of ``path``; raises :class:`WeightsIntegrityError` (naming the file and what to
    do) unless it is the known mediapipe 0.10.14 model ``name``."""
    sha = file_sha256(path)
    _check_sha(name, sha, str(path), from_source=from_source)
    return sha


def _offline(offline: bool) -> bool:
    return offline or os.environ.get("HAND_POSE_OFFLINE", "").strip().lower() in _TRUTHY


def _how_to_fix(root: Path, offline: bool = False) -> str:
    hint = "; drop --offline / unset HAND_POSE_OFFLINE to allow the download" if offline else ""
    return (
        "To get the hand models without network access on this machine, run on any machine:\n"
        f"    python -m pip download --no-deps {MEDIAPIPE_WHEEL} --only-binary=:all: "
        "--platform manylinux2014_x86_64 --python-version 3.11 -d DIR\n"
        "then copy the wheel here and run\n"
        "    hand-pose weights --source DIR/mediapipe-0.10.14-*.whl\n"
        "(--source also takes a directory or a single .tflite file). "
        f"Cache directory: {root} (set HAND_POSE_CACHE_DIR to change it{hint})."
    )


# ----------------------------------------------------------------------------- sources


def _extract_wheel(wheel: Path, names: tuple[str, ...], dest: Path) -> dict[str, Path]:
    try:
        zf = zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"{wheel} is not a readable wheel/zip file: {exc}") from None
    out = {}
    with zf:
        members = set(zf.namelist())
        for name in names:
            member = _WHEEL_MEMBERS[name]
            if member not in members:
                raise ValueError(f"{wheel} does not contain {member} (is it a mediapipe wheel?)")
            data = zf.read(member)
            _check_sha(name, hashlib.sha256(data).hexdigest(), f"{wheel}!{member}",
                       from_source=True)
            atomic_write_bytes(dest / f"{name}.tflite", data)
            out[name] = dest / f"{name}.tflite"
    return out


def _import_source(source: Path, names: tuple[str, ...], dest: Path) -> dict[str, Path]:
    """Copy the requested models from a wheel, a directory or a single .tflite into ``dest``."""
    if not source.exists():
        raise FileNotFoundError(f"weights source not found: {source}")
    if source.is_dir():
        found = {}
        for name in names:
            hits = sorted(source.rglob(f"{name}.tflite"))
            if hits:
                found[name] = hits[0]
        if not found:
            wheels = sorted(source.glob("mediapipe-*.whl"))
            if wheels:
                return _extract_wheel(wheels[-1], names, dest)
            raise ValueError(f"{source} contains neither mediapipe-*.whl nor any of "
                             f"{', '.join(n + '.tflite' for n in names)}")
    elif source.suffix == ".tflite":
        if source.stem not in MODEL_KINDS:
            raise ValueError(f"{source.name}: unknown model file name; expected one of "
                             f"{', '.join(n + '.tflite' for n in MODEL_NAMES)}")
        found = {source.stem: source}
    else:
        return _extract_wheel(source, names, dest)
    out = {}
    for name, path in found.items():
        verify_tflite(name, path, from_source=True)  # before it enters the cache
    for name, path in found.items():
        target = dest / f"{name}.tflite"
        if path.resolve() != target.resolve():
            atomic_write_bytes(target, path.read_bytes())
        out[name] = target
    return out


def _download_wheel(dest: Path, progress: bool) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", MEDIAPIPE_WHEEL,
           *_PIP_PLATFORM_ARGS, "-d", str(dest)]
    if not progress:
        cmd.append("-q")
    if progress:
        print(f"hand_pose: downloading {MEDIAPIPE_WHEEL} (35.7 MB, models only, not installed) "
              f"to {dest}", file=sys.stderr)
    try:
        proc = subprocess.run(cmd, stdout=sys.stderr if progress else subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise WeightsUnavailableError(
            f"downloading {MEDIAPIPE_WHEEL} failed ({exc}).\n" + _how_to_fix(dest.parent)) from None
    wheels = sorted(dest.glob("mediapipe-*.whl"))
    if proc.returncode != 0 or not wheels:
        tail = (proc.stderr or "").strip().splitlines()[-3:]
        raise WeightsUnavailableError(
            f"downloading {MEDIAPIPE_WHEEL} with pip failed: {' / '.join(tail)}\n"
            + _how_to_fix(dest.parent))
    return wheels[-1]


def ensure_tflite(names: tuple[str, ...] = MODEL_NAMES, source: str | Path | None = None,
                  offline: bool = False, progress: bool = True,
                  force: bool = False) -> dict[str, Path]:
    """Source .tflite files under ``cache_dir()/tflite``, fetched from ``source`` or PyPI.

    Files from ``source`` or a download are verified before they enter the cache. With
    ``force``, a cached file that is not the known model is deleted and fetched again.
    """
    root = cache_dir()
    dest = root / "tflite"
    if source is not None:
        got = _import_source(Path(source).expanduser(), names, dest)
        if not got:
            raise ValueError(f"{source} provides none of {names}")
        return got
    have = {n: dest / f"{n}.tflite" for n in names if (dest / f"{n}.tflite").is_file()}
    if force:
        for n, path in list(have.items()):
            if file_sha256(path) != KNOWN_SHA256[n]:
                path.unlink(missing_ok=True)
                del have[n]
    missing = tuple(n for n in names if n not in have)
    if not missing:
        return have
    if _offline(offline):
        raise WeightsUnavailableError(
            f"hand model weights {', '.join(missing)} are not cached and offline mode is on.\n"
            + _how_to_fix(root, offline=True))
    root.mkdir(parents=True, exist_ok=True)
    # A private download folder: concurrent first uses (parallel tests, several nodes) don't clash.
    download_dir = Path(tempfile.mkdtemp(dir=root, prefix="download-"))
    try:
        wheel = _download_wheel(download_dir, progress)
        got = _extract_wheel(wheel, missing, dest)  # verifies each model before writing it
    finally:
        shutil.rmtree(download_dir, ignore_errors=True)
    return {**have, **got}


# ----------------------------------------------------------------------------- cache entries


def _manifest_path(name: str) -> Path:
    return cache_dir() / f"{name}.json"


def _read_manifest(name: str) -> dict | None:
    try:
        return json.loads(_manifest_path(name).read_text())
    except (OSError, ValueError):
        return None


def _valid_entry(name: str, source_sha: str | None = None) -> Path | None:
    """Path of a usable cached safetensors file for ``name``, else None."""
    entry = _read_manifest(name)
    if not entry or entry.get("converter_version") != CONVERTER_VERSION:
        return None
    if entry.get("sha256") != KNOWN_SHA256.get(name):  # converted from an unknown/damaged file
        return None
    if source_sha is not None and entry.get("sha256") != source_sha:
        return None
    path = cache_dir() / str(entry.get("file", ""))
    if not path.is_file() or file_sha256(path) != entry.get("file_sha256"):
        return None
    return path


def _convert_one(name: str, tflite_path: Path) -> Path:
    from safetensors.torch import save_file

    sha = verify_tflite(name, tflite_path)  # on every conversion, not only after a download
    _, state = convert_tflite(tflite_path, name)
    root = cache_dir()
    out = root / f"{name}-{sha[:12]}.safetensors"
    tmp = out.with_name(out.name + f".{os.getpid()}.tmp")
    root.mkdir(parents=True, exist_ok=True)
    meta = {"model": name, "source_sha256": sha, "converter_version": str(CONVERTER_VERSION)}
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata=meta)
    publish_file(tmp, out)
    manifest = {
        "model": name, "variant": MODEL_KINDS[name][1], "source": str(tflite_path),
        "sha256": sha, "converter_version": CONVERTER_VERSION, "file": out.name,
        "file_sha256": file_sha256(out),
    }
    atomic_write_bytes(_manifest_path(name), json.dumps(manifest, indent=2).encode())
    return out


def _names_for(variant: str) -> tuple[str, ...]:
    if variant == "all":
        return MODEL_NAMES
    if variant not in ("full", "lite"):
        raise ValueError(f"variant must be 'full', 'lite' or 'all', got {variant!r}")
    return tuple(n for n in MODEL_NAMES if n.endswith("_" + variant))


def ensure_weights(source: str | Path | None = None, offline: bool = False,
                   progress: bool = True, *, variant: str = "all",
                   force: bool = False) -> dict[str, Path]:
    """Make sure the converted weights are cached; returns {model name: safetensors path}.

    Model names: 'palm_detection_full', 'palm_detection_lite', 'hand_landmark_full',
    'hand_landmark_lite' (``variant`` narrows the set). With ``source`` (a mediapipe wheel, a
    directory, or one .tflite file) the models are taken from there and re-converted when their
    SHA-256 differs from the cached one; without it, cached weights are used, then cached .tflite
    files, then the wheel is downloaded from PyPI (unless offline: ``offline=True`` or
    ``HAND_POSE_OFFLINE=1``).

    Raises:
        WeightsUnavailableError: not cached and cannot be obtained (message says what to do).
        ValueError / FileNotFoundError: a bad ``source``.
    """
    from tqdm import tqdm

    names = _names_for(variant)
    result: dict[str, Path] = {}
    if source is None and not force:
        for name in names:
            path = _valid_entry(name)
            if path is not None:
                result[name] = path
    todo = tuple(n for n in names if n not in result)
    if not todo:
        return result
    tflites = ensure_tflite(todo, source=source, offline=offline, progress=progress, force=force)
    bar = tqdm(tflites.items(), desc="converting hand models", unit="model",
               disable=not progress, file=sys.stderr)
    for name, tpath in bar:
        cached = None if force else _valid_entry(name, file_sha256(tpath))
        if cached is not None:
            result[name] = cached
            continue
        try:
            result[name] = _convert_one(name, tpath)
        except TFLiteFormatError:
            if source is None:  # a damaged cached .tflite: drop it so the next call re-fetches
                tpath.unlink(missing_ok=True)
            raise
    for name in names:  # a single-file source leaves the other models as they are cached
        if name not in result:
            path = _valid_entry(name)
            if path is not None:
                result[name] = path
    return result


# ----------------------------------------------------------------------------- loading


def load_state_dict(name: str, offline: bool = False,
                    progress: bool = True) -> dict[str, torch.Tensor]:
    """Converted weights of model ``name`` from the cache (converting on first use).

    A cached file that fails to load or whose SHA-256 differs from the manifest is re-converted
    once; if that is impossible the error says why.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if name not in MODEL_KINDS:
        raise ValueError(f"unknown model {name!r}; expected one of {MODEL_NAMES}")
    variant = MODEL_KINDS[name][1]
    for attempt in range(2):
        path = ensure_weights(offline=offline, progress=progress, variant=variant,
                              force=attempt > 0)[name]
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            if attempt:
                raise ValueError(f"cached weights {path} are unreadable even after re-conversion "
                                 f"({exc}); delete {cache_dir()} and retry") from None
            path.unlink(missing_ok=True)
    raise AssertionError("unreachable")


def _load_module(name: str, device: str | torch.device) -> nn.Module:
    model = build_model(name)
    model.load_state_dict(load_state_dict(name), strict=True)
    return model.to(device).eval()


def load_palm_detector(variant: str = "full", device: str | torch.device = "cpu"):
    """PalmDetector with the converted MediaPipe weights, in eval mode."""
    return _load_module(f"palm_detection_{variant}", device)


def load_hand_landmark(variant: str = "full", device: str | torch.device = "cpu"):
    """HandLandmark with the converted MediaPipe weights, in eval mode."""
    return _load_module(f"hand_landmark_{variant}", device)


# ----------------------------------------------------------------------------- CLI


def weights_command(argv: list[str] | None = None) -> int:
    """``hand-pose weights [--source PATH] [--offline] [--variant full|lite|all] [--force]``."""
    parser = argparse.ArgumentParser(
        prog="hand-pose weights",
        description="Fetch the MediaPipe hand models (Apache-2.0) from the mediapipe "
                    f"wheel ({MEDIAPIPE_WHEEL}, not installed), convert them to PyTorch and "
                    "cache them as safetensors.")
    parser.add_argument("--source", type=Path, default=None,
                        help="a mediapipe wheel, a directory with it or with the .tflite files, "
                             "or one .tflite file (default: cache, then download from PyPI)")
    parser.add_argument("--offline", action="store_true",
                        help="never download (same as HAND_POSE_OFFLINE=1)")
    parser.add_argument("--variant", choices=("full", "lite", "all"), default="all")
    parser.add_argument("--force", action="store_true",
                        help="re-convert even when cached, and fetch again any cached .tflite "
                             "that fails the SHA-256 check")
    args = parser.parse_args(argv)
    before = {n: _valid_entry(n) for n in _names_for(args.variant)}
    try:
        paths = ensure_weights(source=args.source, offline=args.offline, progress=True,
                               variant=args.variant, force=args.force)
    except (WeightsUnavailableError, ValueError, FileNotFoundError) as exc:
        print(f"hand-pose weights: error: {exc}", file=sys.stderr)
        return 1
    for name, path in paths.items():
        entry = _read_manifest(name) or {}
        status = "cached" if before.get(name) == path and not args.force else "converted"
        print(f"{name:22s} {status:9s} {path}  source sha256 {entry.get('sha256', '?')[:12]} "
              "(verified)")
    print(f"cache directory: {cache_dir()}")
    return 0
