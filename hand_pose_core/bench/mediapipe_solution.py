"""Times MediaPipe's Hands solution; the reference rows of ``hand-pose bench``.

MediaPipe is not a project dependency and cannot share the project's environment (mediapipe
0.10.14 needs protobuf < 5, onnx needs >= 6), so it lives in its own venv (``.venv-bench``,
made by ``scripts/benchmark.sh``; or ``--mediapipe-python``) and this file runs there as a
script. It imports nothing from the project.

It serves requests so that the caller can interleave MediaPipe with its own runs frame by
frame: one JSON object per stdin line, one ``MPJSON{...}`` line per answer.

* ``{"cmd": "load", "key": "640x480", "frames": "F.npy"}``: keep the RGB frames of F.npy
  (N, H, W, 3 uint8) under ``key``.
* ``{"cmd": "open", "static": true, "max_hands": 1}``: a fresh ``Hands`` (legacy
  ``mp.solutions.hands``, model_complexity 1); answers its ``id``.
* ``{"cmd": "step", "id": 0, "key": "640x480", "index": 3}``: ``Hands.process`` on that frame;
  answers the wall ms and the process CPU ms (all threads) of the call alone (the pipe
  traffic is not timed).
* ``{"cmd": "time", "frames": "F.npy", "static": true, "warmup": 5, "max_hands": 1}``:
  wall ms per frame over all frames of F.npy in one go (a fresh ``Hands``).
* ``{"cmd": "joints", "video": "V.mp4", "static": false, "step": 1}``: MediaPipe's 2D joints
  of the first hand per native frame (pixel-centre convention), keyed by frame index.
* ``{"cmd": "quit"}``.
"""
import json
import sys
import time

import numpy as np


def _hands(static: bool, max_hands: int):
    import mediapipe as mp

    return mp.solutions.hands.Hands(static_image_mode=static, max_num_hands=max_hands, model_complexity=1)


def time_frames(frames, static: bool, warmup: int, max_hands: int) -> list:
    with _hands(static, max_hands) as hands:
        for frame in frames[:warmup]:
            hands.process(frame)
        wall_ms = []
        for frame in frames:
            t0 = time.perf_counter()
            hands.process(frame)
            wall_ms.append((time.perf_counter() - t0) * 1e3)
    return wall_ms


def joints(video: str, static: bool, step: int) -> dict:
    import cv2

    capture = cv2.VideoCapture(video)
    native = []
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        native.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    out = {}
    with _hands(static, 1) as hands:
        for i in range(0, len(native), step):
            result = hands.process(native[i])
            if result.multi_hand_landmarks:
                h, w = native[i].shape[:2]
                landmarks = result.multi_hand_landmarks[0].landmark
                # MediaPipe's continuous normalised coordinates -> pixel-centre pixels
                out[str(i)] = [[p.x * w - 0.5, p.y * h - 0.5] for p in landmarks]
    return out


def serve(stdin=sys.stdin, stdout=sys.stdout) -> None:
    import mediapipe as mp

    print("MPJSON" + json.dumps({"ready": True, "version": mp.__version__}), file=stdout, flush=True)
    sets, hands = {}, []
    for line in stdin:
        req = json.loads(line)
        if req["cmd"] == "quit":
            break
        if req["cmd"] == "load":
            sets[req["key"]] = list(np.load(req["frames"]))
            res = {"frames": len(sets[req["key"]])}
        elif req["cmd"] == "open":
            hands.append(_hands(bool(req["static"]), int(req.get("max_hands", 1))))
            res = {"id": len(hands) - 1}
        elif req["cmd"] == "step":
            frame = sets[req["key"]][int(req["index"])]
            c0, t0 = time.process_time(), time.perf_counter()
            hands[int(req["id"])].process(frame)
            res = {"ms": (time.perf_counter() - t0) * 1e3, "cpu_ms": (time.process_time() - c0) * 1e3}
        elif req["cmd"] == "time":
            frames = list(np.load(req["frames"]))
            res = {"wall_ms": time_frames(frames, bool(req["static"]), int(req.get("warmup", 5)),
                                          int(req.get("max_hands", 1)))}
        elif req["cmd"] == "joints":
            res = {"joints": joints(req["video"], bool(req["static"]), int(req.get("step", 1)))}
        else:
            res = {"error": f"unknown cmd {req['cmd']!r}"}
        print("MPJSON" + json.dumps(res), file=stdout, flush=True)


if __name__ == "__main__":
    serve()
