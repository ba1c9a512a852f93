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

    ``cuda_graphs`` (CUDA only): the networks have fixed shapes per batch size, so each batch
    size is captured once into a CUDA graph (static input/output buffers) and replayed, which
    removes the per-layer kernel launch overhead that dominates small batches.
    """

    def __init__(
        self,
        module: torch.nn.Module,
        example_shape: tuple[int, int, int, int],
        device: str = "cpu",
        precision: str = "fp32",
        name: str | None = None,
        output_names: tuple[str, ...] | None = None,
        cuda_graphs: bool = False,
    ) -> None:
        precision = check_choice("precision", precision, PRECISIONS)
        self.device = resolve_torch_device(device)
        if cuda_graphs and not self.device.startswith("cuda"):
            raise ValueError("cuda_graphs=True needs a CUDA device (device='cuda'); CUDA graphs do not exist on the CPU")
        self.cuda_graphs = bool(cuda_graphs)
        if self.device.startswith("cuda") and precision == "fp32":
            # fp32 means fp32: TF32 convolutions/matmuls (torch's default for cuDNN) are ~1e-3
            # relative, enough to move landmarks (process-wide setting)
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        self._graphs: dict[int, tuple] = {}
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

    def _graph_for(self, batch: int):
        """Capture (once) the module for ``batch`` into a CUDA graph with static buffers."""
        if batch not in self._graphs:
            static_in = torch.zeros((batch, *self.input_shape[1:]), device=self.device, dtype=self.dtype)
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                for _ in range(3):  # warm-up outside the graph (cuDNN picks its kernels)
                    self.module(static_in)
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = self.module(static_in)
            self._graphs[batch] = (graph, static_in, static_out)
        return self._graphs[batch]

    def run_torch(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Run on a tensor ``[B, 3, H, W]`` (any device/float dtype; moved and cast here) and
        return tensors on the runner's device. With CUDA graphs the outputs are views of the
        graph's static buffers: use (or copy) them before the next call."""
        with torch.inference_mode():
            xt = x.to(device=self.device, dtype=self.dtype, non_blocking=True)
            if not self.cuda_graphs:
                return tuple(self.module(xt))
            graph, static_in, static_out = self._graph_for(int(xt.shape[0]))
            static_in.copy_(xt)
            graph.replay()
            return tuple(static_out)

    def _run(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        outs = self.run_torch(torch.from_numpy(x))
        return tuple(o.float().cpu().numpy() for o in outs)

    def close(self) -> None:
        self._graphs.clear()
        self.module = None  # type: ignore[assignment]
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()
