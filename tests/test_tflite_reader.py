"""TFLite flatbuffer reading and conversion checks on the real MediaPipe models."""
from __future__ import annotations

import numpy as np
import pytest

from hand_pose_core.models import HandLandmark, PalmDetector
from hand_pose_core.weights import (ConversionError, TFLiteFormatError, convert_graph, convert_tflite,
                                    read_tflite)


def test_reads_palm_graph(tflite_paths):
    g = read_tflite(tflite_paths["palm_detection_full"])
    counts = g.op_counts()
    assert "DEQUANTIZE" not in counts  # fp16 constants folded into float32 data
    assert counts["CONV_2D"] == 35 and counts["DEPTHWISE_CONV_2D"] == 28
    assert counts["PRELU"] == 31 and counts["RESIZE_BILINEAR"] == 2
    assert [g.tensors[i].shape for i in g.inputs] == [(1, 192, 192, 3)]
    assert sorted(g.tensors[i].shape for i in g.outputs) == [(1, 2016, 1), (1, 2016, 18)]
    first = g.operators[0]
    assert first.opcode == "CONV_2D"
    assert first.options["padding"] == "SAME" and first.options["stride_h"] == 2
    assert first.options["dilation_h_factor"] == 1
    w = g.const(first.inputs[1])
    assert w.dtype == np.float32 and w.shape == (32, 5, 5, 3) and np.isfinite(w).all()
    resize = next(op for op in g.operators if op.opcode == "RESIZE_BILINEAR")
    assert resize.options["half_pixel_centers"] is True
    with pytest.raises(ValueError, match="not a constant"):
        g.const(g.inputs[0])


def test_reads_landmark_graph(tflite_paths):
    g = read_tflite(tflite_paths["hand_landmark_full"].read_bytes())  # bytes work too
    assert g.op_counts()["FULLY_CONNECTED"] == 4
    assert [g.tensors[i].name for i in g.outputs] == ["Identity", "Identity_1", "Identity_2",
                                                     "Identity_3"]
    dw = next(op for op in g.operators if op.opcode == "DEPTHWISE_CONV_2D")
    assert dw.options["fused_activation_function"] == "RELU6"
    assert dw.options["depth_multiplier"] == 1


@pytest.mark.parametrize("cut", [0.5, 0.9, 0.999])
def test_truncated_file_is_rejected(tflite_paths, tmp_path, cut):
    data = tflite_paths["hand_landmark_lite"].read_bytes()
    bad = tmp_path / "hand_landmark_lite.tflite"
    bad.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(TFLiteFormatError, match="corrupt or truncated|past the end|expected"):
        convert_tflite(bad)


def test_non_tflite_and_missing_files_are_rejected(tmp_path):
    junk = tmp_path / "palm_detection_full.tflite"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(TFLiteFormatError, match="not a TFLite model"):
        read_tflite(junk)
    with pytest.raises(TFLiteFormatError):
        read_tflite(b"")
    with pytest.raises(FileNotFoundError):
        read_tflite(tmp_path / "missing.tflite")


def test_converter_rejects_wrong_architecture(tflite_paths):
    palm_lite = read_tflite(tflite_paths["palm_detection_lite"])
    with pytest.raises(ConversionError, match="stride|not used by the module|only"):
        convert_graph(palm_lite, PalmDetector("full"))  # lite graph has fewer blocks
    with pytest.raises(ConversionError):
        convert_graph(palm_lite, HandLandmark("lite"))
    landmark_full = read_tflite(tflite_paths["hand_landmark_full"])
    with pytest.raises(ConversionError, match="shape"):
        convert_graph(landmark_full, HandLandmark("lite"))


@pytest.mark.parametrize("name", ["palm_detection_full", "palm_detection_lite",
                                  "hand_landmark_full", "hand_landmark_lite"])
def test_every_parameter_assigned_once_with_layout(tflite_paths, name):
    model, state = convert_tflite(tflite_paths[name])
    assert set(state) == set(dict(model.named_parameters()))
    g = read_tflite(tflite_paths[name])
    # Layout: first conv OHWI -> OIHW; first depthwise 1HWC -> C1HW.
    conv = next(op for op in g.operators if op.opcode == "CONV_2D")
    dw = next(op for op in g.operators if op.opcode == "DEPTHWISE_CONV_2D")
    np.testing.assert_array_equal(state["stem.conv.weight"].numpy(),
                                  g.const(conv.inputs[1]).transpose(0, 3, 1, 2))
    first_dw = next(k for k, v in state.items() if k.endswith("weight") and v.dim() == 4
                    and v.shape[1] == 1 and v.shape[0] > 1)
    np.testing.assert_array_equal(state[first_dw].numpy(),
                                  g.const(dw.inputs[1]).transpose(3, 0, 1, 2))
