"""ONNX Runtime backend: exports the module once (cached), then runs an ``InferenceSession``."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from .base import PRECISIONS, BackendUnavailableError, Runner, check_choice, check_device
from .onnx_export import INPUT_NAME, atomic_write_bytes, cached_onnx, file_sha256

log = logging.getLogger(__name__)


def ort_providers_for(device: str) -> list[str]:
    """Execution providers for ``device`` ('cpu', 'cuda[:N]', 'auto'); refuses CUDA when this
    onnxruntime build has no CUDAExecutionProvider."""
    import onnxruntime as ort

    device = check_device(device)
    available = ort.get_available_providers()
    has_cuda = "CUDAExecutionProvider" in available
    if device == "auto":
        device = "cuda" if has_cuda else "cpu"
    if device.startswith("cuda"):
        if not has_cuda:
            raise BackendUnavailableError(
                f"device={device!r} requested but onnxruntime has no CUDAExecutionProvider "
                f"(available: {', '.join(available)}); install onnxruntime-gpu or use device='cpu'"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def fp16_onnx(path: Path) -> Path:
    """Cached fp16-compute copy of the ONNX file at ``path`` (fp32 inputs/outputs)."""
    import onnx

    from .onnx_fp16 import CAST_VERSION, cast_model_to_fp16

    out = path.with_name(f"{path.stem}-fp16v{CAST_VERSION}.onnx")
    digest = out.with_suffix(".onnx.sha256")
    if out.is_file() and digest.is_file() and digest.read_text().strip() == file_sha256(out):
        return out
    digest.unlink(missing_ok=True)
    atomic_write_bytes(out, cast_model_to_fp16(onnx.load(str(path))).SerializeToString())
    atomic_write_bytes(digest, (file_sha256(out) + "\n").encode())
    return out


class OnnxRuntimeRunner(Runner):
    """Runs the cached ONNX export of ``module`` with ONNX Runtime.

    ``precision='fp16'`` runs the fp16-cast graph (see :mod:`.onnx_fp16`); on the CPU that is
    for checking the cast, not for speed. ``threads`` sets ``intra_op_num_threads``.
    ``spin``: let idle worker threads busy-wait for the next op (onnxruntime's default). Off by
    default: the tracker runs two sessions back to back, and one session's spinning threads
    starve the other's. Measured on the 2-core CPU (2 threads): palm 21.8 -> 11.5 ms,
    landmark 10.7 -> 6.0 ms with spinning off.
    """

    def __init__(
        self,
        module: torch.nn.Module,
        example_shape: tuple[int, int, int, int],
        device: str = "cpu",
        precision: str = "fp32",
        name: str = "model",
        cache_dir: str | os.PathLike | None = None,
        threads: int = 2,
        output_names: tuple[str, ...] | None = None,
        spin: bool = False,
    ) -> None:
        import onnxruntime as ort

        precision = check_choice("precision", precision, PRECISIONS)
        if not isinstance(threads, int) or threads < 0:
            raise ValueError(f"threads must be an int >= 0 (0 = onnxruntime default), got {threads!r}")
        providers = ort_providers_for(device)
        self.device = "cuda" if providers[0].startswith("CUDA") else "cpu"
        self.precision = precision
        self.input_shape = (1, *tuple(int(d) for d in example_shape[1:]))
        self.onnx_path = cached_onnx(module, self.input_shape, name=name, cache_dir=cache_dir,
                                     output_names=output_names)
        model_path = fp16_onnx(self.onnx_path) if precision == "fp16" else self.onnx_path

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        try:
            self.session = ort.InferenceSession(str(model_path), sess_options=opts, providers=providers)
        except Exception as exc:  # ORT raises its own exception types for unreadable graphs
            raise RuntimeError(
                f"onnxruntime could not load {model_path}: {exc}. Delete the file to force a re-export."
            ) from exc
        self.output_names = tuple(o.name for o in self.session.get_outputs())
        self.name = f"{name}/onnxruntime/{self.device}/{precision}"

    def _run(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        outs = self.session.run(list(self.output_names), {INPUT_NAME: x})
        return tuple(np.asarray(o, dtype=np.float32) for o in outs)

    def close(self) -> None:
        self.session = None  # type: ignore[assignment]
