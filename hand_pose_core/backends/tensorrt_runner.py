"""TensorRT backend (TensorRT 10 Python API): ONNX -> serialized engine (cached) -> execute_async_v3.

The engine cache key covers everything an engine is tied to: TensorRT version, GPU name,
compute capability, the ONNX bytes, precision and the batch profile. A TensorRT upgrade or a
different GPU therefore yields a new key and a rebuild instead of a crash or silent garbage (the
usual failure of peers that key engines on the model name only).

fp16: TensorRT >= 10.12 deprecates ``BuilderFlag.FP16`` in favour of strongly typed networks, so
for those versions the ONNX graph itself is cast to fp16 (:mod:`.onnx_fp16`) and the network is
created with ``NetworkDefinitionCreationFlag.STRONGLY_TYPED``; older TensorRT 10 builds the fp32
graph with ``BuilderFlag.FP16``. fp32 engines disable TF32 so results match PyTorch to ~1e-4.

Builder timing cache: one file per (TensorRT version, GPU, compute capability) under
``<cache>/tensorrt/timing-<key>.cache``, loaded into every build and saved after it, so later
builds (other precisions, batch profiles, models) skip most kernel timing. A timing cache
TensorRT refuses is discarded and rebuilt.

Cached engines sit next to a ``.sha256`` of their bytes written last: a missing or mismatched
digest, or bytes TensorRT cannot deserialize (another TensorRT build), mean "rebuild"
(:func:`read_cached_engine`).

Buffers are torch CUDA tensors (``set_tensor_address``), run on torch's current CUDA stream.
``tensorrt`` is imported only when this backend is used.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from .base import PRECISIONS, BackendUnavailableError, Runner, check_choice, check_device
from .onnx_export import INPUT_NAME, atomic_write_bytes, cache_root, cached_onnx, file_sha256

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "the TensorRT backend needs the TensorRT 10 Python package with its builder libraries and an "
    "NVIDIA GPU: `pip install tensorrt-cu12` (or tensorrt-cu13 to match your CUDA), or NVIDIA's "
    "TensorRT tarball/apt packages; the lean runtime (tensorrt-lean) cannot build engines. "
    "Otherwise use backend='onnxruntime' or backend='torch'"
)
STRONGLY_TYPED_MIN_VERSION = (10, 12)


def import_tensorrt() -> ModuleType:
    """Import ``tensorrt`` or raise BackendUnavailableError saying what to install."""
    try:
        import tensorrt as trt  # noqa: PLC0415 - lazy on purpose
    except (ImportError, OSError) as exc:  # OSError: bindings present, libnvinfer missing
        raise BackendUnavailableError(f"cannot import tensorrt ({exc}); {INSTALL_HINT}") from exc
    if not hasattr(trt, "Builder"):
        raise BackendUnavailableError(f"the installed tensorrt {getattr(trt, '__version__', '?')} has no Builder; {INSTALL_HINT}")
    return trt


def parse_version(version: str) -> tuple[int, ...]:
    """'10.12.0.36' -> (10, 12, 0, 36); non-numeric parts stop the parse."""
    parts = []
    for p in version.split("."):
        if not p.isdigit():
            break
        parts.append(int(p))
    return tuple(parts)


def uses_strongly_typed(trt_version: str) -> bool:
    """True when this TensorRT version should get strongly typed networks (>= 10.12)."""
    return parse_version(trt_version)[:2] >= STRONGLY_TYPED_MIN_VERSION


def engine_cache_key(
    trt_version: str,
    gpu_name: str,
    compute_capability: tuple[int, int],
    onnx_sha256: str,
    precision: str,
    max_batch: int,
    opt_batch: int = 1,
) -> str:
    """Hex key of everything a serialized engine depends on. Pure function (no GPU needed)."""
    check_choice("precision", precision, PRECISIONS)
    fields = (
        f"trt={trt_version}", f"gpu={gpu_name}", f"sm={compute_capability[0]}.{compute_capability[1]}",
        f"onnx={onnx_sha256}", f"precision={precision}", f"batch=1..{max_batch}@{opt_batch}",
        f"typed={uses_strongly_typed(trt_version)}",
    )
    return hashlib.sha256(";".join(fields).encode()).hexdigest()[:20]


def timing_cache_key(trt_version: str, gpu_name: str, compute_capability: tuple[int, int]) -> str:
    """Key of the builder timing cache: kernels' timings depend on the GPU and TensorRT only."""
    fields = f"trt={trt_version};gpu={gpu_name};sm={compute_capability[0]}.{compute_capability[1]}"
    return hashlib.sha256(fields.encode()).hexdigest()[:20]


