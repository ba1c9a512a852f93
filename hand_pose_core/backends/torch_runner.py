"""PyTorch backend: runs the ``nn.Module`` directly (CPU or CUDA, fp32, or fp16 on CUDA)."""
from __future__ import annotations

import copy

import numpy as np
import torch

from .base import FlatOutputs, Runner, check_choice, output_names_of, resolve_torch_device, PRECISIONS


class TorchRunner(Runner):
    """Runs a private eval-mode copy of ``module`` under ``torch.inference_mode``.

    fp16 converts the copy with ``.half()`` (the same numerics TensorRT's fp16 engine has, close
    enough for these conv nets); it needs CUDA because CPU half-precision kernels are slow or
    missing. The caller's module is never moved or modified.
    """

    def __init__(
        self,
        module: torch.nn.Module,
        example_shape: tuple[int, int, int, int],
        device: str = "cpu",
        precision: str = "fp32",
        name: str | None = None,
        output_names: tuple[str, ...] | None = None,
    ) -> None:
        precision = check_choice("precision", precision, PRECISIONS)
        self.device = resolve_torch_device(device)
        if precision == "fp16" and not self.device.startswith("cuda"):
            raise ValueError(
                "precision='fp16' is not supported on the CPU by the torch backend; "
                "use precision='fp32', or device='cuda' on a GPU machine"
            )
        self.precision = precision
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.input_shape = (1, *tuple(int(d) for d in example_shape[1:]))
        self.module = FlatOutputs(copy.deepcopy(module)).eval().to(device=self.device, dtype=self.dtype)
        if output_names is None:
            with torch.inference_mode():
                probe = self.module.module(torch.zeros(self.input_shape, device=self.device, dtype=self.dtype))
            output_names = output_names_of(probe)
        self.output_names = tuple(output_names)
        self.name = f"{name or type(module).__name__}/torch/{self.device}/{precision}"

    def _run(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        with torch.inference_mode():
            xt = torch.from_numpy(x).to(device=self.device, dtype=self.dtype, non_blocking=True)
            outs = self.module(xt)
            return tuple(o.float().cpu().numpy() for o in outs)

    def close(self) -> None:
        self.module = None  # type: ignore[assignment]
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()
