"""Helpers for the ROS tests: real rclpy, real DDS, nodes in child processes.

Every test run gets its own ROS_DOMAIN_ID (from the pid) and loopback-only discovery, so
parallel runs on one machine do not see each other.
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2) is not installed")

from hand_pose_ros.procs import REPO_ROOT, module_cmd, ros_child_env, unique_domain_id  # noqa: E402

DOMAIN_ID = unique_domain_id()
# This test process talks to the nodes with the same large-image Fast DDS profile as they use.
# Fast DDS reads it when the first participant of the process is created, so set it at import.
for _k, _v in ros_child_env(DOMAIN_ID).items():
    if _k.startswith(("FASTRTPS_", "FASTDDS_", "ROS_AUTOMATIC")):
        os.environ.setdefault(_k, _v)
REAL_DATA = (REPO_ROOT / ".." / "shared" / "data" / "real").resolve()
REAL_VIDEO = REAL_DATA / "asl_hand.25fps.mp4"


def child_env() -> dict:
    return ros_child_env(DOMAIN_ID)


class RosProcess:
    """A hand_pose_ros module in a child process, its output in a log file."""

    def __init__(self, module: str, ros_args: list[str], log_path: Path, args: list[str] | None = None) -> None:
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen(module_cmd(module, ros_args, args), env=child_env(), stdout=self._log,
                                     stderr=subprocess.STDOUT, cwd=str(REPO_ROOT))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_for_log(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return True
            if not self.alive():
                return False
            time.sleep(0.1)
        return False

    def stop(self, timeout: float = 10.0) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS for pid {pid}")


class Listener:
    """An in-process rclpy node (own context) spun in a background thread."""

    def __init__(self, name: str = "test_listener") -> None:
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        self.context = Context()
        rclpy.init(context=self.context, domain_id=DOMAIN_ID)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop and self.context.ok():
            self.executor.spin_once(timeout_sec=0.05)

    def collect(self, msg_type, topic: str, qos=10, keep=None) -> list:
        """Subscribe and return the list the messages are appended to (with arrival time)."""
        received: list = []

        def cb(msg):
            with self._lock:
                received.append((time.monotonic(), msg))
                if keep and len(received) > keep:
                    del received[0]

        self.node.create_subscription(msg_type, topic, cb, qos)
        return received

    def wait_until(self, predicate, timeout: float, poll: float = 0.05) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if predicate():
                    return True
            time.sleep(poll)
        with self._lock:
            return bool(predicate())

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=2.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


@contextmanager
def listener(name: str = "test_listener"):
    lst = Listener(name)
    try:
        yield lst
    finally:
        lst.close()


def diag_values(msg) -> dict:
    """{key: value} of the hand_pose_node status in a DiagnosticArray (empty when absent)."""
    for status in msg.status:
        if status.name.endswith(": pipeline"):
            return {kv.key: kv.value for kv in status.values} | {"_level": status.level, "_message": status.message}
    return {}


def latest_diag(diags) -> dict:
    for _, msg in reversed(diags):
        values = diag_values(msg)
        if values:
            return values
    return {}


class NodeClient:
    """Publisher of images and camera_info plus a parameter client, in the listener's context."""

    def __init__(self, lst, compressed: bool = False) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.parameter_client import AsyncParameterClient
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

        self.lst = lst
        self.joints = lst.collect(PointCloud2, "hand/joints3d")
        self.diags = lst.collect(DiagnosticArray, "/diagnostics")
        self.pub = lst.node.create_publisher(CompressedImage if compressed else Image,
                                             "image/compressed" if compressed else "image", 10)
        self.pub_info = lst.node.create_publisher(CameraInfo, "camera_info", 10)
        assert lst.wait_until(lambda: self.pub.get_subscription_count() > 0
                              and self.pub_info.get_subscription_count() > 0, 30)
        self.params = AsyncParameterClient(lst.node, "hand_pose_node")
        assert self.params.wait_for_services(10.0)

    def send(self, msg, stamp_s: float | None = None):
        """Publish with a unique stamp (now, unless given); returns (sec, nanosec)."""
        t = time.time() if stamp_s is None else stamp_s
        msg.header.stamp.sec, msg.header.stamp.nanosec = int(t), int((t % 1) * 1e9)
        msg.header.frame_id = "test_cam"
        self.pub.publish(msg)
        time.sleep(0.3)  # one at a time: the node keeps only the newest frame
        return msg.header.stamp.sec, msg.header.stamp.nanosec

    def output_for(self, key, timeout: float = 60.0):
        def find():
            return next((m for _, m in self.joints if (m.header.stamp.sec, m.header.stamp.nanosec) == key), None)

        assert self.lst.wait_until(lambda: find() is not None, timeout), f"no /hand/joints3d for stamp {key}"
        return find()

    def diag_when(self, predicate, timeout: float = 15.0) -> dict:
        self.lst.wait_until(lambda: predicate(latest_diag(self.diags)), timeout)
        return latest_diag(self.diags)

    def set(self, name: str, value):
        from rclpy.parameter import Parameter

        fut = self.params.set_parameters([Parameter(name, value=value)])
        assert self.lst.wait_until(fut.done, 10.0)
        return fut.result().results[0]

    def get(self, name: str):
        fut = self.params.get_parameters([name])
        assert self.lst.wait_until(fut.done, 10.0)
        v = fut.result().values[0]
        return {1: v.bool_value, 2: v.integer_value, 3: v.double_value, 4: v.string_value}.get(v.type)