def read_cached_engine(path: Path) -> bytes | None:
    """The bytes of a cached engine whose ``.sha256`` digest matches, else None (absent, half
    written or corrupt: the caller rebuilds). Pure file logic, no TensorRT needed."""
    path = Path(path)
    digest = path.with_suffix(path.suffix + ".sha256")
    if not (path.is_file() and digest.is_file()):
        return None
    data = path.read_bytes()
    if digest.read_text().strip() != hashlib.sha256(data).hexdigest():
        log.warning("cached TensorRT engine %s does not match its checksum; rebuilding", path)
        return None
    return data


def write_cached_engine(path: Path, data: bytes) -> None:
    """Write an engine, then its digest (atomic renames; the digest last marks completeness)."""
    path = Path(path)
    digest = path.with_suffix(path.suffix + ".sha256")
    digest.unlink(missing_ok=True)
    atomic_write_bytes(path, data)
    atomic_write_bytes(digest, (hashlib.sha256(data).hexdigest() + "\n").encode())


def gpu_identity(device: str = "cuda") -> tuple[str, tuple[int, int]]:
    """(name, compute capability) of the torch CUDA device."""
    index = torch.device(device).index or 0
    return torch.cuda.get_device_name(index), tuple(torch.cuda.get_device_capability(index))


def _torch_dtype(trt: ModuleType, dt: object) -> torch.dtype:
    table = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
             "int32": torch.int32, "int64": torch.int64, "int8": torch.int8, "bool": torch.bool,
             "uint8": torch.uint8}
    for name, tdt in table.items():
        if hasattr(trt, name) and dt == getattr(trt, name):
            return tdt
    raise TypeError(f"unsupported TensorRT tensor dtype {dt}")


def build_engine(
    onnx_path: str | os.PathLike,
    precision: str,
    max_batch: int,
    input_chw: tuple[int, int, int],
    opt_batch: int = 1,
    workspace_bytes: int = 1 << 30,
    timing_cache_path: str | os.PathLike | None = None,
) -> bytes:
    """Build a serialized TensorRT engine from an ONNX file with input ``'image'``.

    ``timing_cache_path``: builder timing cache loaded before and saved after the build.

    ``onnx_path`` must already be fp16-cast when the TensorRT version uses strongly typed
    networks and ``precision='fp16'`` (see :func:`TensorRTRunner`)."""
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    typed = uses_strongly_typed(trt.__version__)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    with open(onnx_path, "rb") as f:
        if not parser.parse(f.read()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    if precision == "fp16" and not typed:
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)
    profile = builder.create_optimization_profile()
    c, h, w = input_chw
    profile.set_shape(INPUT_NAME, (1, c, h, w), (min(opt_batch, max_batch), c, h, w), (max_batch, c, h, w))
    config.add_optimization_profile(profile)
    cache = None
    if timing_cache_path is not None:
        blob = Path(timing_cache_path).read_bytes() if Path(timing_cache_path).is_file() else b""
        cache = config.create_timing_cache(blob)
        if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
            log.warning("TensorRT refused the timing cache %s; starting a new one", timing_cache_path)
            cache = config.create_timing_cache(b"")
            config.set_timing_cache(cache, ignore_mismatch=True)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path} (see the TensorRT log above)")
    if cache is not None:
        atomic_write_bytes(Path(timing_cache_path), bytes(memoryview(config.get_timing_cache().serialize())))
    return bytes(serialized)


