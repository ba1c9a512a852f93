"""Paths and environments for child processes (the demo and the tests start nodes as processes,
because ``ros2 launch`` is not available everywhere)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE = "hand_pose_ros"
REPO_ROOT = Path(__file__).resolve().parents[1]
SHM_PROFILE = "config/fastdds_shm_large_images.xml"
BOOTSTRAP_VAR = "_ROS_WHEELS_BOOTSTRAP_COMPLETE"


def share_file(relative: str) -> Path:
    """A file installed to share/hand_pose_ros (colcon/pip install) or, in a source checkout,
    the same path under the repository root."""
    try:
        from ament_index_python.packages import get_package_share_directory

        candidate = Path(get_package_share_directory(PACKAGE)) / relative
        if candidate.exists():
            return candidate
    except Exception:  # not installed through ament: fall back to the checkout
        pass
    candidate = REPO_ROOT / relative
    if not candidate.exists():
        raise FileNotFoundError(f"{relative} is neither installed in share/{PACKAGE} nor in {REPO_ROOT}")
    return candidate


def unique_domain_id(seed: int | None = None) -> int:
    """A ROS_DOMAIN_ID in 10..209 derived from the pid, so parallel test runs do not see each other."""
    return 10 + ((os.getpid() if seed is None else seed) % 200)


def ros_child_env(domain_id: int | None = None, shm_profile: bool = True, base: dict | None = None) -> dict:
    """Environment for a ROS child process started with this interpreter.

    Discovery stays on loopback (LOCALHOST), the domain is explicit, and the shipped large-image
    Fast DDS profile is loaded unless the user already chose one. The ROS-wheels bootstrapper's
    guard variable is dropped when it was inherited from another Python environment (the child
    must then compute its own LD_LIBRARY_PATH).
    """
    env = dict(os.environ if base is None else base)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(domain_id)
    if shm_profile and "FASTRTPS_DEFAULT_PROFILES_FILE" not in env and "FASTDDS_DEFAULT_PROFILES_FILE" not in env:
        profile = str(share_file(SHM_PROFILE))
        env["FASTRTPS_DEFAULT_PROFILES_FILE"] = profile  # Fast DDS 2.x (Jazzy)
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = profile  # Fast DDS 3.x (Kilted and later)
    own_lib = os.path.join(sys.prefix, "lib")
    if env.get(BOOTSTRAP_VAR) and own_lib not in env.get("LD_LIBRARY_PATH", "").split(os.pathsep):
        env.pop(BOOTSTRAP_VAR)
    # a source checkout (not pip-installed) must still find its packages
    paths = env.get("PYTHONPATH", "").split(os.pathsep) if env.get("PYTHONPATH") else []
    if str(REPO_ROOT) not in paths:
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *paths])
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def module_cmd(module: str, ros_args: list[str] | None = None, args: list[str] | None = None) -> list[str]:
    """``python -m hand_pose_ros.<module> [args] --ros-args ...`` with this interpreter."""
    cmd = [sys.executable, "-m", f"{PACKAGE}.{module}", *(args or [])]
    if ros_args:
        cmd += ["--ros-args", *ros_args]
    return cmd
