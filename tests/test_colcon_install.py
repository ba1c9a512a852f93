"""The ROS-workspace route, executed: ``colcon build`` of a copy of the package in a temporary
workspace, the install tree ``ros2 run`` / ``ros2 launch`` rely on, and the installed
``hand_pose_node`` started from that install, talking over real DDS."""
from __future__ import annotations

import signal
import subprocess
import time

import numpy as np
import pytest

from colcon_helpers import PACKAGE, colcon_workspace, sourced_env
from ros_helpers import DOMAIN_ID, diag_values, listener

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from sensor_msgs.msg import Image, PointCloud2  # noqa: E402

from hand_pose_ros.image_conv import rgb_to_image_msg  # noqa: E402

pytestmark = [pytest.mark.heavy, pytest.mark.ros, pytest.mark.timeout(400)]

EXECUTABLES = ("hand_pose_node", "hand_pose_replay", "hand_pose_consumer", "hand_pose_demo", "hand-pose")


@pytest.fixture(scope="module")
def ws():
    return colcon_workspace()


def test_install_tree_is_what_ros2_run_and_launch_expect(ws):
    prefix = ws / "install" / PACKAGE
    lib = prefix / "lib" / PACKAGE
    for exe in EXECUTABLES:  # ros2 run looks in lib/<package>
        path = lib / exe
        assert path.is_file(), f"{exe} not installed in {lib}"
        assert path.stat().st_mode & 0o111, f"{path} is not executable"
        assert path.read_text().splitlines()[0].startswith("#!"), f"{path} has no shebang"
    share = prefix / "share" / PACKAGE
    for rel in ("package.xml", "launch/hand.launch.py", "config/hand_pose.yaml",
                "config/fastdds_shm_large_images.xml", "config/hand_pose.rviz"):
        assert (share / rel).is_file(), f"share/{PACKAGE}/{rel} missing"
    marker = prefix / "share" / "ament_index" / "resource_index" / "packages" / PACKAGE
    assert marker.is_file(), "ament index marker missing (ros2 pkg / launch would not find the package)"
    # after sourcing the install, Python imports the installed copy, not the checkout, and the
    # ament index finds the share folder
    env = sourced_env(ws)
    code = ("import hand_pose_ros, hand_pose_core; "
            "from ament_index_python.packages import get_package_share_directory as g; "
            f"print(hand_pose_ros.__file__); print(hand_pose_core.__file__); print(g('{PACKAGE}'))")
    out = subprocess.run([_python(ws), "-c", code], env=env, cwd=ws,  # (not the checkout: cwd is on sys.path)
                         capture_output=True, text=True, timeout=120, check=True).stdout.split()
    assert all(str(prefix) in line for line in out), out


def _python(ws) -> str:
    """The interpreter the installed console scripts run with (their shebang)."""
    first = (ws / "install" / PACKAGE / "lib" / PACKAGE / "hand_pose_node").read_text().splitlines()[0]
    return first[2:].strip()


def test_installed_node_runs_over_dds(ws, tmp_path):
    env = sourced_env(ws, {"ROS_DOMAIN_ID": str(DOMAIN_ID), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
                           "PYTHONUNBUFFERED": "1"})
    exe = ws / "install" / PACKAGE / "lib" / PACKAGE / "hand_pose_node"
    log_path = tmp_path / "node.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(exe), "--ros-args", "-p", "variant:=lite", "-p", "fit_mano:=false",
                                 "-p", "diagnostics_period_s:=0.25", "-r", "image:=/colcon_test/image"],
                                env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
        try:
            deadline = time.monotonic() + 150
            while "ready:" not in log_path.read_text() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
            assert "ready:" in log_path.read_text(), f"installed node did not start:\n{log_path.read_text()[-3000:]}"
            assert "/colcon_test/image" in log_path.read_text()  # the remapping reached the node
            with listener("colcon_test") as lst:
                joints = lst.collect(PointCloud2, "/hand/joints3d")
                diags = lst.collect(DiagnosticArray, "/diagnostics")
                pub = lst.node.create_publisher(Image, "/colcon_test/image", 10)
                msg = rgb_to_image_msg(np.full((240, 320, 3), 90, np.uint8))
                msg.header.frame_id = "colcon_cam"
                sent = set()
                t_end = time.monotonic() + 60
                while time.monotonic() < t_end and not any(
                        (m.header.stamp.sec, m.header.stamp.nanosec) in sent for _, m in list(joints)):
                    msg.header.stamp = lst.node.get_clock().now().to_msg()
                    sent.add((msg.header.stamp.sec, msg.header.stamp.nanosec))
                    pub.publish(msg)
                    time.sleep(0.2)
                answered = [m for _, m in list(joints) if (m.header.stamp.sec, m.header.stamp.nanosec) in sent]
                assert answered, f"no /hand/joints3d for our images\n{log_path.read_text()[-3000:]}"
                assert answered[0].header.frame_id == "colcon_cam"
                assert answered[0].width * answered[0].height == 0  # a grey image: no hand
                assert lst.wait_until(lambda: any(diag_values(d).get("frames_received") for _, d in diags),
                                      10.0), "no diagnostics with received frames from the node"
        finally:
            for _ in range(3):  # Ctrl-C pressed more than once: still a clean exit
                if proc.poll() is None:
                    proc.send_signal(signal.SIGINT)
                    time.sleep(0.03)
            try:
                rc = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
    text = log_path.read_text()
    assert rc == 0, f"installed node exited with {rc}:\n{text[-3000:]}"
    for bad in ("Traceback", "terminate called", "KeyboardInterrupt"):
        assert bad not in text, text[-3000:]
