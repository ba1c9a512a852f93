"""Temporal smoothing of landmark streams with the One-Euro filter.

Casiez, Roussel, Vogel, "1 Euro Filter: A Simple Speed-based Low-pass Filter for Noisy Input in
Interactive Systems", CHI 2012. A first-order low-pass filter whose cutoff rises with the
(low-passed) speed of the signal: slow motion is smoothed hard (little jitter), fast motion
gets a high cutoff (little lag).

    alpha(fc, dt) = 1 / (1 + 1 / (2 pi fc dt))
    dx_hat = lowpass(dx, alpha(d_cutoff))            dx = (x - x_hat_prev) / dt
    fc     = min_cutoff + beta * |dx_hat|
    x_hat  = lowpass(x, alpha(fc))

Here every element of the array is filtered independently (the speed term is per element).
"""
from __future__ import annotations

import math

import numpy as np


def _alpha(cutoff_hz, dt_s: float):
    tau = 1.0 / (2.0 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt_s)


class OneEuroFilter:
    """One-Euro filter over numpy arrays of a fixed shape, with explicit timestamps.

    Args:
        min_cutoff: cutoff (Hz) at zero speed; lower = smoother but more lag when slow.
        beta: speed coefficient (cutoff Hz per unit/s); higher = less lag when fast.
        d_cutoff: cutoff (Hz) of the speed estimate.

    Timestamps (seconds) must increase. Behaviour otherwise (documented contract):
        * ``t_s`` equal to the previous timestamp (a duplicate frame): the sample is skipped and
          the previous output is returned unchanged;
        * ``t_s`` earlier than the previous one (clock jump, bag replayed from the start): the
          filter resets and ``x`` is returned as the new first sample.
    NaN/inf in ``x`` or ``t_s`` raise ValueError (filter state untouched); so does a shape
    different from the first sample's (call :meth:`reset` to track a different array).
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0):
        for name, v in (("min_cutoff", min_cutoff), ("d_cutoff", d_cutoff)):
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive finite frequency in Hz, got {v}")
        if not (math.isfinite(beta) and beta >= 0):
            raise ValueError(f"beta must be >= 0 and finite, got {beta}")
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff)
        self.reset()

    def reset(self) -> None:
        """Forget the history; the next sample passes through unchanged."""
        self._x_hat: np.ndarray | None = None
        self._dx_hat: np.ndarray | None = None
        self._t_prev: float | None = None

    @property
    def initialized(self) -> bool:
        return self._x_hat is not None

    def filter(self, x, t_s: float) -> np.ndarray:
        """Filter one sample ``x`` taken at time ``t_s`` (seconds); returns a new float64 array."""
        arr = np.array(x, dtype=np.float64)  # copy: never alias the caller's array
        t = float(t_s)
        if not math.isfinite(t):
            raise ValueError(f"timestamp must be finite, got {t_s}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"input contains NaN or inf ({int(np.sum(~np.isfinite(arr)))} values)")
        if self._x_hat is not None and arr.shape != self._x_hat.shape:
            raise ValueError(
                f"input shape {arr.shape} differs from the filtered shape {self._x_hat.shape}; "
                "call reset() first to filter a different array"
            )
        if self._x_hat is None or t < self._t_prev:
            self._x_hat, self._dx_hat, self._t_prev = arr, np.zeros_like(arr), t
            return arr.copy()
        if t == self._t_prev:
            return self._x_hat.copy()
        dt = t - self._t_prev
        dx = (arr - self._x_hat) / dt
        a_d = _alpha(self.d_cutoff, dt)
        self._dx_hat = self._dx_hat + a_d * (dx - self._dx_hat)
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx_hat)
        a = _alpha(cutoff, dt)
        self._x_hat = self._x_hat + a * (arr - self._x_hat)
        self._t_prev = t
        return self._x_hat.copy()

    __call__ = filter


__all__ = ["OneEuroFilter"]
