"""A small consumer of ``/hand/joints3d``: prints, per message, the stamp and each hand's side,
score and wrist position in metres. The reading itself is three lines (see ``hands_from_cloud``).

Console script ``hand_pose_consumer [--count N] [--timeout S]``. Output lines::

    stamp=1763703472.101 frame=camera_optical_frame hand=0 side=left score=0.99 wrist_m=(-0.097, +0.004, +0.228) calibrated=0 depth_used=0
    stamp=1763703472.135 frame=camera_optical_frame no hand
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.utilities import remove_ros_args
from sensor_msgs.msg import PointCloud2

# The message layout, as a consumer writes it down (docs/ros.md): no import from this package needed.
JOINTS_DTYPE = np.dtype({
    "names": ["x", "y", "z", "u", "v", "score", "hand_id", "joint_id", "side", "calibrated", "side_score",
              "uncertainty_m", "depth_used"],
    "formats": ["<f4"] * 6 + ["u1"] * 4 + ["<f4", "<f4", "u1"],
    "offsets": [0, 4, 8, 12, 16, 20, 24, 25, 26, 27, 28, 32, 36],
    "itemsize": 40,
})


def hands_from_cloud(msg: PointCloud2) -> np.ndarray:
    """(n_hands, 21) structured records; ``[h]['x']`` etc. are the 21 joints of hand h."""
    if msg.point_step != JOINTS_DTYPE.itemsize:
        raise ValueError(f"/hand/joints3d point_step is {msg.point_step}, this consumer reads {JOINTS_DTYPE.itemsize}")
    rec = np.frombuffer(msg.data, dtype=JOINTS_DTYPE, count=msg.width * msg.height)
    return rec.reshape(-1, 21)


def format_message(msg: PointCloud2) -> list[str]:
    head = f"stamp={msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9:.3f} frame={msg.header.frame_id}"
    hands = hands_from_cloud(msg)
    if len(hands) == 0:
        return [f"{head} no hand"]
    lines = []
    for joints in hands:
        w = joints[0]  # joint 0 is the wrist
        side = "right" if w["side"] == 1 else "left"
        lines.append(f"{head} hand={w['hand_id']} side={side} score={w['score']:.2f} "
                     f"wrist_m=({w['x']:+.3f}, {w['y']:+.3f}, {w['z']:+.3f}) calibrated={w['calibrated']} "
                     f"depth_used={w['depth_used']}")
    return lines


class Consumer(Node):
    def __init__(self) -> None:
        super().__init__("hand_pose_consumer")
        self.messages = 0
        self.with_hands = 0
        self.create_subscription(PointCloud2, "hand/joints3d", self._on_joints, 10)

    def _on_joints(self, msg: PointCloud2) -> None:
        self.messages += 1
        self.with_hands += int(msg.width > 0)
        for line in format_message(msg):
            print(line, flush=True)


def main(args=None) -> int:
    argv = remove_ros_args(sys.argv if args is None else args)[1:]
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=0, help="exit after this many messages with hands (0: never)")
    parser.add_argument("--timeout", type=float, default=0.0, help="exit after this many seconds (0: never)")
    opts = parser.parse_args(argv)
    rclpy.init(args=args)
    node = Consumer()
    deadline = time.monotonic() + opts.timeout if opts.timeout else None
    try:
        while rclpy.ok():
            rclpy.spin_once(node, timeout_sec=0.1)
            if opts.count and node.with_hands >= opts.count:
                break
            if deadline and time.monotonic() > deadline:
                break
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0 if node.with_hands > 0 else 2


if __name__ == "__main__":
    raise SystemExit(main())
