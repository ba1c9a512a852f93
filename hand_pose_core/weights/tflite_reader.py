"""Read a TFLite flatbuffer into a small, plain graph description.

Only parsing happens here (through the generated bindings of the ``tflite`` package); no
TFLite runtime is needed. FLOAT16 constants that feed a DEQUANTIZE op are folded: the
DEQUANTIZE op is dropped and its output tensor carries the float32 data, so callers see
ordinary float32 weights.
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["TFLiteFormatError", "TensorInfo", "OpInfo", "TFLiteGraph", "read_tflite"]


class TFLiteFormatError(ValueError):
    """The bytes are not a readable TFLite flatbuffer (corrupt, truncated or another format)."""


# TFLite TensorType enum value -> numpy dtype (only the types these models can contain).
_NP_DTYPES = {
    0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 6: np.bool_,
    7: np.int16, 9: np.int8, 10: np.float64, 12: np.uint64, 15: np.uint32, 16: np.uint16,
}
_PADDING = {0: "SAME", 1: "VALID"}
_ACTIVATION = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}
_SKIP_GETTERS = ("Init", "GetRootAs")
_SKIP_SUFFIXES = ("AsNumpy", "Length", "IsNone", "BufferHasIdentifier")


@dataclass(frozen=True)
class TensorInfo:
    """One tensor: ``data`` is a numpy array for constants, None for activations."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    data: np.ndarray | None = None

    @property
    def is_constant(self) -> bool:
        return self.data is not None


@dataclass(frozen=True)
class OpInfo:
    """One operator: builtin opcode name, tensor indices and parsed builtin options.

    ``options`` uses snake_case keys (``padding`` 'SAME'/'VALID', ``stride_h``,
    ``fused_activation_function`` 'NONE'/'RELU'/'RELU6'..., ``dilation_h_factor``,
    ``depth_multiplier``, ``half_pixel_centers``, ``axis``, ...).
    """

    index: int
    opcode: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class TFLiteGraph:
    """The first subgraph of a TFLite model, with DEQUANTIZE-of-constant folded away."""

    tensors: list[TensorInfo]
    operators: list[OpInfo]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    def const(self, index: int) -> np.ndarray:
        """Constant data of tensor ``index``; ValueError when it is not a constant."""
        t = self.tensors[index]
        if t.data is None:
            raise ValueError(f"tensor {index} ({t.name!r}) is not a constant")
        return t.data

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for op in self.operators:
            counts[op.opcode] = counts.get(op.opcode, 0) + 1
        return counts

    def summary(self) -> str:
        """One line per operator (for inspecting an architecture)."""
        lines = []
        for op in self.operators:
            ins = ",".join(
                f"{'c' if self.tensors[i].is_constant else 't'}{list(self.tensors[i].shape)}"
                for i in op.inputs if i >= 0)
            outs = ",".join(str(list(self.tensors[i].shape)) for i in op.outputs)
            opts = {k: v for k, v in op.options.items()
                    if k in ("padding", "stride_h", "fused_activation_function",
                             "dilation_h_factor", "half_pixel_centers", "axis", "filter_height")}
            lines.append(f"{op.index:4d} {op.opcode:20s} {ins} -> {outs} {opts}")
        return "\n".join(lines)


def _snake(name: str) -> str:
    # "DilationHFactor" -> "dilation_h_factor", "StrideW" -> "stride_w"
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def _parse_options(op: Any) -> dict[str, Any]:
    """Builtin options of ``op`` as a dict, read generically from the generated class."""
    import tflite

    opt_type = op.BuiltinOptionsType()
    table = op.BuiltinOptions()
    if opt_type == 0 or table is None:
        return {}
    names = {v: k for k, v in vars(tflite.BuiltinOptions).items() if isinstance(v, int)}
    cls = getattr(tflite, names.get(opt_type, ""), None)
    if cls is None:
        return {}
    obj = cls()
    obj.Init(table.Bytes, table.Pos)
    out: dict[str, Any] = {}
    for attr in dir(cls):
        if (attr.startswith("_") or attr.startswith(_SKIP_GETTERS)
                or attr.endswith(_SKIP_SUFFIXES)):
            continue
        getter = getattr(obj, attr)
        try:
            value = getter()
        except TypeError:  # vector element accessors need an index
            numpy_getter = getattr(obj, attr + "AsNumpy", None)
            if numpy_getter is None:
                continue
            value = numpy_getter()
            value = [] if isinstance(value, int) else value.tolist()
        key = _snake(attr)
        if key == "padding":
            value = _PADDING.get(value, value)
        elif key == "fused_activation_function":
            value = _ACTIVATION.get(value, value)
        out[key] = value
    return out


