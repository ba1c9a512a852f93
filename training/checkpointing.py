"""Resumable training checkpoints: written atomically, verified before use, never unpickled.

Layout of a run folder::

    RUN/checkpoints/step_00001200/
        model.safetensors        the network (hand_pose_core.models.checkpoint.save_model)
        train_state.safetensors  optimizer tensors + JSON: optimizer structure, grad scaler,
                                 step, epoch, batch position in the epoch, config, world size
        rank_00000.safetensors   per-rank RNG states (python, numpy, torch CPU, CUDA), one per rank
        manifest.json            size and SHA-256 of every file above; written last

A checkpoint is written into ``.step_00001200.partial/`` and renamed to its final name only when
every file and the manifest are on disk (fsynced), so a process killed at any moment leaves
either the previous checkpoints or a complete new one (a stale ``.partial`` folder is ignored and
cleaned up). Loading checks the manifest first: a missing, truncated or corrupt file is refused
with :class:`CheckpointError` naming it. Non-tensor state is JSON in the safetensors metadata;
nothing is loaded with ``pickle`` or ``torch.load``.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from hand_pose_core.models.checkpoint import CheckpointError, read_model_file, read_safetensors, save_model

STATE_FORMAT = "hand_pose_ros.train_state/1"
MANIFEST_FORMAT = "hand_pose_ros.checkpoint/1"
MODEL_FILE = "model.safetensors"
STATE_FILE = "train_state.safetensors"
MANIFEST = "manifest.json"
_STEP_RE = re.compile(r"^step_(\d{8})$")

__all__ = [
    "CheckpointError", "encode_tree", "decode_tree", "save_tree_bytes", "load_tree",
    "rank_file", "write_checkpoint", "verify_checkpoint", "load_checkpoint", "list_checkpoints",
    "find_resume", "prune", "capture_rng", "restore_rng",
]


# --------------------------------------------------------------------------- tree <-> JSON + tensors

def encode_tree(obj: Any, tensors: dict | None = None, prefix: str = "t") -> tuple[Any, dict]:
    """Split a nested structure into JSON-able data and a flat ``{name: tensor}`` dict.

    Handles dicts (any hashable JSON-able keys), lists, tuples, tensors, numpy arrays and
    JSON scalars; anything else is refused (it would need pickle)."""
    tensors = {} if tensors is None else tensors

    def enc(o):
        if isinstance(o, torch.Tensor):
            name = f"{prefix}{len(tensors)}"
            tensors[name] = o.detach().to("cpu").contiguous().clone()
            return {"__tensor__": name}
        if isinstance(o, np.ndarray):
            name = f"{prefix}{len(tensors)}"
            arr = o.astype(np.int64) if o.dtype == np.uint32 else o
            tensors[name] = torch.from_numpy(np.ascontiguousarray(arr)).clone()
            return {"__ndarray__": name, "dtype": str(o.dtype)}
        if isinstance(o, np.generic):
            return o.item()
        if o is None or isinstance(o, (bool, int, float, str)):
            return o
        if isinstance(o, tuple):
            return {"__tuple__": [enc(v) for v in o]}
        if isinstance(o, list):
            return [enc(v) for v in o]
        if isinstance(o, dict):
            if all(isinstance(k, str) and not k.startswith("__") for k in o):
                return {k: enc(v) for k, v in o.items()}
            return {"__items__": [[enc(k), enc(v)] for k, v in o.items()]}
        raise TypeError(f"cannot store a {type(o).__name__} in a training state without pickle")

    return enc(obj), tensors


def decode_tree(tree: Any, tensors: dict) -> Any:
    """Inverse of :func:`encode_tree`."""

    def dec(o):
        if isinstance(o, list):
            return [dec(v) for v in o]
        if isinstance(o, dict):
            if "__tensor__" in o:
                return tensors[o["__tensor__"]]
            if "__ndarray__" in o:
                return tensors[o["__ndarray__"]].numpy().astype(np.dtype(o["dtype"]))
            if "__tuple__" in o:
                return tuple(dec(v) for v in o["__tuple__"])
            if "__items__" in o:
                return {_hashable(dec(k)): dec(v) for k, v in o["__items__"]}
            return {k: dec(v) for k, v in o.items()}
        return o

    return dec(tree)


def _hashable(k):
    return tuple(_hashable(v) for v in k) if isinstance(k, list) else k


def save_tree_bytes(obj: Any, kind: str) -> bytes:
    """A safetensors file (as bytes) holding ``obj``'s tensors and its JSON structure."""
    from safetensors.torch import save

    tree, tensors = encode_tree(obj)
    meta = {"format": STATE_FORMAT, "kind": kind, "tree": json.dumps(tree)}
    return save(tensors, metadata=meta)


