"""640x480 rgb8 at 30 Hz between two processes on one host loses no frame with the shipped
Fast DDS profile (the issue's transport target). Real replay process, real DDS."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("rclpy", reason="rclpy (ROS 2) is not installed")

from hand_pose_ros.procs import REPO_ROOT, ros_child_env  # noqa: E402


@pytest.mark.ros
@pytest.mark.heavy
@pytest.mark.timeout(180)
def test_no_lost_frames_at_30hz_640x480_with_the_shipped_profile():
    # own process: Fast DDS reads the profile when a process creates its first participant
    out = subprocess.run([sys.executable, "-m", "hand_pose_ros.bench_transport", "--rate", "30", "--frames", "150"],
                         env=ros_child_env(), capture_output=True, text=True, timeout=150, cwd=str(REPO_ROOT))
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["profile"] and report["published"] == 150
    assert report["lost"] == 0, report
    assert report["latency_ms_p50"] < 50.0, report
