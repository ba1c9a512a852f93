"""Copy the constants of a MediaPipe TFLite graph into our PalmDetector / HandLandmark modules.

Matching walks both sides in execution order, per layer kind:

* module side: leaf layers with parameters in registration order (our modules register them in
  execution order): ``nn.Conv2d`` (depthwise when ``groups == in_channels > 1``), ``nn.PReLU``,
  ``nn.Linear``;
* graph side: CONV_2D, DEPTHWISE_CONV_2D, PRELU ops in graph order; FULLY_CONNECTED ops are matched
  by role, i.e. by the graph output they feed (directly or through LOGISTIC).

Every pair is checked for kind, shape (after layout conversion) and stride; every module parameter
must be assigned exactly once and every weight op of the graph used exactly once, otherwise a
:class:`ConversionError` names the mismatch.

Layouts: CONV_2D weights OHWI -> OIHW; DEPTHWISE_CONV_2D 1HWC -> C1HW; PRELU alpha [1,1,C] -> [C];
FULLY_CONNECTED [out, in] as is.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..models.hand_landmark import HandLandmark
from ..models.palm_detector import PalmDetector
from .tflite_reader import OpInfo, TFLiteGraph, read_tflite

__all__ = ["ConversionError", "CONVERTER_VERSION", "convert_graph", "convert_tflite",
           "build_model", "MODEL_KINDS"]

CONVERTER_VERSION = 1

# model name (the .tflite stem) -> (module class, variant)
MODEL_KINDS = {
    "palm_detection_full": (PalmDetector, "full"),
    "palm_detection_lite": (PalmDetector, "lite"),
    "hand_landmark_full": (HandLandmark, "full"),
    "hand_landmark_lite": (HandLandmark, "lite"),
}

# HandLandmark graph outputs in order -> Linear submodule name.
_LANDMARK_FC_ROLES = ("landmarks", "presence", "handedness", "world_landmarks")
_WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "PRELU")


class ConversionError(ValueError):
    """The TFLite graph does not fit the module architecture."""


def build_model(name: str) -> nn.Module:
    """Fresh (untrained) module for a model name such as 'palm_detection_full'."""
    if name not in MODEL_KINDS:
        raise ValueError(f"unknown model {name!r}; expected one of {sorted(MODEL_KINDS)}")
    cls, variant = MODEL_KINDS[name]
    return cls(variant)


def _module_kind(m: nn.Module) -> str | None:
    if isinstance(m, nn.Conv2d):
        depthwise = m.groups > 1 and m.groups == m.in_channels == m.out_channels
        return "DEPTHWISE_CONV_2D" if depthwise else "CONV_2D"
    if isinstance(m, nn.PReLU):
        return "PRELU"
    if isinstance(m, nn.Linear):
        return "FULLY_CONNECTED"
    if any(True for _ in m.parameters(recurse=False)):
        raise ConversionError(f"no TFLite mapping for layer type {type(m).__name__}")
    return None


def _op_tensors(graph: TFLiteGraph, op: OpInfo) -> dict[str, np.ndarray]:
    """Parameters of one weight op, converted to PyTorch layout."""
    w = graph.const(op.inputs[1]).astype(np.float32)
    if op.opcode == "CONV_2D":
        out = {"weight": w.transpose(0, 3, 1, 2)}
    elif op.opcode == "DEPTHWISE_CONV_2D":
        if op.options.get("depth_multiplier", 1) != 1:
            raise ConversionError(f"op {op.index}: depth multiplier != 1 is not supported")
        out = {"weight": w.transpose(3, 0, 1, 2)}
    elif op.opcode == "PRELU":
        if w.size != w.shape[-1]:
            raise ConversionError(f"op {op.index}: PRELU alpha {w.shape} is not per-channel")
        return {"weight": w.reshape(-1)}
    elif op.opcode == "FULLY_CONNECTED":
        out = {"weight": w}
    else:
        raise ConversionError(f"op {op.index}: {op.opcode} has no parameters")
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        out["bias"] = graph.const(op.inputs[2]).astype(np.float32)
    return out


def _check_geometry(op: OpInfo, m: nn.Module, name: str) -> None:
    if not isinstance(m, nn.Conv2d):
        return
    stride = (op.options.get("stride_h", 1), op.options.get("stride_w", 1))
    dilation = (op.options.get("dilation_h_factor", 1), op.options.get("dilation_w_factor", 1))
    if tuple(m.stride) != stride or tuple(m.dilation) != dilation:
        raise ConversionError(f"{name}: stride/dilation {tuple(m.stride)}/{tuple(m.dilation)} "
                              f"!= graph op {op.index} {stride}/{dilation}")


def _fc_roles(graph: TFLiteGraph, role_names: tuple[str, ...]) -> dict[str, OpInfo]:
    """FULLY_CONNECTED ops keyed by the role of the graph output they feed."""
    producer = {t: op for op in graph.operators for t in op.outputs}
    if len(graph.outputs) != len(role_names):
        raise ConversionError(f"graph has {len(graph.outputs)} outputs, expected "
                              f"{len(role_names)} ({', '.join(role_names)})")
    roles = {}
    for role, t in zip(role_names, graph.outputs):
        op = producer.get(t)
        while op is not None and op.opcode in ("LOGISTIC", "RESHAPE"):
            op = producer.get(op.inputs[0])
        if op is None or op.opcode != "FULLY_CONNECTED":
            raise ConversionError(f"graph output {role!r} is not produced by a FULLY_CONNECTED op")
        roles[role] = op
    return roles


def convert_graph(graph: TFLiteGraph, model: nn.Module) -> dict[str, torch.Tensor]:
    """State dict for ``model`` built from ``graph``; raises ConversionError on any mismatch."""
    queues: dict[str, list[OpInfo]] = {k: [] for k in _WEIGHT_OPS}
    for op in graph.operators:
        if op.opcode in queues:
            queues[op.opcode].append(op)
        elif op.opcode.startswith("CUSTOM") or op.opcode.startswith("UNKNOWN"):
            raise ConversionError(f"op {op.index}: unsupported operator {op.opcode}")
    fc_ops = [op for op in graph.operators if op.opcode == "FULLY_CONNECTED"]
    fc_roles = _fc_roles(graph, _LANDMARK_FC_ROLES) if fc_ops else {}
    if fc_ops and len(fc_roles) != len(fc_ops):
        raise ConversionError(f"graph has {len(fc_ops)} FULLY_CONNECTED ops, "
                              f"{len(fc_roles)} of them reach an output")

    params = dict(model.named_parameters())
    state: dict[str, torch.Tensor] = {}
    positions = {k: 0 for k in queues}
    for name, m in model.named_modules():
        kind = _module_kind(m)
        if kind is None:
            continue
        if kind == "FULLY_CONNECTED":
            role = name.rsplit(".", 1)[-1]
            if role not in fc_roles:
                raise ConversionError(f"{name}: no graph output with role {role!r}")
            op = fc_roles.pop(role)
        else:
            queue, pos = queues[kind], positions[kind]
            if pos >= len(queue):
                raise ConversionError(f"{name}: graph has only {len(queue)} {kind} ops")
            op = queue[pos]
            positions[kind] = pos + 1
        _check_geometry(op, m, name)
        for pname, value in _op_tensors(graph, op).items():
            key = f"{name}.{pname}" if name else pname
            if key not in params:
                raise ConversionError(f"{key}: graph op {op.index} has a {pname} the module lacks")
            if key in state:
                raise ConversionError(f"{key} assigned twice")
            if tuple(params[key].shape) != value.shape:
                raise ConversionError(f"{key}: module shape {tuple(params[key].shape)} != graph "
                                      f"op {op.index} ({op.opcode}) shape {value.shape}")
            state[key] = torch.from_numpy(np.ascontiguousarray(value))
    leftover = {k: len(q) - positions[k] for k, q in queues.items() if len(q) > positions[k]}
    if leftover or fc_roles:
        raise ConversionError(f"graph weight ops not used by the module: {leftover or ''} "
                              f"{sorted(fc_roles) if fc_roles else ''}".strip())
    missing = sorted(set(params) - set(state))
    if missing:
        raise ConversionError(f"module parameters without graph weights: {missing[:5]}")
    return state


def convert_tflite(path: str | Path, name: str | None = None) -> tuple[nn.Module,
                                                                       dict[str, torch.Tensor]]:
    """Read ``path`` and return (module with converted weights in eval mode, its state dict).

    ``name`` defaults to the file stem (e.g. 'hand_landmark_full').
    """
    path = Path(path)
    name = name or path.stem
    model = build_model(name)
    state = convert_graph(read_tflite(path), model)
    model.load_state_dict(state, strict=True)
    return model.eval(), state
