"""Latency summaries."""
from __future__ import annotations

import numpy as np


def summarize(values_ms) -> dict[str, float]:
    """p50, p99 and mean of a list of milliseconds (NaN for an empty list)."""
    v = np.asarray(list(values_ms), np.float64)
    if v.size == 0:
        return {"p50": float("nan"), "p99": float("nan"), "mean": float("nan"), "n": 0}
    return {"p50": float(np.median(v)), "p99": float(np.percentile(v, 99)), "mean": float(v.mean()),
            "n": int(v.size)}


def median_of_medians(rounds: list[list[float]]) -> float:
    """Median over repeats of each repeat's median (robust to one slow repeat)."""
    meds = [float(np.median(r)) for r in rounds if len(r)]
    return float(np.median(meds)) if meds else float("nan")
