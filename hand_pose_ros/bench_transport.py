"""Benchmark: image delivery between two processes on one host (replay -> subscriber), with and
without the shipped Fast DDS large-image profile. Prints one JSON line per run.

    python -m hand_pose_ros.bench_transport --rate 30 --frames 300 [--no-profile] [--size 640x480]

The subscriber uses the node's image QoS (best effort, depth 1). Each frame carries its index in
its pixels, so a lost frame is a gap in the received indices; latency is arrival time minus the
header stamp (same host clock).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np


def _write_frames(folder: Path, n: int, width: int, height: int) -> None:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    for i in range(n):
        img = base.copy()
        img[:8, :8] = i % 256
        img[:8, 8:16] = i // 256
        cv2.imwrite(str(folder / f"{i:05d}.png"), img)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=30.0)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--no-profile", action="store_true", help="Fast DDS defaults instead of the shipped profile")
    ap.add_argument("--reliable", action="store_true", help="reliable QoS on both ends")
    opts = ap.parse_args(argv)
    width, height = (int(v) for v in opts.size.split("x"))

    from hand_pose_ros.procs import module_cmd, ros_child_env, unique_domain_id

    domain = unique_domain_id()
    env = ros_child_env(domain, shm_profile=not opts.no_profile)
    if opts.no_profile:
        for k in ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE"):
            env.pop(k, None)
    # this process must use the same transport settings as the replay: set before rclpy.init
    for k in ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE", "ROS_AUTOMATIC_DISCOVERY_RANGE"):
        if k in env:
            os.environ[k] = env[k]
        else:
            os.environ.pop(k, None)

    import rclpy
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    with tempfile.TemporaryDirectory() as tmp:
        _write_frames(Path(tmp), opts.frames, width, height)
        rclpy.init(domain_id=domain)
        node = rclpy.create_node("bench_transport_sub")
        received: dict[int, float] = {}

        def on_image(msg: Image) -> None:
            t = time.time()
            px = np.frombuffer(msg.data, np.uint8, count=3 * 16)
            idx = int(px[0]) + 256 * int(px[3 * 8])
            received.setdefault(idx, (t - (msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)) * 1e3)

        reliability = ReliabilityPolicy.RELIABLE if opts.reliable else ReliabilityPolicy.BEST_EFFORT
        node.create_subscription(Image, "image", on_image,
                                 QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=reliability))
        cmd = module_cmd("replay_node", ["-p", f"source:={tmp}", "-p", f"rate_hz:={opts.rate}", "-p", "loop:=false",
                                         "-p", "wait_for_subscribers:=1",
                                         "-p", f"reliability:={'reliable' if opts.reliable else 'best_effort'}"])
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60 + opts.frames / opts.rate
        while proc.poll() is None and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.01)
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.01)
        if proc.poll() is None:
            proc.kill()
        node.destroy_node()
        rclpy.try_shutdown()
    lat = np.array(list(received.values()))
    report = {
        "profile": not opts.no_profile, "qos": "reliable" if opts.reliable else "best_effort",
        "size": opts.size, "rate_hz": opts.rate, "published": opts.frames, "received": len(received),
        "lost": opts.frames - len(received),
        "latency_ms_p50": round(float(np.median(lat)), 2) if lat.size else None,
        "latency_ms_p95": round(float(np.percentile(lat, 95)), 2) if lat.size else None,
    }
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
