"""hand_pose_node serving two cameras (parameter ``cameras``) over real DDS: the node runs in a
child process, this test publishes two real 30 Hz streams ('wrist': the shared video, 'head':
the two-hand photo) with their own stamps, frame ids and intrinsics, and checks each camera's
outputs and that every cycle was one estimator call with one landmark batch over both cameras
(the estimator's own counters, reported in /diagnostics)."""
from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from ros_helpers import REAL_DATA, REAL_VIDEO, RosProcess, listener

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402

from hand_pose_core.camera import project  # noqa: E402
from hand_pose_ros.hand_msgs import cloud_to_records  # noqa: E402
from hand_pose_ros.image_conv import rgb_to_image_msg  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.timeout(300)]

STARTUP_S = 120.0
RATE_HZ = 30.0
RUN_S = 12.0  # publishing time after both cameras were first answered


def _statuses(msg) -> dict:
    return {s.name: {kv.key: kv.value for kv in s.values} | {"_level": s.level} for s in msg.status}


def _camera_streams():
    if not REAL_VIDEO.is_file() or not (REAL_DATA / "hands.jpg").is_file():
        pytest.skip(f"real footage not found at {REAL_DATA} (../shared/data/real is only on CI/dev machines)")
    from hand_pose_core.frames import read_video_rgb

    video = read_video_rgb(REAL_VIDEO)[:120:2]
    photo = cv2.cvtColor(cv2.imread(str(REAL_DATA / "hands.jpg")), cv2.COLOR_BGR2RGB)
    head = [np.roll(photo, 2 * i, axis=1) for i in range(len(video))]
    vh, vw = video[0].shape[:2]
    ph, pw = photo.shape[:2]
    return {
        # name: (frames, K, frame_id)
        "wrist": (video, np.array([[1296.0, 0, (vw - 1) / 2], [0, 1296.0, (vh - 1) / 2], [0, 0, 1]]), "wrist_optical"),
        "head": (head, np.array([[700.0, 0, (pw - 1) / 2], [0, 700.0, (ph - 1) / 2], [0, 0, 1]]), "head_optical"),
    }


