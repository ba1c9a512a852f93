"""Bookkeeping for ``/diagnostics``: rates, latency, dropped frames, bad-input counters.

Windows are bounded (deque with maxlen), so the bookkeeping itself cannot grow memory.
"""
from __future__ import annotations

import threading
import time
from collections import Counter, deque

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

_WINDOW = 512


class NodeStats:
    """Thread-safe counters written by the callback/worker and read by the 1 Hz diagnostics timer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.bad_input: Counter[str] = Counter()
        self.frames_processed = 0
        self.frames_with_hands = 0
        self.estimator_errors = 0
        self.stamps_off_clock = 0  # frames whose latency was not counted (stamp far from our clock)
        self._done_times: deque[float] = deque(maxlen=_WINDOW)  # monotonic s of each output
        self._latency_ms: deque[float] = deque(maxlen=_WINDOW)  # header stamp -> publish
        self._estimator_ms: deque[float] = deque(maxlen=_WINDOW)
        self._overhead_ms: deque[float] = deque(maxlen=_WINDOW)  # node time per frame minus estimator
        self.last_output_monotonic: float | None = None

    def count_bad(self, kind: str) -> int:
        with self._lock:
            self.bad_input[kind] += 1
            return self.bad_input[kind]

    def count_stamp_off_clock(self) -> int:
        with self._lock:
            self.stamps_off_clock += 1
            return self.stamps_off_clock

    def record_frame(self, n_hands: int, latency_ms: float | None, estimator_ms: float, overhead_ms: float) -> None:
        """One processed frame; ``latency_ms`` None: not a valid latency sample (not recorded)."""
        now = time.monotonic()
        with self._lock:
            self.frames_processed += 1
            self.frames_with_hands += int(n_hands > 0)
            self._done_times.append(now)
            if latency_ms is not None:
                self._latency_ms.append(latency_ms)
            self._estimator_ms.append(estimator_ms)
            self._overhead_ms.append(overhead_ms)
            self.last_output_monotonic = now

    def snapshot(self, window_s: float = 5.0) -> dict:
        """Summary over the last ``window_s`` seconds (rates) and the last frames (timings)."""
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._done_times if now - t <= window_s]
            lat = np.array(self._latency_ms, dtype=np.float64)
            est = np.array(self._estimator_ms, dtype=np.float64)
            ovh = np.array(self._overhead_ms, dtype=np.float64)
            out = {
                "output_rate_hz": (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and recent[-1] > recent[0] else 0.0,
                "frames_processed": self.frames_processed,
                "frames_with_hands": self.frames_with_hands,
                "estimator_errors": self.estimator_errors,
                "stamps_off_clock": self.stamps_off_clock,
                "bad_input": dict(self.bad_input),
                "seconds_since_output": None if self.last_output_monotonic is None else now - self.last_output_monotonic,
            }
        for name, arr in (("latency_ms", lat), ("estimator_ms", est), ("node_overhead_ms", ovh)):
            tail = arr[-64:]
            out[name + "_p50"] = float(np.median(tail)) if tail.size else float("nan")
            out[name + "_max"] = float(tail.max()) if tail.size else float("nan")
        return out


def diagnostic_array(stamp, node_name: str, hardware_id: str, snap: dict, extra: dict) -> DiagnosticArray:
    """One DiagnosticStatus named ``<node>: pipeline``; WARN on bad input, estimator errors or
    when no output came for 2 s while frames are arriving."""
    values = {**extra, **{k: v for k, v in snap.items() if k != "bad_input"}}
    for kind, n in sorted(snap["bad_input"].items()):
        values[f"bad_input.{kind}"] = n
    status = DiagnosticStatus()
    status.name = f"{node_name}: pipeline"
    status.hardware_id = hardware_id
    problems = []
    if snap["bad_input"]:
        problems.append("bad input frames: " + ", ".join(f"{k}={v}" for k, v in sorted(snap["bad_input"].items())))
    if snap["estimator_errors"]:
        problems.append(f"estimator errors: {snap['estimator_errors']}")
    if extra.get("camera_info") == "missing (default K)":
        problems.append("no camera_info: default intrinsics, depth is a guess")
    elif str(extra.get("camera_info", "ok")).endswith("(default K)") and extra.get("camera_info") != "disabled (default K)":
        problems.append(f"camera_info {extra['camera_info']}: depth is a guess")
    if snap.get("stamps_off_clock"):
        problems.append(f"{snap['stamps_off_clock']} image stamps far from this node's clock (not in latency)")
    status.level = DiagnosticStatus.WARN if problems else DiagnosticStatus.OK
    status.message = "; ".join(problems) if problems else "ok"
    status.values = [KeyValue(key=str(k), value=_fmt(v)) for k, v in values.items()]
    msg = DiagnosticArray()
    msg.header.stamp = stamp
    msg.status = [status]
    return msg


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)
