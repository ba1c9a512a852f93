"""MediaPipe hand model weights: TFLite reading, conversion to our modules, safetensors cache."""
from .convert import CONVERTER_VERSION, ConversionError, convert_graph, convert_tflite
from .store import (
    MODEL_NAMES,
    WeightsUnavailableError,
    cache_dir,
    ensure_tflite,
    ensure_weights,
    load_hand_landmark,
    load_palm_detector,
    load_state_dict,
    weights_command,
)
from .tflite_reader import TFLiteFormatError, TFLiteGraph, read_tflite

__all__ = [
    "CONVERTER_VERSION", "ConversionError", "convert_graph", "convert_tflite", "MODEL_NAMES",
    "WeightsUnavailableError", "cache_dir", "ensure_tflite", "ensure_weights",
    "load_hand_landmark", "load_palm_detector", "load_state_dict", "weights_command",
    "TFLiteFormatError", "TFLiteGraph", "read_tflite",
]
