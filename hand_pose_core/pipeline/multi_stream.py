"""Several camera streams through one set of networks: the crops of all streams' latest frames go
through each network as one batch.

Every stream keeps its own tracker state (its own :class:`HandPoseEstimator` view sharing the
networks and the MANO fitter of one built estimator). :meth:`MultiStreamEstimator.__call__` runs
the streams' frames side by side in threads, in lockstep: whenever every stream still working
waits for a network, each network runs once on the concatenation of what was asked of it (the
palm detector on all images that need a detection, the landmark network on all crops of all
streams, the refinement pass likewise) and the results are split back. So N cameras cost one
palm call and one landmark call per round instead of N, and no stream waits on a timer.
"""
from __future__ import annotations

import copy
import threading

import numpy as np

from ..types import Hand


class _LockstepBatcher:
    """Runs each wrapped runner once per round on the concatenated requests of all participants."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._running = 0
        self._blocked = 0
        self._queues: dict[int, tuple[object, list]] = {}
        self.calls: dict[str, int] = {}  # network calls made, per runner name (for tests/diagnostics)
        self.batch_sizes: list[int] = []

    def wrap(self, runner) -> "_BatchedRunner":
        return _BatchedRunner(self, runner)

    def submit(self, runner, x, on_device: bool = False):
        """``x``: a numpy batch (``runner(x)``), or with ``on_device`` a torch batch for
        ``runner.run_torch`` (GPU pre-processing); each kind is batched separately."""
        with self._cond:
            entry = {"x": x, "out": None, "err": None, "done": False}
            self._queues.setdefault((id(runner), on_device), (runner, on_device, []))[2].append(entry)
            self._blocked += 1
            self._flush_if_all_blocked()
            while not entry["done"]:
                self._cond.wait()
        if entry["err"] is not None:
            raise entry["err"]
        return entry["out"]

    def participant_done(self) -> None:
        with self._cond:
            self._running -= 1
            self._flush_if_all_blocked()

    def start(self, n: int) -> None:
        with self._cond:
            self._running, self._blocked = n, 0

    def _flush_if_all_blocked(self) -> None:
        if self._blocked == 0 or self._blocked < self._running:
            return
        queues, self._queues, self._blocked = self._queues, {}, 0
        for runner, on_device, entries in queues.values():
            sizes = [len(e["x"]) for e in entries]
            try:
                if on_device:
                    import torch

                    outs = runner.run_torch(torch.cat([e["x"] for e in entries]))
                else:
                    outs = runner(np.concatenate([e["x"] for e in entries]))
                name = getattr(runner, "name", type(runner).__name__)
                self.calls[name] = self.calls.get(name, 0) + 1
                self.batch_sizes.append(sum(sizes))
                start = 0
                for e, n in zip(entries, sizes):
                    e["out"] = tuple((o if on_device else np.asarray(o))[start:start + n] for o in outs)
                    start += n
            except Exception as err:  # every waiting stream sees the network's error
                for e in entries:
                    e["err"] = err
            for e in entries:
                e["done"] = True
        self._cond.notify_all()


class _BatchedRunner:
    """Stands in for a runner in a stream's estimator view; calls go through the batcher."""

    def __init__(self, batcher: _LockstepBatcher, runner) -> None:
        self._batcher, self._runner = batcher, runner
        self.name = getattr(runner, "name", type(runner).__name__)
        if hasattr(runner, "run_torch"):  # torch batches from GPU pre-processing stay on the device
            self.run_torch = lambda x: self._batcher.submit(self._runner, x, on_device=True)

    def __call__(self, x):
        return self._batcher.submit(self._runner, np.asarray(x))


class _LockedFitter:
    """The shared MANO fitter, one fit at a time (it keeps batch buffers between calls)."""

    def __init__(self, fitter, lock: threading.Lock) -> None:
        self._fitter, self._lock = fitter, lock

    def fit(self, *args, **kwargs):
        with self._lock:
            return self._fitter.fit(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._fitter, name)


class MultiStreamEstimator:
    """``n_streams`` camera streams through the networks of one :class:`HandPoseEstimator`.

    ``__call__(frames)`` takes ``{stream_index: (image_rgb, K, depth, timestamp_s)}`` (any subset of
    the streams: those with a new frame) and returns ``{stream_index: [Hand, ...]}``; an exception
    in one stream is returned in its place (the others still get their hands).
    """

    def __init__(self, estimator, n_streams: int) -> None:
        if n_streams < 1:
            raise ValueError(f"n_streams must be >= 1, got {n_streams}")
        self.base = estimator
        self.batcher = _LockstepBatcher()
        wrapped: dict[int, _BatchedRunner] = {}
        fit_lock = threading.Lock()
        self.streams = []
        for _ in range(n_streams):
            view = copy.copy(estimator)  # shares networks, fitter and settings; own tracker state below
            view._tracks = []
            view.last_timings_ms = {}
            for attr in ("_palm", "_landmark", "_coarse"):
                runner = getattr(estimator, attr, None)
                if runner is not None:
                    view.__dict__[attr] = wrapped.setdefault(id(runner), self.batcher.wrap(runner))
            if getattr(estimator, "_fitter", None) is not None:
                view._fitter = _LockedFitter(estimator._fitter, fit_lock)
            self.streams.append(view)

    def reset(self, stream: int | None = None) -> None:
        for i, s in enumerate(self.streams):
            if stream is None or i == stream:
                s.reset()

    def __call__(self, frames: dict) -> dict:
        items = sorted(frames.items())
        results: dict[int, list[Hand] | Exception] = {}
        self.batcher.start(len(items))

        def run(i, frame):
            try:
                image, K, depth, t_s = frame
                results[i] = self.streams[i](image, K, depth, timestamp_s=t_s)
            except Exception as e:
                results[i] = e
            finally:
                self.batcher.participant_done()

        threads = [threading.Thread(target=run, args=it, name=f"hand_stream_{it[0]}", daemon=True) for it in items]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results


__all__ = ["MultiStreamEstimator"]
