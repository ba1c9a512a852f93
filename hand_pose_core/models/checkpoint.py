"""Trained-model files: weights as safetensors, with the model's name and constructor config in
the file's metadata, so that one file rebuilds the network (``load_model``) without unpickling
anything. The trainer writes these (beside its resumable training state); the estimator, the
node, ``training.evaluate`` and export read them.

File layout: a single ``.safetensors`` file whose string metadata holds
``format`` = ``hand_pose_ros.model/1``, ``model_name`` (a name of :func:`~.registry.create`),
``model_cfg`` (JSON of the constructor's keyword arguments) and ``extra`` (JSON, free-form: the
task, the training step, the crop size, metrics ...).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn

from ..paths import atomic_write_bytes

FORMAT = "hand_pose_ros.model/1"


class CheckpointError(ValueError):
    """A model file that is missing, corrupt, truncated or not ours (names the file)."""


def save_model(path, model: nn.Module, model_name: str, model_cfg: dict, extra: dict | None = None) -> Path:
    """Write ``model``'s weights and how to rebuild it to ``path`` atomically."""
    from safetensors.torch import save

    path = Path(path)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    meta = {
        "format": FORMAT,
        "model_name": model_name,
        "model_cfg": json.dumps(model_cfg, sort_keys=True),
        "extra": json.dumps(extra or {}, sort_keys=True),
    }
    atomic_write_bytes(path, save(state, metadata=meta))
    return path


def read_safetensors(path, what: str) -> tuple[dict, dict]:
    """Every tensor and the string metadata of a safetensors file; :class:`CheckpointError`
    names the file (as ``what``) when it is missing, truncated or corrupt."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # safetensors raises several types for damaged files
        raise CheckpointError(f"{what} {path} is corrupt or truncated ({type(err).__name__}: {err})") from err
    return tensors, meta


def read_model_file(path) -> tuple[dict, dict]:
    """Return ``(state_dict, meta)`` of a model file; raise :class:`CheckpointError` naming the
    file when it is missing, truncated, corrupt or of another format."""
    path = Path(path)
    state, meta = read_safetensors(path, "model file")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"model file {path} is not a hand_pose_ros model file "
                              f"(metadata format {meta.get('format')!r}, expected {FORMAT!r})")
    try:
        meta["model_cfg"] = json.loads(meta["model_cfg"])
        meta["extra"] = json.loads(meta.get("extra", "{}"))
    except (KeyError, json.JSONDecodeError) as err:
        raise CheckpointError(f"model file {path} has unreadable metadata: {err}") from err
    for k, v in state.items():
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise CheckpointError(f"model file {path}: tensor {k!r} holds NaN or inf")
    return state, meta


def load_model(path, map_location: str = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the network stored in ``path`` and load its weights (strictly)."""
    from .registry import create

    state, meta = read_model_file(path)
    model = create(meta["model_name"], **meta["model_cfg"])
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"model file {path} does not match model {meta['model_name']!r}: {err}") from err
    return model.to(map_location).eval(), meta


def load_weights_into(model: nn.Module, path, model_name: str, what: str = "init") -> dict:
    """Load the weights of the model file ``path`` into an already built ``model`` (strictly):
    how fine-tuning starts from a trained model. The file must hold ``model_name`` and fit the
    configured network; otherwise :class:`CheckpointError` names the file (``what`` says which
    setting pointed at it). Returns the file's metadata."""
    state, meta = read_model_file(path)
    if meta["model_name"] != model_name:
        raise CheckpointError(f"{what}: model file {path} holds a {meta['model_name']!r} model, not {model_name!r}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{what}: model file {path} does not fit the configured model "
                              f"(its model_cfg is {meta['model_cfg']}): {err}") from err
    return meta
