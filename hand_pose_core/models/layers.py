"""Small building blocks shared by the palm detector and the hand landmark network."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["tf_same_padding", "SameConv2d", "PReLU"]


def tf_same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """(before, after) padding of TensorFlow 'SAME' along one axis.

    TF pads ``max((ceil(size/stride) - 1) * stride + eff_kernel - size, 0)`` in total and puts the
    odd pixel at the end (bottom/right), unlike PyTorch's symmetric ``padding=``.
    """
    eff_kernel = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + eff_kernel - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow 'SAME' padding.

    With stride 1 and an odd kernel SAME padding is symmetric, so the built-in ``padding`` is used;
    otherwise the (possibly asymmetric) padding is applied with ``F.pad`` from the input size.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1, bias: bool = True) -> None:
        symmetric = stride == 1 and kernel_size % 2 == 1
        super().__init__(in_channels, out_channels, kernel_size, stride=stride,
                         padding=kernel_size // 2 if symmetric else 0, groups=groups, bias=bias)
        self._explicit_pad = not symmetric

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._explicit_pad:
            # int(): H and W are fixed per network, so an ONNX export gets constant pads (the
            # traced shape arithmetic was ~300 tiny nodes per graph, and non-constant pads keep
            # onnxruntime from fusing Pad into Conv: palm 22.1 -> 21.1 ms CPU time under load)
            top, bottom = tf_same_padding(int(x.shape[-2]), self.kernel_size[0], self.stride[0])
            left, right = tf_same_padding(int(x.shape[-1]), self.kernel_size[1], self.stride[1])
            if top or bottom or left or right:
                x = F.pad(x, (left, right, top, bottom))
        return super().forward(x)


class PReLU(nn.PReLU):
    """``nn.PReLU`` (same parameter, same values) computed as ``relu(x) + a * min(x, 0)``.

    Why: ONNX Runtime's CPU ``PRelu`` kernel is slow and cannot stay in its blocked (NCHWc) conv
    layout, so every PReLU costs two layout reorders. In this form the palm detector runs in
    ~8.3 ms instead of ~11.4 ms (2 threads, this project's 2-core CPU) with outputs equal to
    1e-4. (The shorter ``a * x + (1 - a) * relu(x)`` cancels catastrophically in fp16 for the
    slopes up to 12 that the palm detector has.) Expects NCHW (or NC) input.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.weight.view(1, -1, *([1] * (x.dim() - 2)))
        return torch.relu(x) + a * torch.clamp(x, max=0)
