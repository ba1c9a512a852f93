"""Cast an fp32 ONNX graph to fp16 compute with fp32 inputs and outputs.

TensorRT >= 10.12 deprecates the FP16 builder flag in favour of *strongly typed* networks, whose
layer precisions come from the ONNX tensor types. This pass makes those types fp16:

* float32 initializers and ``Constant`` tensors become float16, except tensors that an operator
  requires in float32 (``Resize`` scales, ``Upsample`` scales);
* ``Cast(to=FLOAT)`` and ``ConstantOfShape`` with a float32 value become float16;
* every float32 graph input gets a ``Cast`` to float16 after it and every float32 graph output a
  ``Cast`` back to float32, so callers keep feeding and reading float32.

Graphs with subgraphs (If/Loop/Scan) are refused: our networks have none.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# Bump when the pass changes: it is part of the cached fp16 file name.
CAST_VERSION = 1
# (op_type, input index) that must stay float32 whatever the data type
_FP32_ONLY_INPUTS = {("Resize", 2), ("Upsample", 1)}
_FP16_MAX = float(np.finfo(np.float16).max)


def _fp16_tensor(t: onnx.TensorProto) -> onnx.TensorProto:
    arr = numpy_helper.to_array(t)
    # clip so huge fp32 constants (e.g. -1e30 masks) become fp16 +-max, not inf
    out = numpy_helper.from_array(np.clip(arr, -_FP16_MAX, _FP16_MAX).astype(np.float16), t.name)
    return out


def cast_model_to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """Return a copy of ``model`` computing in float16 with float32 graph inputs/outputs.

    Raises ValueError for graphs with control-flow subgraphs.
    """
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    for node in graph.node:
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            raise ValueError(f"cast_model_to_fp16: node {node.name or node.op_type!r} has a subgraph; not supported")

    keep_fp32 = {node.input[i] for node in graph.node for (op, i) in _FP32_ONLY_INPUTS
                 if node.op_type == op and len(node.input) > i and node.input[i]}

    for i, init in enumerate(graph.initializer):
        if init.data_type == TensorProto.FLOAT and init.name not in keep_fp32:
            graph.initializer[i].CopyFrom(_fp16_tensor(init))

    for node in graph.node:
        if any(o in keep_fp32 for o in node.output):
            continue
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value" and attr.t.data_type == TensorProto.FLOAT:
                    attr.t.CopyFrom(_fp16_tensor(attr.t))
                elif attr.name in ("value_float", "value_floats"):
                    raise ValueError("cast_model_to_fp16: Constant with value_float(s) is not supported")
        elif node.op_type == "Cast":
            for attr in node.attribute:
                if attr.name == "to" and attr.i == TensorProto.FLOAT:
                    attr.i = TensorProto.FLOAT16
        elif node.op_type == "ConstantOfShape":
            for attr in node.attribute:
                if attr.name == "value" and attr.t.data_type == TensorProto.FLOAT:
                    attr.t.CopyFrom(_fp16_tensor(attr.t))

    # fp32 graph inputs -> Cast to fp16 -> consumers
    new_nodes = []
    for inp in graph.input:
        if inp.type.tensor_type.elem_type != TensorProto.FLOAT:
            continue
        cast_name = f"{inp.name}__fp16"
        for node in graph.node:
            for j, name in enumerate(node.input):
                if name == inp.name:
                    node.input[j] = cast_name
        new_nodes.append(helper.make_node("Cast", [inp.name], [cast_name], to=TensorProto.FLOAT16,
                                          name=f"{inp.name}__to_fp16"))
    # producers of fp32 graph outputs -> write an fp16 tensor, Cast back to the fp32 name
    tail_nodes = []
    for out in graph.output:
        if out.type.tensor_type.elem_type != TensorProto.FLOAT:
            continue
        fp16_name = f"{out.name}__fp16"
        for node in graph.node:
            for j, name in enumerate(node.output):
                if name == out.name:
                    node.output[j] = fp16_name
            for j, name in enumerate(node.input):
                if name == out.name:
                    node.input[j] = fp16_name
        tail_nodes.append(helper.make_node("Cast", [fp16_name], [out.name], to=TensorProto.FLOAT,
                                           name=f"{out.name}__to_fp32"))
    nodes = new_nodes + list(graph.node) + tail_nodes
    del graph.node[:]
    graph.node.extend(nodes)

    # intermediate types changed: drop stale value_info and re-infer
    del graph.value_info[:]
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    onnx.checker.check_model(model)
    return model


def cast_onnx_file_to_fp16(src: str, dst: str) -> None:
    """File version of :func:`cast_model_to_fp16` (``dst`` written atomically)."""
    from pathlib import Path

    from .onnx_export import atomic_write_bytes

    model = cast_model_to_fp16(onnx.load(src))
    atomic_write_bytes(Path(dst), model.SerializeToString())
