"""hand_pose_node with an aligned depth topic, over real DDS with the real rclpy: rendered RGB-D
frames (moderngl EGL, structured-light faults) published as rgb8 + 16UC1 with camera_info."""
from __future__ import annotations

import time

import numpy as np
import pytest

from ros_helpers import NodeClient, RosProcess, listener

from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from hand_pose_ros.hand_msgs import cloud_to_records  # noqa: E402
from hand_pose_ros.image_conv import depth_to_image_msg, rgb_to_image_msg  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.timeout(300)]
pytest.importorskip("moderngl")


@pytest.fixture(scope="module")
def rgbd():
    """Rendered hands 20 % larger than the average hand (RGB alone places them ~20 % too close)."""
    from rgbd_render import render_or_skip

    return render_or_skip(11, 4, z_range=(0.5, 0.8), size_range=(1.2, 1.2))


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """One hand_pose_node for the module (reliable images: every test frame must arrive)."""
    log = tmp_path_factory.mktemp("rgbd_node") / "node.log"
    proc = RosProcess("hand_pose_node", ["-p", "diagnostics_period_s:=0.25", "-p", "image_reliability:=reliable",
                                         "-p", "tracking:=false", "-p", "max_hands:=1"], log)
    try:
        if not proc.wait_for_log("ready:", 120):
            pytest.fail(f"hand_pose_node did not start:\n{proc.log()[-3000:]}")
        yield proc
    finally:
        assert proc.stop() == 0, proc.log()[-3000:]


def _send_rgbd(c: NodeClient, pub_depth, h, depth=None, depth_dt_s: float = 0.0):
    """camera_info, then the depth image (stamp + depth_dt_s), then the colour image."""
    t = time.time()
    sec, nsec = int(t), int((t % 1) * 1e9)
    info = CameraInfo(width=h.rgb.shape[1], height=h.rgb.shape[0], k=h.K.reshape(-1).tolist())
    c.pub_info.publish(info)
    if depth is not False:
        dmsg = depth_to_image_msg(h.depth_mm if depth is None else depth)
        td = t + depth_dt_s
        dmsg.header.stamp.sec, dmsg.header.stamp.nanosec = int(td), int((td % 1) * 1e9)
        pub_depth.publish(dmsg)
    return c.send(rgb_to_image_msg(h.rgb), stamp_s=sec + nsec * 1e-9)


def _wrist_err_and_flags(msg, h):
    rec = cloud_to_records(msg).reshape(-1, 21)
    assert len(rec) == 1, len(rec)
    xyz = np.stack([rec[0]["x"], rec[0]["y"], rec[0]["z"]], 1).astype(np.float64)
    return np.linalg.norm(xyz - h.joints_cam_m, axis=1).mean(), int(rec[0]["depth_used"][0]), rec[0]


