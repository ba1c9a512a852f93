"""The main-job command: ``hand_pose_demo`` (replay + node + consumer on the built-in photo)
prints real detections and exits 0. Real processes, real DDS, the real estimator."""
from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("rclpy", reason="rclpy (ROS 2) is not installed")

from hand_pose_ros.procs import REPO_ROOT, ros_child_env  # noqa: E402


@pytest.mark.ros
@pytest.mark.heavy
@pytest.mark.timeout(300)
def test_demo_prints_hands_from_the_builtin_sample():
    from hand_pose_core.samples import SampleUnavailableError, builtin_sample_image

    try:
        builtin_sample_image()  # fetched from Debian's opencv-doc on first use
    except SampleUnavailableError as e:
        pytest.skip(f"built-in sample image not available on this machine: {e}")
    env = ros_child_env()
    env.pop("ROS_DOMAIN_ID", None)  # the demo picks its own
    out = subprocess.run([sys.executable, "-m", "hand_pose_ros.demo", "--duration", "5"], env=env,
                         capture_output=True, text=True, timeout=280, cwd=str(REPO_ROOT))
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("stamp=")]
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    hands = [ln for ln in lines if "side=" in ln]
    assert len(hands) >= 3, out.stdout[-2000:]
    # wrist in front of the camera at a plausible distance (default K: depth is a guess)
    z = float(hands[-1].split("wrist_m=(")[1].split(")")[0].split(",")[2])
    assert 0.05 < z < 3.0
    assert "calibrated=0" in hands[-1]  # no camera_info from the replay by default