@pytest.mark.heavy
def test_two_cameras_at_30hz_each_answered_on_its_namespace_with_its_own_header_in_shared_batches(tmp_path):
    streams = _camera_streams()
    node = RosProcess("hand_pose_node", ["-p", "cameras:=[wrist,head]", "-p", "diagnostics_period_s:=0.25"],
                      tmp_path / "node.log")
    try:
        assert node.wait_for_log("ready:", STARTUP_S), f"hand_pose_node did not start:\n{node.log()[-3000:]}"
        assert "/wrist/image" in node.log() and "/head/image" in node.log()
        with listener("multicam_test") as lst:
            out = {name: lst.collect(PointCloud2, f"{name}/hand/joints3d") for name in streams}
            diags = lst.collect(DiagnosticArray, "/diagnostics")
            qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
            pubs = {name: (lst.node.create_publisher(Image, f"{name}/image", qos),
                           lst.node.create_publisher(CameraInfo, f"{name}/camera_info", qos)) for name in streams}
            assert lst.wait_until(lambda: all(p.get_subscription_count() > 0 and i.get_subscription_count() > 0
                                              for p, i in pubs.values()), 30), "the node's subscriptions not matched"
            assert lst.node.count_subscribers("/image") == 0 and lst.node.count_publishers("/hand/joints3d") == 0
            msgs = {name: [rgb_to_image_msg(f) for f in frames] for name, (frames, _, _) in streams.items()}
            sent: dict[str, set] = {name: set() for name in streams}
            stop = threading.Event()

            def publish_loop():
                i = 0
                t_next = time.monotonic()
                while not stop.is_set():
                    now_ns = lst.node.get_clock().now().nanoseconds
                    for offset_ns, (name, (frames, K, frame_id)) in zip((0, 1_000_000), streams.items()):
                        msg = msgs[name][i % len(frames)]
                        stamp_ns = now_ns + offset_ns  # the cameras' own, distinct stamps
                        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
                        msg.header.frame_id = frame_id
                        info = CameraInfo(header=msg.header, width=msg.width, height=msg.height,
                                          k=K.reshape(-1).tolist())
                        pubs[name][1].publish(info)
                        pubs[name][0].publish(msg)
                        sent[name].add((msg.header.stamp.sec, msg.header.stamp.nanosec, frame_id))
                    i += 1
                    t_next += 1.0 / RATE_HZ
                    time.sleep(max(0.0, t_next - time.monotonic()))

            publisher = threading.Thread(target=publish_loop, daemon=True)
            publisher.start()
            try:
                answered = lst.wait_until(lambda: all(any(m.width > 0 for _, m in out[n]) for n in streams), 90)
                assert answered, f"not both cameras answered: { {n: len(v) for n, v in out.items()} }\n{node.log()[-3000:]}"
                time.sleep(RUN_S)
            finally:
                stop.set()
                publisher.join(timeout=5)
            time.sleep(1.0)  # the last outputs and a diagnostics period
            with_hands = {n: [m for _, m in out[n] if m.width > 0] for n in streams}
            last_diag = _statuses(diags[-1][1])
            # a broken frame on one camera is that camera's problem: counted in its status only
            bad = Image(height=4, width=4, encoding="32FC1", step=16, data=bytes(64))

            def head_bad_count():
                if not diags:
                    return 0
                st = _statuses(diags[-1][1]).get("hand_pose_node: camera head", {})
                return int(st.get("bad_input.bad_encoding", 0))

            for _ in range(30):  # best effort: resend until the node counted it
                pubs["head"][0].publish(bad)
                if lst.wait_until(lambda: head_bad_count() >= 1, 0.5):
                    break
            bad_diag = _statuses(diags[-1][1])
    finally:
        rc = node.stop()
    assert rc == 0, f"hand_pose_node exited with {rc}:\n{node.log()[-3000:]}"

    for name, (frames, K, frame_id) in streams.items():
        other = next(n for n in streams if n != name)
        assert len(with_hands[name]) >= 5, (name, len(with_hands[name]), node.log()[-2000:])
        for msg in with_hands[name]:
            key = (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id)
            # each output carries the header of its own camera's image, on its own namespace
            assert msg.header.frame_id == frame_id and key in sent[name] and key not in sent[other], key
            rec = cloud_to_records(msg).reshape(-1, 21)
            for hand in rec:
                xyz = np.stack([hand["x"], hand["y"], hand["z"]], axis=1).astype(np.float64)
                uv = np.stack([hand["u"], hand["v"]], axis=1)
                assert np.all(hand["calibrated"] == 1), name
                assert np.all((xyz[:, 2] > 0.1) & (xyz[:, 2] < 3.0)), (name, xyz[:, 2])
                # placed with this camera's own K: the 3D joints project onto its 2D joints
                err = np.linalg.norm(project(xyz, K) - uv, axis=1)
                extent = np.linalg.norm(uv.max(axis=0) - uv.min(axis=0))
                assert np.median(err) < 0.2 * extent, (name, err, extent)
    assert max(len(rec) for rec in (cloud_to_records(m).reshape(-1, 21) for m in with_hands["head"])) == 2

    head_status, wrist_status = bad_diag["hand_pose_node: camera head"], bad_diag["hand_pose_node: camera wrist"]
    assert int(head_status["bad_input.bad_encoding"]) >= 1 and head_status["_level"] in (1, b"\x01"), head_status
    assert "bad_input.bad_encoding" not in wrist_status, wrist_status
    assert "camera 'head': dropped frame (bad_encoding, seen 1x)" in node.log()
    pipeline = last_diag["hand_pose_node: pipeline"]
    cams = {n: last_diag[f"hand_pose_node: camera {n}"] for n in streams}
    cycles = int(pipeline["cycles"])
    for n, d in cams.items():
        assert d["camera_info"] == "ok" and int(d["frames_processed"]) >= len(with_hands[n]), (n, d)
        assert float(d["latency_ms_p50"]) > 0, d
        assert d["depth"] == f"none received on '/{n}/depth'", d  # each camera's own depth topic
        assert d["input_topic"] == f"/{n}/image" and d["output_topic"] == f"/{n}/hand/joints3d", d
    # one estimator call per cycle, for the frames of both cameras
    assert int(pipeline["estimator.calls"]) == cycles, pipeline
    assert int(pipeline["estimator.images"]) == sum(int(d["frames_processed"]) for d in cams.values()), (pipeline, cams)
    multi = int(pipeline["cycles_multi_camera"])
    assert multi >= 0.8 * cycles, pipeline  # both cameras' frames were processed together
    # ... and in those cycles the hand crops of both cameras went through the landmark network
    # in one call (per pass): never a separate call per camera
    assert int(pipeline["estimator.landmark_calls_multi_image"]) >= 0.8 * multi, pipeline
    # at most one call per pass (refine_passes 1: a second for re-framed crops) per cycle
    assert int(pipeline["estimator.landmark_calls"]) <= 2 * cycles, pipeline
    print(f"\ntwo cameras at {RATE_HZ:.0f} Hz: {cycles} cycles ({multi} with both cameras), "
          f"estimator_ms_p50 {pipeline['estimator_ms_p50']}, landmark calls {pipeline['estimator.landmark_calls']} "
          f"({pipeline['estimator.landmark_calls_multi_image']} with both cameras' crops); outputs with hands: "
          + ", ".join(f"{n} {len(v)}" for n, v in with_hands.items()) + "; per camera: "
          + "; ".join(f"{n}: received {d['frames_received']} dropped {d['frames_dropped_latest_wins']} "
                      f"latency_p50 {d['latency_ms_p50']} ms" for n, d in cams.items()))


