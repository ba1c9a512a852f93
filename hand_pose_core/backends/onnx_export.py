"""ONNX export of our ``nn.Module``s and the on-disk ONNX cache.

Exporters: ``exporter='dynamo'`` (default; ``torch.onnx.export(..., dynamo=True)`` through
``torch.export`` and ``onnxscript``, opset >= 18) or ``'legacy'`` (the TorchScript tracer,
deprecated). The dynamo graphs were kept because onnxruntime gives outputs equal to the legacy
graphs' (max |difference| 0.0 on the palm and landmark networks, tests/test_onnx_exporters.py
checks 1e-4); the dynamo export is slower (palm ~68 s, landmark ~14 s once on the loaded 2-core
VM, legacy ~1 s), which the cache pays once per model. Without onnxscript, or if torch.export
fails on a module, the legacy exporter is used with a warning.

Cache layout: ``<cache root>/onnx/<name>-<key>.onnx`` plus ``<same>.sha256`` (hash of the file
bytes, written last). The key hashes the module's state_dict, its structure (``repr``) and class
source, the export settings and the torch version, so changed weights or code give a new file.
Files are written to a temporary name and renamed (atomic on POSIX), so a crash never leaves a
half-written model under the final name; a file whose bytes no longer match its ``.sha256`` is
treated as corrupt and re-exported.
"""
from __future__ import annotations

import hashlib
import inspect
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Sequence

import torch

from ..paths import atomic_write_bytes, cache_dir, file_sha256, publish_file
from .base import FlatOutputs, output_names_of

log = logging.getLogger(__name__)

DEFAULT_OPSET = 17
INPUT_NAME = "image"
BATCH_DIM = "batch"
# Bump when the export code changes in a way that changes the written graph.
_EXPORT_FORMAT = 2
EXPORTERS = ("dynamo", "legacy")
DEFAULT_EXPORTER = "dynamo"
DYNAMO_MIN_OPSET = 18


# The shared cache root (kept under this name for the backends' callers).
cache_root = cache_dir


def _hash_state_dict(h: "hashlib._Hash", module: torch.nn.Module) -> None:
    for key, value in sorted(module.state_dict().items()):
        h.update(key.encode())
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            # view as bytes: works for every dtype numpy lacks (bfloat16)
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        else:
            h.update(repr(value).encode())


def _hash_code(h: "hashlib._Hash", module: torch.nn.Module) -> None:
    h.update(repr(module).encode())
    for cls in sorted({type(m) for m in module.modules()}, key=lambda c: f"{c.__module__}.{c.__qualname__}"):
        h.update(f"{cls.__module__}.{cls.__qualname__}".encode())
        if cls.__module__.startswith("torch."):
            continue  # covered by the torch version
        try:
            h.update(inspect.getsource(cls).encode())
        except (OSError, TypeError):
            pass  # classes defined in a REPL have no source; repr + weights still key them


def module_key(module: torch.nn.Module, example_shape: Sequence[int], opset: int = DEFAULT_OPSET,
               exporter: str = DEFAULT_EXPORTER) -> str:
    """Hex key of (weights, structure, class source, export settings, torch version)."""
    h = hashlib.sha256()
    h.update(f"fmt={_EXPORT_FORMAT};torch={torch.__version__};opset={opset};exporter={exporter};"
             f"chw={tuple(int(d) for d in example_shape[1:])}".encode())
    _hash_state_dict(h, module)
    _hash_code(h, module)
    return h.hexdigest()[:20]


