"""Clean process shutdown for the nodes' ``main()`` under repeated SIGINT.

Ctrl-C in a terminal sends SIGINT to every process of the foreground group (``ros2 launch`` and
all its nodes); launch may then send each node SIGINT again, and impatient users press Ctrl-C
twice. With Python's default handler every SIGINT raises ``KeyboardInterrupt`` in the main
thread, so a second one lands inside the ``finally:`` that joins the worker thread and shuts rclpy
down: a traceback, rclpy never shut down, and at exit C++ threads still joinable
(``terminate called without an active exception``).

:class:`SigintGuard` turns only the *first* SIGINT into ``KeyboardInterrupt`` (which stops the
spin); every later one, and any once shutdown has begun, is ignored. It is installed before
``rclpy.init`` so that rclpy's own handler (which shuts the context down on SIGINT) chains to it.
:meth:`SigintGuard.finish` then ignores SIGINT at the OS level for the interpreter's own
finalisation (Python resets its handlers to the default there, where a late SIGINT would kill the
process with -2).
"""
from __future__ import annotations

import signal
import threading

__all__ = ["SigintGuard"]


class SigintGuard:
    def __init__(self) -> None:
        self.received = 0
        self.shutting_down = False
        self._installed = False

    def install(self) -> "SigintGuard":
        """Install as the Python-level SIGINT handler (no-op outside the main thread)."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self)
            self._installed = True
        return self

    def __call__(self, signum, frame) -> None:
        self.received += 1
        if self.received == 1 and not self.shutting_down:
            raise KeyboardInterrupt

    def begin_shutdown(self) -> None:
        """From now on SIGINT does nothing: the clean-up below must run to its end."""
        self.shutting_down = True

    def finish(self) -> None:
        """After rclpy is shut down: keep ignoring SIGINT until the process has exited."""
        if self._installed:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