# ----------------------------------------------------------------------------- fast checks
def test_camera_namespaces_are_checked():
    from hand_pose_ros.params import PARAMS_BY_NAME, check_value

    p = PARAMS_BY_NAME["cameras"]
    assert p.default == [] and p.read_only
    assert check_value(p, ["wrist", "head", "arm/wrist_2"]) is None
    assert "once" in check_value(p, ["wrist", "wrist"])
    for bad in ("/wrist", "2cam", "wr ist", "", "arm//wrist", "wrist/"):
        assert "not a relative ROS namespace" in check_value(p, [bad]), bad


def test_shared_condition_wakes_one_worker_for_any_camera_slot():
    from hand_pose_ros.latest_slot import LatestSlot

    cond = threading.Condition()
    a, b = LatestSlot(cond), LatestSlot(cond)
    got = []

    def worker():
        with cond:
            cond.wait_for(lambda: a.has_item or b.has_item, 5.0)
        got.append((a.take_nowait(), b.take_nowait()))

    t = threading.Thread(target=worker)
    t.start()
    time.sleep(0.1)
    b.put("b1")
    t.join(timeout=2)
    assert got == [(None, "b1")] and not b.has_item
    a.put("a1")
    a.put("a2")  # latest wins per camera
    assert a.take_nowait() == "a2" and a.dropped == 1 and a.take_nowait() is None
    a.close()
    a.put("late")
    assert a.take_nowait() is None


def test_node_refuses_a_bad_camera_list_and_says_why(tmp_path):
    node = RosProcess("hand_pose_node", ["-p", "cameras:=[wrist,wrist]"], tmp_path / "node.log")
    try:
        node.proc.wait(timeout=120)
    finally:
        rc = node.stop()
    assert rc == 1, node.log()[-2000:]
    assert "cameras: every namespace must appear once" in node.log()


def test_camera_inputs_over_dds_compressed_topics_gather_and_latest_wins():
    """MultiCameraInputs on a real rclpy node, fed over DDS from another participant (no
    estimator): compressed topics per namespace, one cycle gathers the frames of both cameras
    (waiting for a streaming camera's frame that is on its way), a silent camera is not waited
    for, each camera keeps only its newest frame."""
    from sensor_msgs.msg import CompressedImage

    from hand_pose_ros.camera_inputs import MultiCameraInputs

    def frame(sec: int) -> CompressedImage:
        ok, jpg = cv2.imencode(".jpg", np.full((8, 8, 3), 100, np.uint8))
        msg = CompressedImage(format="jpeg", data=jpg.tobytes())
        msg.header.stamp.sec = sec
        return msg

    with listener("camera_inputs_host") as host, listener("camera_inputs_publisher") as cams:
        cfg = {"image_transport": "compressed", "cameras_wait_s": 3.0}
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        multi = MultiCameraInputs(host.node, ["wrist", "arm/head"], cfg, qos, qos, qos, qos)
        assert [c.image_topic for c in multi.cameras] == ["/wrist/image/compressed", "/arm/head/image/compressed"]
        assert [c.pub_joints.topic_name for c in multi.cameras] == ["/wrist/hand/joints3d", "/arm/head/hand/joints3d"]
        pubs = {n: cams.node.create_publisher(CompressedImage, f"{n}/image/compressed", qos) for n in ("wrist", "arm/head")}
        assert cams.wait_until(lambda: all(p.get_subscription_count() > 0 for p in pubs.values()), 20)

        def stamps(items):
            return {c.ns: item[0].header.stamp.sec for c, item in items}

        # the first frame of 'arm/head': no other camera streams, nothing to wait for
        pubs["arm/head"].publish(frame(2))
        assert stamps(multi.take(10.0)) == {"arm/head": 2}
        # both stream: 'arm/head's next frame is on its way when 'wrist's arrives: the cycle
        # waits for it (at most cameras_wait_s) and takes both
        later = threading.Timer(0.1, lambda: pubs["arm/head"].publish(frame(4)))
        pubs["wrist"].publish(frame(3))
        later.start()
        assert stamps(multi.take(10.0)) == {"wrist": 3, "arm/head": 4}
        later.join()
        # 'arm/head' went silent (nothing for longer than 0.5 s): not waited for
        time.sleep(0.8)
        t0 = time.monotonic()
        pubs["wrist"].publish(frame(5))
        assert stamps(multi.take(10.0)) == {"wrist": 5} and time.monotonic() - t0 < 0.9 * cfg["cameras_wait_s"]
        # latest wins per camera: two frames before a cycle, the newer one is taken, one dropped
        head = multi.cameras[1]
        n, dropped = head.slot.received, head.slot.dropped
        for k, sec in enumerate((6, 7)):  # each delivered before the next (the DDS queue is depth 1 too)
            pubs["arm/head"].publish(frame(sec))
            assert host.wait_until(lambda: head.slot.received == n + k + 1, 10)
        assert stamps(multi.take(10.0)) == {"arm/head": 7} and head.slot.dropped == dropped + 1
        multi.close()
        assert multi.take(0.1) is None
