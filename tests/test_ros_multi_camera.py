"""Two cameras at 30 Hz into one hand_pose_node (cameras:=cam_a,cam_b), over real DDS with the
real rclpy: two replay processes publish in their own namespaces; every output must come on its
camera's namespace with the stamp and frame_id of an image of that camera."""
from __future__ import annotations

import time

import numpy as np
import pytest

from ros_helpers import REAL_VIDEO, RosProcess, listener

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image, PointCloud2  # noqa: E402

from hand_pose_ros.hand_msgs import cloud_to_records  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.timeout(300)]


def _key(header):
    return header.stamp.sec, header.stamp.nanosec


@pytest.mark.heavy
def test_two_cameras_at_30hz_are_both_answered_on_their_own_namespaces(tmp_path):
    if not REAL_VIDEO.is_file():
        pytest.skip(f"real footage not found at {REAL_VIDEO}")
    node = RosProcess("hand_pose_node", ["-p", "cameras:=cam_a,cam_b", "-p", "diagnostics_period_s:=0.5"],
                      tmp_path / "node.log")
    replays = []
    try:
        assert node.wait_for_log("ready:", 120), node.log()[-3000:]
        assert "2 cameras" in node.log() and "'/cam_a/image'" in node.log()
        with listener("multi_camera_listener") as lst:
            qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
            images = {c: lst.collect(Image, f"/{c}/image", qos) for c in ("cam_a", "cam_b")}
            joints = {c: lst.collect(PointCloud2, f"/{c}/hand/joints3d") for c in ("cam_a", "cam_b")}
            diags = lst.collect(DiagnosticArray, "/diagnostics")
            # cam_a: the real video; cam_b: the built-in photo; both 30 Hz, their own frame ids and K
            for cam, source, k in (("cam_a", str(REAL_VIDEO), "1296.0,1296.0,309.5,539.5"),
                                   ("cam_b", "builtin", "default")):
                replays.append(RosProcess("replay_node", ["-r", f"__ns:=/{cam}", "-r", f"__node:=replay_{cam}",
                                                          "-p", f"source:={source}", "-p", "rate_hz:=30.0",
                                                          "-p", "reliability:=reliable",
                                                          "-p", f"frame_id:={cam}_optical_frame",
                                                          "-p", f"intrinsics:={k}"], tmp_path / f"replay_{cam}.log"))
            ok = lst.wait_until(lambda: all(sum(m.width > 0 for _, m in joints[c]) >= 5 for c in joints), 120)
            assert ok, (f"{[len(joints[c]) for c in joints]} outputs\nnode:\n{node.log()[-2000:]}\n"
                        + "\n".join(r.log()[-1000:] for r in replays))
            t0 = time.monotonic()
            n0 = {c: len(joints[c]) for c in joints}
            time.sleep(3.0)
            rates = {c: (len(joints[c]) - n0[c]) / (time.monotonic() - t0) for c in joints}
            for r in replays:
                assert r.alive(), r.log()[-2000:]
        published = {c: {_key(m.header) for _, m in images[c]} for c in images}
        for cam, other in (("cam_a", "cam_b"), ("cam_b", "cam_a")):
            outs = [m for _, m in joints[cam]]
            for m in outs:
                assert m.header.frame_id == f"{cam}_optical_frame", m.header.frame_id
                assert _key(m.header) not in published[other]
            # the test's own image subscription may miss images of 60 large ones per second under
            # load; every output it did see the image of is that camera's
            assert any(_key(m.header) in published[cam] for m in outs), cam
            with_hands = [m for m in outs if m.width > 0]
            rec = cloud_to_records(with_hands[-1])
            assert np.all(rec["calibrated"] == 1) and np.all((rec["z"] > 0.05) & (rec["z"] < 3.0))
        statuses = {}
        for _, msg in diags:
            for st in msg.status:
                statuses[st.name] = st
        names = [n for n in statuses if n.endswith(": pipeline")]
        assert sorted(names) == ["hand_pose_node/cam_a: pipeline", "hand_pose_node/cam_b: pipeline"], names
        values = {n: {kv.key: kv.value for kv in statuses[n].values} for n in names}
        for n in names:
            assert int(values[n]["frames_processed"]) >= 5 and values[n]["camera_info"] == "ok", values[n]
        print(f"\ntwo cameras at 30 Hz: output rates {rates['cam_a']:.1f} / {rates['cam_b']:.1f} Hz, network calls "
              f"{values[names[0]]['network_calls']}, frames processed "
              f"{values[names[0]]['frames_processed']} + {values[names[1]]['frames_processed']}")
        # both keep being answered while both publish (no camera starves the other); the rate itself
        # depends on the machine and is printed, not asserted
        assert rates["cam_a"] > 0.0 and rates["cam_b"] > 0.0, rates
    finally:
        for r in replays:
            r.stop()
        assert node.stop() == 0, node.log()[-3000:]