def load_tree(path, kind: str) -> Any:
    """Read a file written from :func:`save_tree_bytes`; :class:`CheckpointError` names the file."""
    path = Path(path)
    tensors, meta = read_safetensors(path, "training state file")
    if meta.get("format") != STATE_FORMAT or meta.get("kind") != kind:
        raise CheckpointError(f"training state file {path} is not a {kind!r} file of format {STATE_FORMAT} "
                              f"(found format {meta.get('format')!r}, kind {meta.get('kind')!r})")
    try:
        tree = json.loads(meta["tree"])
        return decode_tree(tree, tensors)
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"training state file {path} has an unreadable structure: {err}") from err


# --------------------------------------------------------------------------- RNG states

def capture_rng() -> dict:
    """Python, numpy and torch (CPU and CUDA) RNG states of this process."""
    import random

    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng(state: dict) -> None:
    import random

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


# --------------------------------------------------------------------------- files

def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def rank_file(rank: int) -> str:
    return f"rank_{rank:05d}.safetensors"


def step_dir_name(step: int) -> str:
    return f"step_{step:08d}"


def write_checkpoint(root, step: int, *, rank: int, world_size: int, rank_state: dict,
                     model=None, model_name: str | None = None, model_cfg: dict | None = None,
                     model_extra: dict | None = None, train_state: dict | None = None,
                     barrier: Callable[[], None] = lambda: None, keep: int = 0) -> Path:
    """Write checkpoint ``step`` under ``root`` (collective: every rank calls it).

    Rank 0 writes the model and the training state, every rank its RNG file; rank 0 then writes
    the manifest and renames the folder into place. Returns the final folder."""
    root = Path(root)
    final = root / step_dir_name(step)
    partial = root / f".{step_dir_name(step)}.partial"
    if rank == 0:
        root.mkdir(parents=True, exist_ok=True)
        if partial.exists():
            shutil.rmtree(partial)
        partial.mkdir()
    barrier()
    _write_file(partial / rank_file(rank), save_tree_bytes(rank_state, "rank_state"))
    barrier()
    if rank == 0:
        save_model(partial / MODEL_FILE, model, model_name, model_cfg or {}, model_extra)
        _write_file(partial / STATE_FILE, save_tree_bytes(train_state or {}, "train_state"))
        names = [MODEL_FILE, STATE_FILE] + [rank_file(r) for r in range(world_size)]
        files = {}
        for name in names:
            p = partial / name
            if not p.is_file():
                raise CheckpointError(f"checkpoint {partial}: rank file {p.name} was not written "
                                      "(is the run folder on a filesystem every node shares?)")
            files[name] = {"bytes": p.stat().st_size, "sha256": _sha256_file(p)}
        manifest = {"format": MANIFEST_FORMAT, "step": step, "world_size": world_size, "files": files}
        _write_file(partial / MANIFEST, json.dumps(manifest, indent=1).encode())
        _fsync_dir(partial)
        if final.exists():  # the same step written again (e.g. after a resume): swap it
            old = root / f".{step_dir_name(step)}.old"
            if old.exists():
                shutil.rmtree(old)
            os.rename(final, old)
            os.rename(partial, final)
            shutil.rmtree(old)
        else:
            os.rename(partial, final)
        _fsync_dir(root)
        if keep > 0:
            prune(root, keep)
    barrier()
    return final


