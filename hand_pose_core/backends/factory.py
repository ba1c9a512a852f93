"""Choose and build a runner: ``create_runner`` for our two MediaPipe networks,
``create_runner_for_module`` for any ``nn.Module`` taking one ``[B, 3, H, W]`` image tensor."""
from __future__ import annotations

import os
from typing import Any, Sequence

import torch

from .base import BACKENDS, MODELS, PRECISIONS, Runner, check_choice, check_device

VARIANTS = ("full", "lite")
INPUT_SHAPES = {"palm": (1, 3, 192, 192), "landmark": (1, 3, 224, 224)}
# backends for our two MediaPipe networks: the module backends plus LiteRT (the original .tflite
# files) and 'auto' (the fastest measured one available: see resolve_auto_backend)
NETWORK_BACKENDS = BACKENDS + ("litert", "auto")


def litert_available() -> bool:
    try:
        import ai_edge_litert.interpreter  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def resolve_auto_backend(device: str, model: str = "palm") -> str:
    """'auto' -> the backend measured fastest for ``model`` on ``device`` (docs/benchmarks.md):
    on the CPU 'litert' (MediaPipe's own .tflite in XNNPACK, when ai-edge-litert is installed)
    for both networks, else 'onnxruntime'; 'torch' for CUDA devices.

    On an idle 2-core VM (2026-12-07, two interleaved pipeline runs) LiteRT's landmark stage
    took 13.2-14.2 ms per single image against onnxruntime's 15.3-17.5 ms; under heavy load
    (2026-11-25) onnxruntime's had been ~8 % faster, which is why 'auto' used it until then."""
    device = check_device(device)
    if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        return "torch"
    return "litert" if litert_available() else "onnxruntime"


def create_runner_for_module(
    module: torch.nn.Module,
    example_shape: Sequence[int],
    backend: str = "torch",
    device: str = "cpu",
    precision: str = "fp32",
    cache_dir: str | os.PathLike | None = None,
    name: str | None = None,
    output_names: Sequence[str] | None = None,
    **options: Any,
) -> Runner:
    """Wrap ``module`` in a runner of ``backend``.

    Args:
        module: any nn.Module whose forward takes one float32 ``[B, C, H, W]`` tensor and returns a
            tensor, tuple or NamedTuple of tensors (each with leading dim B).
        example_shape: ``[B, C, H, W]``; C, H and W are fixed, the batch is dynamic.
        backend: 'torch' | 'onnxruntime' | 'tensorrt'.
        device: 'cpu' | 'cuda' | 'cuda:N' | 'auto' (cuda when the backend can use it, else cpu).
        precision: 'fp32' | 'fp16' (torch: CUDA only; onnxruntime: fp16-cast graph; tensorrt: engine).
        cache_dir: cache root for ONNX files and engines (default ``$HAND_POSE_CACHE_DIR`` or
            ``platformdirs.user_cache_dir('hand_pose_ros')``).
        name: short id used in file names and ``runner.name`` (default: the module's class name).
        output_names: names for the flattened outputs (default: NamedTuple fields or output_<i>).
        **options: backend-specific: ``cuda_graphs`` (torch on CUDA), ``threads`` (onnxruntime, default 2), ``spin`` (onnxruntime thread busy-wait, default off); ``max_batch``,
            ``opt_batch``, ``workspace_bytes`` (tensorrt).
    """
    backend = check_choice("backend", backend, BACKENDS)
    device = check_device(device)
    precision = check_choice("precision", precision, PRECISIONS)
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    shape = tuple(int(d) for d in example_shape)
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError(f"example_shape must be [B, C, H, W] with positive sizes, got {tuple(example_shape)}")
    name = name or type(module).__name__
    names = tuple(output_names) if output_names is not None else None
    allowed = {"torch": {"cuda_graphs"}, "onnxruntime": {"threads", "spin"}, "tensorrt": {"max_batch", "opt_batch", "workspace_bytes"}}
    unknown = set(options) - allowed[backend]
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)} for backend {backend!r}; "
                         f"it accepts: {', '.join(sorted(allowed[backend])) or 'none'}")
    if backend == "torch":
        from .torch_runner import TorchRunner

        return TorchRunner(module, shape, device=device, precision=precision, name=name, output_names=names,
                           **options)
    if backend == "onnxruntime":
        from .onnxruntime_runner import OnnxRuntimeRunner

        return OnnxRuntimeRunner(module, shape, device=device, precision=precision, name=name,
                                 cache_dir=cache_dir, output_names=names, **options)
    from .tensorrt_runner import TensorRTRunner

    return TensorRTRunner(module, shape, device=device, precision=precision, name=name,
                          cache_dir=cache_dir, output_names=names, **options)


def create_runner(
    model: str,
    backend: str = "torch",
    variant: str = "full",
    device: str = "cpu",
    precision: str = "fp32",
    cache_dir: str | os.PathLike | None = None,
    **options: Any,
) -> Runner:
    """Runner for one of our MediaPipe networks with weights from :mod:`hand_pose_core.weights`.

    model='palm': input ``[B, 3, 192, 192]``, outputs (box_regressors [B, 2016, 18],
    score_logits [B, 2016, 1]). model='landmark': input ``[B, 3, 224, 224]``, outputs
    (landmarks [B, 21, 3], presence [B], handedness [B], world_landmarks [B, 21, 3]).
    backend='litert' runs MediaPipe's original ``.tflite`` files with XNNPACK instead (CPU, fp32;
    only these two networks, so it is not offered by :func:`create_runner_for_module`).
    Weights come from :mod:`hand_pose_core.weights` (converted and cached on first use; see its
    docs for offline mode). ``cache_dir`` only moves the ONNX/engine caches.
    Other arguments as in :func:`create_runner_for_module`.
    """
    model = check_choice("model", model, MODELS)
    variant = check_choice("variant", variant, VARIANTS)
    backend = check_choice("backend", backend, NETWORK_BACKENDS)
    if backend == "auto":
        backend = resolve_auto_backend(device, model)
    check_device(device)
    check_choice("precision", precision, PRECISIONS)
    from hand_pose_core import weights

    if backend == "litert":
        from .litert_runner import TFLITE_NAMES, LiteRTRunner

        unknown = set(options) - {"threads"}
        if unknown:
            raise ValueError(f"unknown option(s) {sorted(unknown)} for backend 'litert'; it accepts: threads")
        name = TFLITE_NAMES[(model, variant)]
        path = weights.ensure_tflite((name,), progress=False)[name]
        return LiteRTRunner(model, path, INPUT_SHAPES[model], variant=variant, device=device,
                            precision=precision, **options)
    # output names are the NamedTuple fields (PalmOutput / LandmarkOutput)
    loader = weights.load_palm_detector if model == "palm" else weights.load_hand_landmark
    return create_runner_for_module(loader(variant), INPUT_SHAPES[model], backend=backend, device=device,
                                    precision=precision, cache_dir=cache_dir, name=f"{model}_{variant}",
                                    **options)