def _opcode_name(model: Any, opcode_index: int) -> str:
    from tflite.utils import BUILTIN_OPCODE2NAME

    code = model.OperatorCodes(opcode_index)
    # Newer files store the builtin code in BuiltinCode; old ones only in the deprecated field.
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    if builtin == 32:  # CUSTOM
        custom = code.CustomCode()
        return "CUSTOM:" + (custom.decode() if custom else "?")
    return BUILTIN_OPCODE2NAME.get(builtin, f"UNKNOWN_{builtin}")


def _buffer_bytes(model: Any, buf: bytes, buffer_index: int) -> bytes | None:
    b = model.Buffers(buffer_index)
    if b is None:
        return None
    if b.Offset() > 1:  # data stored after the flatbuffer (models > 2 GB)
        start, size = int(b.Offset()), int(b.Size())
        if start + size > len(buf):
            raise TFLiteFormatError(f"buffer {buffer_index} points past the end of the file")
        return buf[start:start + size]
    if b.DataIsNone() or b.DataLength() == 0:
        return None
    return b.DataAsNumpy().tobytes()


def _read(buf: bytes) -> TFLiteGraph:
    import tflite

    model = tflite.Model.GetRootAs(buf, 0)
    if model.SubgraphsLength() < 1:
        raise TFLiteFormatError("the model has no subgraph")
    sub = model.Subgraphs(0)
    tensors: list[TensorInfo] = []
    for i in range(sub.TensorsLength()):
        t = sub.Tensors(i)
        shape = tuple(int(s) for s in (t.ShapeAsNumpy() if t.ShapeLength() else []))
        ttype = t.Type()
        if ttype not in _NP_DTYPES:
            raise TFLiteFormatError(f"tensor {i} has unsupported TFLite type {ttype}")
        dtype = np.dtype(_NP_DTYPES[ttype])
        raw = _buffer_bytes(model, buf, t.Buffer()) if t.Buffer() > 0 else None
        data = None
        if raw is not None:
            expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if len(raw) != expected:
                raise TFLiteFormatError(
                    f"tensor {i} ({t.Name().decode(errors='replace')!r}) holds {len(raw)} bytes, "
                    f"expected {expected} for shape {shape} {dtype}")
            data = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
        tensors.append(TensorInfo(i, t.Name().decode(errors="replace"), shape, dtype, data))

    operators: list[OpInfo] = []
    for j in range(sub.OperatorsLength()):
        op = sub.Operators(j)
        opcode = _opcode_name(model, op.OpcodeIndex())
        ins = tuple(int(v) for v in (op.InputsAsNumpy() if op.InputsLength() else []))
        outs = tuple(int(v) for v in (op.OutputsAsNumpy() if op.OutputsLength() else []))
        for idx in ins + outs:
            if idx >= len(tensors):
                raise TFLiteFormatError(f"operator {j} refers to missing tensor {idx}")
        if opcode == "DEQUANTIZE" and tensors[ins[0]].data is not None:
            src = tensors[ins[0]]
            out = tensors[outs[0]]
            tensors[outs[0]] = TensorInfo(out.index, out.name, out.shape, np.dtype(np.float32),
                                          src.data.astype(np.float32).reshape(out.shape))
            continue
        operators.append(OpInfo(len(operators), opcode, ins, outs, _parse_options(op)))
    inputs = tuple(int(v) for v in sub.InputsAsNumpy())
    outputs = tuple(int(v) for v in sub.OutputsAsNumpy())
    return TFLiteGraph(tensors, operators, inputs, outputs)


def read_tflite(source: str | Path | bytes) -> TFLiteGraph:
    """Parse a ``.tflite`` file (path or bytes) into a :class:`TFLiteGraph`.

    Raises:
        FileNotFoundError: the path does not exist.
        TFLiteFormatError: the bytes are not a complete TFLite flatbuffer.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        buf, label = bytes(source), "<bytes>"
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"TFLite file not found: {path}")
        buf, label = path.read_bytes(), str(path)
    if len(buf) < 16 or buf[4:8] != b"TFL3":
        raise TFLiteFormatError(
            f"{label} is not a TFLite model (missing the 'TFL3' flatbuffer identifier)")
    try:
        return _read(buf)
    except TFLiteFormatError as exc:
        raise TFLiteFormatError(f"{label}: {exc}") from None
    except (struct.error, IndexError, ValueError, TypeError, UnicodeDecodeError,
            OverflowError) as exc:
        raise TFLiteFormatError(
            f"{label} is a corrupt or truncated TFLite file ({type(exc).__name__}: {exc})"
        ) from None
