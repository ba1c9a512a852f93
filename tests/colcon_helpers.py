"""A colcon workspace holding a copy of this package, built once per test process, and the
environment a user gets after ``source install/setup.bash`` (the ROS-workspace route)."""
from __future__ import annotations

import atexit
import functools
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "hand_pose_ros"
# what a source checkout of the package holds; tests, docs and build outputs stay out
_IGNORE = shutil.ignore_patterns(".git", ".venv", "tests", "docs", "__pycache__", "*.egg-info",
                                 "build", "install", "log", ".pytest_cache")


def need_colcon() -> None:
    if importlib.util.find_spec("colcon_core") is None:
        pytest.skip("colcon is not installed in this interpreter: "
                    "pip install colcon-common-extensions (setup.py extra 'test')")


@functools.lru_cache(maxsize=1)
def colcon_workspace() -> Path:
    """``<tmp>/ws`` with ``src/hand_pose_ros`` (a copy of the checkout) built by
    ``python -m colcon build`` run with this interpreter (so the installed console scripts get
    it in their shebang, as with a ROS installation's python3)."""
    need_colcon()
    root = Path(tempfile.mkdtemp(prefix="hand_pose_colcon_"))
    atexit.register(shutil.rmtree, root, True)
    ws = root / "ws"
    shutil.copytree(REPO_ROOT, ws / "src" / PACKAGE, ignore=_IGNORE)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AMENT_PREFIX_PATH")}
    proc = subprocess.run(
        [sys.executable, "-m", "colcon", "build", "--base-paths", "src",
         "--packages-select", PACKAGE, "--event-handlers", "console_cohesion+"],
        cwd=ws, env=env, capture_output=True, text=True, timeout=600,
    )
    if proc.returncode != 0:
        raise AssertionError(f"colcon build failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n"
                             f"{proc.stderr[-4000:]}")
    return ws


def sourced_env(ws: Path, extra: dict | None = None) -> dict:
    """The environment after ``source <ws>/install/setup.bash`` (bash, as a user does it),
    starting from ours without any PYTHONPATH entry of the checkout, plus ``extra``."""
    base = {k: v for k, v in os.environ.items() if k not in ("AMENT_PREFIX_PATH",)}
    keep = [p for p in base.get("PYTHONPATH", "").split(os.pathsep)
            if p and Path(p).resolve() != REPO_ROOT]
    base["PYTHONPATH"] = os.pathsep.join(keep)
    if not keep:
        base.pop("PYTHONPATH")
    out = subprocess.run(["bash", "-c", f"source '{ws}/install/setup.bash' && env -0"],
                         env=base, capture_output=True, timeout=60, check=True).stdout
    env = dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)
    env.update(extra or {})
    return env