def prune(root, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` checkpoints (and stale partial folders)."""
    root = Path(root)
    removed = []
    for p in list_checkpoints(root)[keep:]:
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    for p in root.glob(".step_*.partial"):
        shutil.rmtree(p, ignore_errors=True)
    return removed


def list_checkpoints(root) -> list[Path]:
    """Complete-looking checkpoint folders under ``root``, newest (highest step) first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _STEP_RE.match(p.name)]
    return sorted(found, key=lambda p: int(_STEP_RE.match(p.name).group(1)), reverse=True)


def verify_checkpoint(path) -> dict:
    """Check a checkpoint folder against its manifest; return the manifest or raise
    :class:`CheckpointError` naming the missing, truncated or corrupt file."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path} is not a folder")
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise CheckpointError(f"checkpoint {path} is incomplete: {mpath} is missing "
                              "(was the process killed while writing it?)")
    try:
        manifest = json.loads(mpath.read_text())
        files = manifest["files"]
        if manifest.get("format") != MANIFEST_FORMAT or not isinstance(files, dict):
            raise ValueError(f"format {manifest.get('format')!r}")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"checkpoint manifest {mpath} is corrupt or truncated ({err})") from err
    for name, info in files.items():
        p = path / name
        if not p.is_file():
            raise CheckpointError(f"checkpoint file {p} is missing")
        size = p.stat().st_size
        if size != info["bytes"]:
            raise CheckpointError(f"checkpoint file {p} is truncated or altered: {size} bytes, "
                                  f"manifest says {info['bytes']}")
        if _sha256_file(p) != info["sha256"]:
            raise CheckpointError(f"checkpoint file {p} is corrupt: SHA-256 differs from {mpath}")
    return manifest


def load_checkpoint(path, rank: int = 0) -> dict:
    """Verify and read a checkpoint: ``{'model_state', 'model_meta', 'train_state', 'rank_state',
    'manifest', 'path'}``; ``rank_state`` is None when the checkpoint has no file for ``rank``."""
    path = Path(path)
    manifest = verify_checkpoint(path)
    for needed in (MODEL_FILE, STATE_FILE):
        if needed not in manifest["files"]:
            raise CheckpointError(f"checkpoint {path}: manifest lists no {needed}")
    model_state, model_meta = read_model_file(path / MODEL_FILE)
    train_state = load_tree(path / STATE_FILE, "train_state")
    rname = rank_file(rank)
    rank_state = load_tree(path / rname, "rank_state") if rname in manifest["files"] else None
    return {"model_state": model_state, "model_meta": model_meta, "train_state": train_state,
            "rank_state": rank_state, "manifest": manifest, "path": path}


def resume_root(spec: str, out_dir) -> Path:
    """The folder holding the step folders that ``--resume spec`` picks from."""
    if spec == "auto":
        return Path(out_dir) / "checkpoints"
    p = Path(spec)
    if (p / MANIFEST).exists() or _STEP_RE.match(p.name):
        return p.parent
    if (p / "checkpoints").is_dir():
        return p / "checkpoints"
    return p


def find_resume(spec: str, out_dir, log: Callable[[str], None] = print, quarantine: bool = False) -> Path | None:
    """Which checkpoint ``--resume spec`` means.

    - ``'auto'``: the newest valid checkpoint of ``out_dir``; invalid newer ones are skipped with a
      log line saying why (fallback to the previous good one); None when there is none.
    - a checkpoint folder (``.../step_N``): exactly that one; refused if invalid.
    - a run folder (holding ``checkpoints/``): like 'auto' on it, but an error if none is valid.

    ``quarantine``: rename each refused folder to ``step_N.refused`` (kept for inspection; no
    longer counted as a checkpoint, so pruning and later resumes ignore it).
    """
    if spec == "auto":
        root, strict = Path(out_dir) / "checkpoints", False
    else:
        p = Path(spec)
        if (p / MANIFEST).exists() or _STEP_RE.match(p.name):
            load_checkpoint(p)
            return p
        if (p / "checkpoints").is_dir():
            root, strict = p / "checkpoints", True
        elif p.is_dir() and list_checkpoints(p):
            root, strict = p, True
        else:
            raise CheckpointError(f"--resume {spec}: not a checkpoint folder nor a run folder with checkpoints/")
    candidates = list_checkpoints(root)
    for i, cand in enumerate(candidates):
        try:
            load_checkpoint(cand)
        except CheckpointError as err:
            nxt = candidates[i + 1].name if i + 1 < len(candidates) else "none left"
            log(f"resume: refusing checkpoint {cand}: {err}; falling back to the previous one ({nxt})")
            if quarantine:
                dest = cand.with_name(cand.name + ".refused")
                n = 1
                while dest.exists():
                    n += 1
                    dest = cand.with_name(f"{cand.name}.refused{n}")
                os.rename(cand, dest)
                log(f"resume: moved the refused checkpoint to {dest}")
            continue
        return cand
    if strict:
        raise CheckpointError(f"--resume {spec}: no valid checkpoint under {root}")
    return None
