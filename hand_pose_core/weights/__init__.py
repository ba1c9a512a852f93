"""MediaPipe hand model weights: TFLite reading, conversion to our modules, safetensors cache."""
from .convert import CONVERTER_VERSION, ConversionError, convert_graph, convert_tflite
from .store import (
    KNOWN_SHA256,
    MODEL_NAMES,
    WeightsIntegrityError,
    WeightsUnavailableError,
    cache_dir,
    ensure_tflite,
    ensure_weights,
    load_hand_landmark,
    load_palm_detector,
    load_state_dict,
    verify_tflite,
    weights_command,
)
from .tflite_reader import TFLiteFormatError, TFLiteGraph, read_tflite

__all__ = [
    "CONVERTER_VERSION", "ConversionError", "convert_graph", "convert_tflite", "MODEL_NAMES",
    "WeightsUnavailableError", "WeightsIntegrityError", "KNOWN_SHA256", "verify_tflite", "cache_dir", "ensure_tflite", "ensure_weights",
    "load_hand_landmark", "load_palm_detector", "load_state_dict", "weights_command",
    "TFLiteFormatError", "TFLiteGraph", "read_tflite",
]
