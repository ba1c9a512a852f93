"""A 1-slot "latest wins" buffer between a subscription callback and a worker thread.

The callback never blocks and memory never grows: a new frame replaces an unprocessed one,
and the replaced frame is counted as dropped. The worker always gets the newest frame, so
latency stays flat when frames arrive faster than the estimator runs.
"""
from __future__ import annotations

import threading
from typing import Any


class LatestSlot:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Any = None
        self._has_item = False
        self._closed = False
        self.dropped = 0  # frames overwritten before the worker took them
        self.received = 0

    def put(self, item: Any) -> None:
        """Store ``item``, replacing (and counting as dropped) any item not yet taken."""
        with self._cond:
            if self._has_item:
                self.dropped += 1
            self._item, self._has_item = item, True
            self.received += 1
            self._cond.notify()

    def take(self, timeout: float | None = None) -> Any:
        """Wait for and remove the newest item; None on timeout or after :meth:`close`."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._has_item or self._closed, timeout):
                return None
            if self._closed:
                return None
            item, self._item, self._has_item = self._item, None, False
            return item

    def close(self) -> None:
        """Wake up and release any waiting :meth:`take` for shutdown."""
        with self._cond:
            self._closed = True
            self._item, self._has_item = None, False
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed


class StampedBuffer:
    """The newest few messages of a second stream (e.g. depth), looked up by stamp.

    ``put`` never blocks and keeps at most ``size`` items (the oldest is dropped: latest wins).
    ``match`` returns the item whose stamp is nearest to a given stamp within a tolerance; when
    none matches yet and every stored item is older, it waits up to ``wait_s`` for a newer one
    (the second stream's message for this frame may still be in transit).
    """

    def __init__(self, size: int = 4) -> None:
        from collections import deque

        self._cond = threading.Condition()
        self._items: deque = deque(maxlen=size)  # (stamp_ns, monotonic arrival, item)
        self.received = 0

    def put(self, stamp_ns: int, item: Any) -> None:
        import time

        with self._cond:
            self._items.append((int(stamp_ns), time.monotonic(), item))
            self.received += 1
            self._cond.notify_all()

    def last_arrival(self) -> float | None:
        with self._cond:
            return self._items[-1][1] if self._items else None

    def match(self, stamp_ns: int, tolerance_ns: int, wait_s: float = 0.0) -> Any:
        import time

        deadline = time.monotonic() + wait_s
        with self._cond:
            while True:
                best = min(self._items, key=lambda it: abs(it[0] - stamp_ns), default=None)
                if best is not None and abs(best[0] - stamp_ns) <= tolerance_ns:
                    return best[2]
                if self._items and self._items[-1][0] >= stamp_ns:
                    return None  # a newer one is already here: the one for this stamp is not coming
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
