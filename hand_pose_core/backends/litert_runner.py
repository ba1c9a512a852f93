"""LiteRT backend: MediaPipe's original ``.tflite`` networks in TFLite's XNNPACK CPU runtime
(``ai-edge-litert``), the runtime MediaPipe itself uses.

Only for our two MediaPipe networks (the ``.tflite`` files the weight store keeps; see
:mod:`hand_pose_core.weights`): an arbitrary ``nn.Module`` has no ``.tflite``. Outputs are
reshaped and ordered like the torch modules' (PalmOutput / LandmarkOutput), so the estimator
cannot tell the backends apart; the torch port matches these kernels to ~1e-4
(tests/test_tflite_parity.py).

Why: on the 2-core AMD EPYC development VM (AVX2), XNNPACK ran the palm detector 1.3-2.4x faster
than ONNX Runtime runs the torch export (networks alone) and ~1.15x faster inside the pipeline;
the landmark network was not faster inside the pipeline, so ``backend='auto'`` uses LiteRT for
the palm detector only (docs/benchmarks.md). The models have a batch of 1 baked in (the palm graph's reshapes give
wrong boxes when the input is resized to a larger batch), so a batch runs item by item.
"""
from __future__ import annotations

import numpy as np

from .base import BackendUnavailableError, Runner, check_choice, check_device

TFLITE_NAMES = {("palm", "full"): "palm_detection_full", ("palm", "lite"): "palm_detection_lite",
                ("landmark", "full"): "hand_landmark_full", ("landmark", "lite"): "hand_landmark_lite"}
# our output (name, per-item shape) <- TFLite output tensor name
OUTPUTS = {
    "palm": (("box_regressors", (2016, 18), "Identity"), ("score_logits", (2016, 1), "Identity_1")),
    "landmark": (("landmarks", (21, 3), "Identity"), ("presence", (), "Identity_1"),
                 ("handedness", (), "Identity_2"), ("world_landmarks", (21, 3), "Identity_3")),
}
INSTALL_HINT = "install it with `pip install ai-edge-litert` or use backend='onnxruntime'"


def import_litert():
    try:
        from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415 - lazy on purpose
    except ImportError as exc:
        raise BackendUnavailableError(f"the litert backend needs the ai-edge-litert package ({exc}); {INSTALL_HINT}") from exc
    return Interpreter


class LiteRTRunner(Runner):
    """Runs MediaPipe's ``model`` ('palm' | 'landmark') ``variant`` network with XNNPACK.

    Args:
        tflite_path: the ``.tflite`` file (from :func:`hand_pose_core.weights.ensure_tflite`).
        threads: XNNPACK threads (default 2).
    """

    def __init__(self, model: str, tflite_path, input_shape: tuple[int, int, int, int], variant: str = "full",
                 device: str = "cpu", precision: str = "fp32", threads: int = 2) -> None:
        check_choice("model", model, tuple(OUTPUTS))
        if check_device(device) not in ("cpu", "auto"):
            raise ValueError("the litert backend runs on the CPU only; use device='cpu' (or backend='tensorrt'/'torch' for CUDA)")
        if precision != "fp32":
            raise ValueError(f"the litert backend runs the networks as MediaPipe ships them (fp32 compute); "
                             f"precision={precision!r} is not available, use 'fp32'")
        if not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be an int >= 1, got {threads!r}")
        self._Interpreter = import_litert()
        self.model, self.threads, self.path = model, threads, str(tflite_path)
        self.device, self.precision = "cpu", "fp32"
        self.input_shape = tuple(int(d) for d in input_shape)
        self.output_names = tuple(name for name, _, _ in OUTPUTS[model])
        self.name = f"{model}_{variant}/litert/cpu/fp32"
        try:
            self._it = self._Interpreter(model_path=self.path, num_threads=self.threads)
            self._it.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise RuntimeError(f"LiteRT could not load {self.path}: {exc}; re-fetch the weights "
                               "(`hand-pose weights --force`)") from exc
        inp = self._it.get_input_details()[0]
        if tuple(inp["shape"]) != (1, *self.input_shape[2:], self.input_shape[1]):
            raise RuntimeError(f"{self.path} takes {tuple(inp['shape'])}, not the expected NHWC "
                               f"{(1, *self.input_shape[2:], self.input_shape[1])}")
        self._index = inp["index"]
        by_name = {d["name"]: d["index"] for d in self._it.get_output_details()}
        self._outs = [(by_name[src], shape) for _, shape, src in OUTPUTS[model]]

    def _run(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        it, batch = self._it, x.shape[0]
        results = [np.empty((batch, *shape), np.float32) for _, shape in self._outs]
        nhwc = x.transpose(0, 2, 3, 1)
        for b in range(batch):
            it.set_tensor(self._index, np.ascontiguousarray(nhwc[b:b + 1]))
            it.invoke()
            for out, (i, shape) in zip(results, self._outs):
                out[b] = it.get_tensor(i).reshape(shape)
        return tuple(results)

    def close(self) -> None:
        self._it = None
