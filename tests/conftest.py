"""Fixtures shared by several test files."""
from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tflite_paths() -> dict[str, Path]:
    """The four MediaPipe source models from the normal cache (downloads the wheel at most once)."""
    from hand_pose_core.weights import WeightsUnavailableError, ensure_tflite

    try:
        return ensure_tflite(progress=False)
    except WeightsUnavailableError as exc:
        if os.environ.get("HAND_POSE_OFFLINE"):
            pytest.skip(f"offline and the MediaPipe models are not cached: {exc}")
        raise
