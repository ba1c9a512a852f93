"""Shared pieces of the inference backends: the ``Runner`` interface, choice checks, device
resolution and output flattening.

A runner takes one float32 numpy batch ``[B, 3, H, W]`` (RGB in [0, 1]) and returns a tuple of
float32 numpy arrays in the module's output order (NamedTuple outputs flattened in field order).
The batch dimension is dynamic; H and W are fixed by the model.
"""
from __future__ import annotations

import abc
from typing import Any, Sequence

import numpy as np
import torch

BACKENDS = ("torch", "onnxruntime", "tensorrt")
DEVICES = ("cpu", "cuda", "auto")
PRECISIONS = ("fp32", "fp16")
MODELS = ("palm", "landmark")


class BackendUnavailableError(RuntimeError):
    """A backend or device was requested that this machine cannot provide (e.g. CUDA, TensorRT)."""


def check_choice(kind: str, value: Any, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise a ValueError listing them."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"unknown {kind} {value!r}; choose one of: {', '.join(choices)}")
    return value


def check_device(device: str) -> str:
    """Validate a device string: 'cpu', 'auto', 'cuda' or 'cuda:N'."""
    if isinstance(device, str) and device.startswith("cuda:") and device[5:].isdigit():
        return device
    return check_choice("device", device, DEVICES + ("cuda:N",))


def torch_cuda_available() -> bool:
    return torch.cuda.is_available()


def resolve_torch_device(device: str) -> str:
    """Map 'auto' to 'cuda' when torch sees a GPU (else 'cpu'); refuse 'cuda' without one."""
    device = check_device(device)
    if device == "auto":
        return "cuda" if torch_cuda_available() else "cpu"
    if device.startswith("cuda") and not torch_cuda_available():
        raise BackendUnavailableError(
            f"device={device!r} requested but torch.cuda.is_available() is False on this machine "
            "(no GPU, or a CPU-only torch build); use device='cpu' or device='auto'"
        )
    return device


def flatten_outputs(out: Any) -> tuple[torch.Tensor, ...]:
    """Flatten a module output (tensor, tuple, list or NamedTuple, nested) into a tuple of
    tensors; NamedTuples keep their field order."""
    if isinstance(out, torch.Tensor):
        return (out,)
    if isinstance(out, (tuple, list)):
        flat: list[torch.Tensor] = []
        for item in out:
            flat.extend(flatten_outputs(item))
        return tuple(flat)
    raise TypeError(f"module output of type {type(out).__name__} is not a tensor, tuple or NamedTuple")


def output_names_of(out: Any) -> tuple[str, ...]:
    """Names for the flattened outputs: NamedTuple field names (``parent.child`` when nested),
    otherwise ``output_<i>``."""
    names: list[str] = []

    def walk(o: Any, prefix: str) -> None:
        if isinstance(o, torch.Tensor):
            names.append(prefix or f"output_{len(names)}")
        elif isinstance(o, tuple) and hasattr(o, "_fields"):
            for field, item in zip(o._fields, o):
                walk(item, f"{prefix}.{field}" if prefix else field)
        elif isinstance(o, (tuple, list)):
            for item in o:
                walk(item, "")
        else:
            raise TypeError(f"module output of type {type(o).__name__} is not a tensor, tuple or NamedTuple")

    walk(out, "")
    if len(set(names)) != len(names):
        names = [f"output_{i}" for i in range(len(names))]
    return tuple(names)


class FlatOutputs(torch.nn.Module):
    """Wraps a module so that ``forward`` returns a flat tuple of tensors (for export/tracing)."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return flatten_outputs(self.module(x))


class Runner(abc.ABC):
    """One network on one backend.

    Attributes:
        name: human-readable id, e.g. ``'palm/onnxruntime/cpu/fp32'``.
        input_shape: ``(1, 3, H, W)``; the batch dimension is dynamic (1..max_batch).
        output_names: names of the returned arrays, in order.
        max_batch: largest accepted batch (None = unbounded).
    """

    name: str
    input_shape: tuple[int, int, int, int]
    output_names: tuple[str, ...]
    max_batch: int | None = None

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        """Run on ``x`` float32 ``[B, 3, H, W]``; returns float32 arrays, each with leading dim B."""
        return self._run(self._check_input(x))

    @abc.abstractmethod
    def _run(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        ...

    def close(self) -> None:
        """Release backend resources (sessions, engines, GPU memory)."""

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, input_shape={self.input_shape})"

    def _check_input(self, x: np.ndarray) -> np.ndarray:
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{self.name}: input must be a numpy array, got {type(x).__name__}")
        if not np.issubdtype(x.dtype, np.floating):
            raise ValueError(
                f"{self.name}: input dtype {x.dtype} is not floating point; pass float32 RGB scaled to [0, 1]"
            )
        expected = self.input_shape[1:]
        if x.ndim != 4 or tuple(x.shape[1:]) != tuple(expected) or x.shape[0] < 1:
            raise ValueError(
                f"{self.name}: input shape {tuple(x.shape)} does not match [B, {', '.join(map(str, expected))}] with B >= 1"
            )
        if self.max_batch is not None and x.shape[0] > self.max_batch:
            raise ValueError(f"{self.name}: batch {x.shape[0]} exceeds max_batch={self.max_batch}")
        x = np.ascontiguousarray(x, dtype=np.float32)
        if not np.isfinite(x).all():
            raise ValueError(f"{self.name}: input contains NaN or infinite values")
        return x