class TensorRTRunner(Runner):
    """Runs ``module`` through a cached TensorRT engine on a CUDA GPU.

    Args:
        max_batch: largest batch of the optimisation profile (engine accepts 1..max_batch).
        opt_batch: batch size the kernels are tuned for.
        workspace_bytes: builder workspace limit.
    """

    def __init__(
        self,
        module: torch.nn.Module,
        example_shape: tuple[int, int, int, int],
        device: str = "cuda",
        precision: str = "fp32",
        name: str = "model",
        cache_dir: str | os.PathLike | None = None,
        max_batch: int = 8,
        opt_batch: int = 1,
        workspace_bytes: int = 1 << 30,
        output_names: tuple[str, ...] | None = None,
    ) -> None:
        precision = check_choice("precision", precision, PRECISIONS)
        device = check_device(device)
        if device == "cpu":
            raise ValueError("the TensorRT backend runs on CUDA GPUs only; use device='cuda' or 'auto', "
                             "or backend='onnxruntime' for the CPU")
        if not isinstance(max_batch, int) or max_batch < 1:
            raise ValueError(f"max_batch must be an int >= 1, got {max_batch!r}")
        trt = import_tensorrt()
        if not torch.cuda.is_available():
            raise BackendUnavailableError("the TensorRT backend needs a CUDA GPU visible to torch; none found")
        self._trt = trt
        self.device = "cuda" if device == "auto" else device
        self.precision = precision
        self.max_batch = max_batch
        self.input_shape = (1, *tuple(int(d) for d in example_shape[1:]))
        root = cache_root(cache_dir)
        onnx_path = cached_onnx(module, self.input_shape, name=name, cache_dir=root, output_names=output_names)
        if precision == "fp16" and uses_strongly_typed(trt.__version__):
            from .onnxruntime_runner import fp16_onnx

            onnx_path = fp16_onnx(onnx_path)
        gpu_name, cc = gpu_identity(self.device)
        key = engine_cache_key(trt.__version__, gpu_name, cc, file_sha256(onnx_path), precision, max_batch, opt_batch)
        self.engine_path = root / "tensorrt" / f"{name}-{precision}-{key}.engine"
        self.timing_cache_path = root / "tensorrt" / f"timing-{timing_cache_key(trt.__version__, gpu_name, cc)}.cache"
        with torch.cuda.device(self.device):
            self._logger = trt.Logger(trt.Logger.WARNING)
            self._runtime = trt.Runtime(self._logger)
            self.engine = self._load_or_build(onnx_path, precision, max_batch, opt_batch, workspace_bytes)
            self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self._outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.output_names = tuple(self._outputs)
        self._buffers: dict[int, tuple[torch.Tensor, list[torch.Tensor]]] = {}
        self.name = f"{name}/tensorrt/{self.device}/{precision}"

    def _load_or_build(self, onnx_path: Path, precision: str, max_batch: int, opt_batch: int, workspace: int):
        data = read_cached_engine(self.engine_path)
        if data is not None:
            engine = self._runtime.deserialize_cuda_engine(data)
            if engine is not None:
                log.debug("reusing TensorRT engine %s", self.engine_path)
                return engine
            log.warning("TensorRT could not deserialize %s; rebuilding", self.engine_path)
        log.info("building TensorRT %s engine from %s (takes a while once)", precision, onnx_path)
        data = build_engine(onnx_path, precision, max_batch, self.input_shape[1:], opt_batch, workspace,
                            timing_cache_path=self.timing_cache_path)
        write_cached_engine(self.engine_path, data)
        engine = self._runtime.deserialize_cuda_engine(data)
        if engine is None:
            raise RuntimeError(f"TensorRT could not deserialize the engine it just built ({self.engine_path})")
        return engine

    def _buffers_for(self, batch: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if batch not in self._buffers:
            ctx, eng = self.context, self.engine
            ctx.set_input_shape(INPUT_NAME, (batch, *self.input_shape[1:]))
            inp = torch.empty((batch, *self.input_shape[1:]), device=self.device,
                              dtype=_torch_dtype(self._trt, eng.get_tensor_dtype(INPUT_NAME)))
            outs = [torch.empty(tuple(ctx.get_tensor_shape(n)), device=self.device,
                                dtype=_torch_dtype(self._trt, eng.get_tensor_dtype(n))) for n in self._outputs]
            self._buffers[batch] = (inp, outs)
        return self._buffers[batch]

    def run_torch(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Run on a CUDA tensor ``[B, 3, H, W]`` without host copies; returns CUDA tensors
        (views of internal buffers: clone them if you keep them past the next call)."""
        batch = int(x.shape[0])
        inp, outs = self._buffers_for(batch)
        self.context.set_input_shape(INPUT_NAME, tuple(inp.shape))
        inp.copy_(x, non_blocking=True)
        self.context.set_tensor_address(INPUT_NAME, inp.data_ptr())
        for name, buf in zip(self._outputs, outs):
            self.context.set_tensor_address(name, buf.data_ptr())
        stream = torch.cuda.current_stream(self.device)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError(f"{self.name}: TensorRT execute_async_v3 failed")
        return tuple(outs)

    def _run(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        with torch.cuda.device(self.device), torch.inference_mode():
            outs = self.run_torch(torch.from_numpy(x).to(self.device, non_blocking=False))
            return tuple(o.float().cpu().numpy() for o in outs)  # .cpu() syncs the stream

    def close(self) -> None:
        self._buffers.clear()
        self.context = None
        self.engine = None
