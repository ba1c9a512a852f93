"""Thread settings for the small numpy/scipy work between the networks."""
from __future__ import annotations


class SingleThreadBlas:
    """Context manager running numpy/scipy BLAS single-threaded (threadpoolctl), restoring after.

    The MANO fit multiplies many tiny matrices; multi-threaded OpenBLAS spends far longer waking
    and synchronising its threads than computing, and its threads fight the network runtime's.
    Measured on the 2-core CI machine under load (60 static 640x480 frames, cProfile): the fit's
    normal equations took 13 ms per call with OpenBLAS's default threads and 0.4 ms with one.
    Without threadpoolctl this does nothing.
    """

    _controller = None

    def __enter__(self):
        try:
            if SingleThreadBlas._controller is None:
                from threadpoolctl import ThreadpoolController

                SingleThreadBlas._controller = ThreadpoolController()
            self._limit = SingleThreadBlas._controller.limit(limits=1, user_api="blas")
        except ImportError:
            self._limit = None
        return self

    def __exit__(self, *exc):
        if self._limit is not None:
            self._limit.restore_original_limits()
