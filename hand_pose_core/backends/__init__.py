"""Inference backends for the palm detector and hand landmark networks.

>>> runner = create_runner("palm", backend="onnxruntime")      # doctest: +SKIP
>>> boxes, logits = runner(np.zeros((1, 3, 192, 192), np.float32))  # doctest: +SKIP

Backends: 'torch' (CPU/CUDA), 'onnxruntime' (CPU, CUDA with onnxruntime-gpu), 'tensorrt'
(CUDA; TensorRT 10 imported lazily); for the two MediaPipe networks also 'litert' (the original
.tflite files in XNNPACK, CPU) and 'auto' (litert on the CPU when installed, else onnxruntime;
torch on CUDA). All runners share the :class:`Runner` call convention.
"""
from .base import BACKENDS, DEVICES, MODELS, PRECISIONS, BackendUnavailableError, Runner
from .factory import INPUT_SHAPES, NETWORK_BACKENDS, create_runner, create_runner_for_module, resolve_auto_backend
from .onnx_export import cache_root, cached_onnx, export_onnx, module_key
from .onnx_fp16 import cast_model_to_fp16, cast_onnx_file_to_fp16
from .tensorrt_runner import engine_cache_key

__all__ = [
    "BACKENDS", "NETWORK_BACKENDS", "resolve_auto_backend", "DEVICES", "MODELS", "PRECISIONS", "INPUT_SHAPES", "BackendUnavailableError", "Runner",
    "create_runner", "create_runner_for_module", "export_onnx", "cached_onnx", "cache_root", "module_key",
    "cast_model_to_fp16", "cast_onnx_file_to_fp16", "engine_cache_key",
]