@pytest.mark.heavy
def test_depth_topic_is_matched_by_stamp_and_fused(node, rgbd):
    with listener("rgbd_client") as lst:
        c = NodeClient(lst)
        pub_depth = lst.node.create_publisher(Image, "depth", 10)
        assert lst.wait_until(lambda: pub_depth.get_subscription_count() > 0, 30)
        # counters of earlier tests on this node (module-scoped)
        d0 = c.diag_when(lambda d: "frames_with_depth" in d)
        base = {k: int(d0.get(k, 0)) for k in ("frames_with_depth", "frames_without_depth",
                                                "bad_input.depth_size_mismatch")}
        results = []
        for h in rgbd:
            rgb_only = c.output_for(_send_rgbd(c, pub_depth, h, depth=False))
            exact = c.output_for(_send_rgbd(c, pub_depth, h))                      # same stamp
            near = c.output_for(_send_rgbd(c, pub_depth, h, depth_dt_s=0.012))     # within 20 ms
            far = c.output_for(_send_rgbd(c, pub_depth, h, depth_dt_s=0.2))        # another frame's
            if rgb_only.width == 0:
                continue  # the landmark network does not find every rendered hand
            e_rgb, used_rgb, rec = _wrist_err_and_flags(rgb_only, h)
            e_exact, used_exact, rec_exact = _wrist_err_and_flags(exact, h)
            _, used_near, _ = _wrist_err_and_flags(near, h)
            _, used_far, _ = _wrist_err_and_flags(far, h)
            assert used_rgb == 0 and used_far == 0
            assert np.isnan(rec["uncertainty_m"]).all()  # MediaPipe gives no uncertainty
            results.append((e_rgb, e_exact, used_exact, used_near))
        assert results, "no rendered hand was detected"
        res = np.array(results)
        print(f"\nover DDS: mean joint error RGB only {res[:, 0].mean() * 1e3:.0f} mm, "
              f"with depth {res[:, 1].mean() * 1e3:.0f} mm ({len(res)} hands)")
        assert res[:, 2].sum() >= 1 and res[:, 3].sum() >= 1, res
        fused = res[res[:, 2] == 1]
        assert fused[:, 1].mean() < 0.7 * fused[:, 0].mean(), fused
        # a depth image of another size: counted, the frame is still processed without depth
        h = rgbd[0]
        bad = c.output_for(_send_rgbd(c, pub_depth, h, depth=h.depth_mm[::2, ::2].copy()))
        assert bad.width in (0, 21) and (bad.width == 0 or cloud_to_records(bad)["depth_used"][0] == 0)
        n = 4 * len(rgbd) + 1 + base["frames_with_depth"] + base["frames_without_depth"]
        d = c.diag_when(lambda d: int(d.get("frames_with_depth", 0)) + int(d.get("frames_without_depth", 0)) >= n)
        assert int(d["bad_input.depth_size_mismatch"]) == 1 + base["bad_input.depth_size_mismatch"], d
        assert d["depth"] == "ok", d
        assert int(d["frames_with_depth"]) - base["frames_with_depth"] == 2 * len(rgbd), d  # exact + in tolerance
        assert int(d["frames_with_depth"]) + int(d["frames_without_depth"]) == n, d
        # use_depth:=false switches it off at runtime
        assert c.set("use_depth", False).successful
        off = c.output_for(_send_rgbd(c, pub_depth, h))
        assert off.width == 0 or cloud_to_records(off)["depth_used"][0] == 0
        assert c.set("use_depth", True).successful
    log = node.log()
    assert "bad depth image (depth_size_mismatch, seen 1x)" in log and "processed without depth" in log


@pytest.mark.heavy
def test_replay_of_a_bag_with_depth_feeds_the_node_both(node, tmp_path, rgbd):
    """A bag recorded like a RealSense (colour, aligned depth, camera_info) replayed by
    hand_pose_replay: the node receives colour and depth with one stamp and fuses them."""
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.serialization import serialize_message
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore
    from sensor_msgs.msg import PointCloud2

    from ros_helpers import latest_diag

    store = get_typestore(Stores.ROS2_JAZZY)
    bag = tmp_path / "rgbd_bag"
    with Writer(bag, version=9) as w:
        c_img = w.add_connection("/camera/color/image_raw", "sensor_msgs/msg/Image", typestore=store)
        c_depth = w.add_connection("/camera/aligned_depth_to_color/image_raw", "sensor_msgs/msg/Image", typestore=store)
        c_info = w.add_connection("/camera/color/camera_info", "sensor_msgs/msg/CameraInfo", typestore=store)
        for i, h in enumerate(rgbd):
            t = 1_000_000_000 + i * 100_000_000
            img = rgb_to_image_msg(h.rgb)
            img.header.stamp.sec, img.header.stamp.nanosec = 50, i * 100_000_000
            depth = depth_to_image_msg(h.depth_mm)
            depth.header.stamp = img.header.stamp
            info = CameraInfo(width=h.rgb.shape[1], height=h.rgb.shape[0], k=h.K.reshape(-1).tolist())
            w.write(c_info, t, serialize_message(info))
            w.write(c_img, t + 1, serialize_message(img))
            w.write(c_depth, t + 2, serialize_message(depth))
    with listener("bag_listener") as lst:
        joints = lst.collect(PointCloud2, "hand/joints3d")
        diags = lst.collect(DiagnosticArray, "/diagnostics")
        replay = RosProcess("replay_node", ["-p", f"source:={bag}", "-p", "rate_hz:=4.0",
                                            "-p", "reliability:=reliable"], tmp_path / "replay.log")
        try:
            fused = lambda: [m for _, m in joints if m.width and cloud_to_records(m)["depth_used"][0] == 1]  # noqa: E731
            ok = lst.wait_until(lambda: len(fused()) >= 2, 90)
            assert ok, f"node:\n{node.log()[-2000:]}\nreplay:\n{replay.log()[-2000:]}"
        finally:
            assert replay.stop() == 0, replay.log()
        d = latest_diag(diags)
        assert int(d["frames_with_depth"]) >= 2 and d["depth"] == "ok", d
