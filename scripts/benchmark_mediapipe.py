"""Time the MediaPipe Hands solution; the reference column of scripts/benchmark_tracker.py.

MediaPipe is not a project dependency and cannot share our venv (mediapipe 0.10.14 needs
protobuf < 5, onnx needs >= 6), so scripts/benchmark.sh gives it its own (.venv-bench) and
benchmark_tracker.py runs this file there:

    python scripts/benchmark_mediapipe.py FRAMES.npy WARMUP MAX_HANDS [VIDEO STEP]

FRAMES.npy holds the RGB frames (N,H,W,3 uint8) the caller timed its own pipeline on, so both
see identical pixels. With VIDEO, MediaPipe's 2D joints on the native-resolution video are
returned too (pixel-centre convention). Prints one line: MPJSON{...}.
"""
import json
import sys
import time

import numpy as np


def time_mediapipe(frames, warmup: int, max_hands: int, video: str | None = None, step: int = 1) -> dict:
    import mediapipe as mp

    out = {"version": mp.__version__}
    for static in (True, False):
        with mp.solutions.hands.Hands(static_image_mode=static, max_num_hands=max_hands,
                                      model_complexity=1) as hands:
            for frame in frames[:warmup]:
                hands.process(frame)
            wall_ms = []
            for frame in frames:
                t0 = time.perf_counter()
                hands.process(frame)
                wall_ms.append((time.perf_counter() - t0) * 1e3)
        out["static" if static else "tracking"] = wall_ms
    if video:
        import cv2

        capture = cv2.VideoCapture(video)
        native = []
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            native.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        for static in (True, False):
            joints = {}
            with mp.solutions.hands.Hands(static_image_mode=static, max_num_hands=1,
                                          model_complexity=1) as hands:
                for i in range(0, len(native), step):
                    result = hands.process(native[i])
                    if result.multi_hand_landmarks:
                        h, w = native[i].shape[:2]
                        landmarks = result.multi_hand_landmarks[0].landmark
                        # MediaPipe's continuous normalised coordinates -> pixel-centre pixels
                        joints[str(i)] = [[p.x * w - 0.5, p.y * h - 0.5] for p in landmarks]
            out["joints_static" if static else "joints_tracking"] = joints
    return out


if __name__ == "__main__":
    frames = np.load(sys.argv[1])
    video = sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] else None
    step = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    result = time_mediapipe(list(frames), int(sys.argv[2]), int(sys.argv[3]), video, step)
    print("MPJSON" + json.dumps(result))
