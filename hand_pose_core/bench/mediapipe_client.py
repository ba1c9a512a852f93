"""Client of :mod:`.mediapipe_solution` running in MediaPipe's own venv."""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

SERVER = Path(__file__).with_name("mediapipe_solution.py")


def find_mediapipe_python(explicit: str | None = None) -> str | None:
    """``explicit``, else ``$HAND_POSE_MEDIAPIPE_PYTHON``, else ``<repo>/.venv-bench/bin/python``
    (what scripts/benchmark.sh builds) when it exists; None otherwise."""
    for cand in (explicit, os.environ.get("HAND_POSE_MEDIAPIPE_PYTHON"),
                 str(Path(__file__).resolve().parents[2] / ".venv-bench" / "bin" / "python")):
        if cand and Path(cand).is_file():
            return cand
    return None


class MediaPipeSolution:
    """A persistent MediaPipe process; ``time(frames, static)`` -> wall ms per frame."""

    def __init__(self, python: str) -> None:
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "_ROS_WHEELS_BOOTSTRAP_COMPLETE", "LD_LIBRARY_PATH")}
        env["PYTHONWARNINGS"] = "ignore"
        self._tmp = tempfile.TemporaryDirectory(prefix="hand_pose_bench_mp_")
        self._proc = subprocess.Popen([python, str(SERVER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, text=True, env=env)
        hello = self._read()
        self.version = hello.get("version", "?")
        self._files: dict[int, str] = {}

    def _read(self) -> dict:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            if line.startswith("MPJSON"):
                return json.loads(line[len("MPJSON"):])
        raise RuntimeError(f"the MediaPipe process ended (exit code {self._proc.wait()}); is mediapipe installed in its venv?")

    def _ask(self, req: dict) -> dict:
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(req) + "\n")
        self._proc.stdin.flush()
        res = self._read()
        if "error" in res:
            raise RuntimeError(f"MediaPipe process: {res['error']}")
        return res

    def time(self, frames: list[np.ndarray], static: bool, warmup: int = 5, max_hands: int = 1) -> list[float]:
        key = id(frames)
        if key not in self._files:
            path = os.path.join(self._tmp.name, f"frames{len(self._files)}.npy")
            np.save(path, np.stack(frames))
            self._files[key] = path
        return self._ask({"cmd": "time", "frames": self._files[key], "static": static, "warmup": warmup,
                          "max_hands": max_hands})["wall_ms"]

    def load(self, key: str, frames: list[np.ndarray]) -> None:
        path = os.path.join(self._tmp.name, f"{key}.npy")
        np.save(path, np.stack(frames))
        self._ask({"cmd": "load", "key": key, "frames": path})

    def open(self, static: bool, max_hands: int = 1) -> int:
        """A fresh MediaPipe ``Hands`` in the server; returns its id for :meth:`step`."""
        return int(self._ask({"cmd": "open", "static": static, "max_hands": max_hands})["id"])

    def step(self, hands_id: int, key: str, index: int) -> tuple[float, float]:
        """Process frame ``index`` of the loaded set ``key``; (wall ms, process CPU ms) of the
        call alone."""
        res = self._ask({"cmd": "step", "id": hands_id, "key": key, "index": index})
        return float(res["ms"]), float(res["cpu_ms"])

    def joints(self, video: Path, static: bool, step: int = 1) -> dict:
        return self._ask({"cmd": "joints", "video": str(video), "static": static, "step": step})["joints"]

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                assert self._proc.stdin is not None
                self._proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self._proc.stdin.close()
                self._proc.wait(timeout=10)
            except Exception:
                self._proc.kill()
        self._tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