def export_onnx(
    module: torch.nn.Module,
    path: str | os.PathLike,
    example_shape: Sequence[int],
    opset: int = DEFAULT_OPSET,
    output_names: Sequence[str] | None = None,
    exporter: str = DEFAULT_EXPORTER,
) -> tuple[str, ...]:
    """Export ``module`` (any nn.Module taking one ``[B, 3, H, W]`` tensor) to ONNX at ``path``.

    The graph has one input ``'image'`` float32 ``[batch, 3, H, W]`` with a dynamic batch
    dimension, and one output per flattened module output (NamedTuple field names by default),
    each with a dynamic leading ``batch`` dimension. The file is checked with
    ``onnx.checker`` and written atomically. Returns the output names.
    """
    import onnx

    if opset < 17:
        raise ValueError(f"opset {opset} is too old; use opset >= 17")
    if exporter not in EXPORTERS:
        raise ValueError(f"unknown exporter {exporter!r}; choose one of: {', '.join(EXPORTERS)}")
    if len(example_shape) != 4:
        raise ValueError(f"example_shape must be [B, C, H, W], got {tuple(example_shape)}")
    path = Path(path)
    # export a private CPU fp32 copy so the caller's module is not moved or switched to eval
    was_training = module.training
    wrapped = FlatOutputs(module).eval()
    params = list(wrapped.parameters()) + list(wrapped.buffers())
    if params and (params[0].device.type != "cpu" or params[0].dtype != torch.float32):
        import copy

        wrapped = copy.deepcopy(wrapped).to("cpu", torch.float32)
    # own generator: exporting must not advance the caller's global torch RNG
    example = torch.rand(tuple(int(d) for d in example_shape), dtype=torch.float32,
                         generator=torch.Generator().manual_seed(0))
    try:
        if output_names is None:
            with torch.inference_mode():
                output_names = output_names_of(wrapped.module(example))
        output_names = tuple(output_names)
        dynamic_axes = {INPUT_NAME: {0: BATCH_DIM}, **{n: {0: BATCH_DIM} for n in output_names}}
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            done = False
            if exporter == "dynamo":
                done = _export_dynamo(wrapped, example, tmp, max(opset, DYNAMO_MIN_OPSET), output_names)
            if not done:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # legacy-exporter deprecation + tracer warnings
                    torch.onnx.export(
                        wrapped, (example,), tmp, dynamo=False, opset_version=opset,
                        input_names=[INPUT_NAME], output_names=list(output_names),
                        dynamic_axes=dynamic_axes, do_constant_folding=True,
                    )
            onnx.checker.check_model(tmp, full_check=True)
            publish_file(tmp, path)  # not 0600 like mkstemp: the cache's file mode
        finally:
            Path(tmp).unlink(missing_ok=True)
    finally:
        module.train(was_training)
    return output_names


def _export_dynamo(wrapped: torch.nn.Module, example: torch.Tensor, path: str, opset: int,
                   output_names: Sequence[str]) -> bool:
    """torch.export-based ONNX export with a dynamic batch; False (after a warning) when
    onnxscript is missing or the module does not export, so the caller falls back."""
    try:
        import onnxscript  # noqa: F401, PLC0415
    except ImportError:
        log.warning("onnxscript is not installed: using the legacy ONNX exporter (pip install onnxscript)")
        return False
    batch = torch.export.Dim("batch", min=1, max=4096)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapped, (example,), path, dynamo=True, opset_version=opset,
                              input_names=[INPUT_NAME], output_names=list(output_names),
                              dynamic_shapes=({0: batch},), external_data=False, optimize=True,
                              verbose=False, report=False)
    except Exception as exc:  # torch.export can refuse data-dependent control flow
        log.warning("dynamo ONNX export failed (%s: %s); using the legacy exporter",
                    type(exc).__name__, str(exc).splitlines()[0][:200])
        return False
    return True


def cached_onnx(
    module: torch.nn.Module,
    example_shape: Sequence[int],
    name: str = "model",
    cache_dir: str | os.PathLike | None = None,
    opset: int = DEFAULT_OPSET,
    output_names: Sequence[str] | None = None,
    exporter: str = DEFAULT_EXPORTER,
) -> Path:
    """Return the path of the cached ONNX export of ``module``, exporting it when absent,
    stale (other weights/code/torch give another key) or corrupt (bytes differ from the
    ``.sha256`` written with it)."""
    if not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"cache name {name!r} must be alphanumeric (with - or _)")
    folder = cache_root(cache_dir) / "onnx"
    path = folder / f"{name}-{module_key(module, example_shape, opset, exporter)}.onnx"
    digest_path = path.with_suffix(".onnx.sha256")
    if path.is_file() and digest_path.is_file():
        if digest_path.read_text().strip() == file_sha256(path):
            log.debug("reusing cached ONNX %s", path)
            return path
        log.warning("cached ONNX %s does not match its checksum (corrupt); re-exporting", path)
    digest_path.unlink(missing_ok=True)  # the digest is written last: no digest = not complete
    export_onnx(module, path, example_shape, opset=opset, output_names=output_names, exporter=exporter)
    atomic_write_bytes(digest_path, (file_sha256(path) + "\n").encode())
    log.info("exported %s to %s", name, path)
    return path


def onnx_sha256(path: str | os.PathLike) -> str:
    """sha256 of an ONNX file's bytes (keys the TensorRT engine cache)."""
    return file_sha256(path)


__all__ = ["EXPORTERS", "DEFAULT_EXPORTER", "export_onnx", "cached_onnx", "cache_root", "module_key", "atomic_write_bytes", "onnx_sha256", "INPUT_NAME"]
