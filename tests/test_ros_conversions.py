"""Message conversions, the latest-wins slot, parameters, replay sources: real rclpy message
types and real files, no DDS traffic (fast)."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

pytest.importorskip("rclpy", reason="rclpy (ROS 2) is not installed")

from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointField  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402

from hand_pose_core.types import Hand  # noqa: E402
from hand_pose_ros import consumer_example, hand_msgs, image_conv  # noqa: E402
from hand_pose_ros.latest_slot import LatestSlot  # noqa: E402
from hand_pose_ros.params import PARAMS, check_value  # noqa: E402
from hand_pose_ros.procs import BOOTSTRAP_VAR, REPO_ROOT, ros_child_env  # noqa: E402
from hand_pose_ros.replay_node import parse_intrinsics  # noqa: E402
from hand_pose_ros.replay_sources import ReplaySourceError, open_source  # noqa: E402

RNG = np.random.default_rng(0)


def _img_msg(arr: np.ndarray, encoding: str, pad: int = 0) -> Image:
    h, w = arr.shape[:2]
    row = arr.reshape(h, -1)
    padded = np.concatenate([row, np.full((h, pad), 77, np.uint8)], axis=1) if pad else row
    return Image(height=h, width=w, encoding=encoding, step=padded.shape[1], data=padded.tobytes())


# ----------------------------------------------------------------------------- images in
@pytest.mark.parametrize("pad", [0, 5])
def test_rgb8_bgr8_mono8_rgba8_decode_honouring_step(pad):
    rgb = RNG.integers(0, 255, (7, 9, 3), dtype=np.uint8)
    np.testing.assert_array_equal(image_conv.image_msg_to_rgb(_img_msg(rgb, "rgb8", pad)), rgb)
    np.testing.assert_array_equal(image_conv.image_msg_to_rgb(_img_msg(rgb[:, :, ::-1].copy(), "bgr8", pad)), rgb)
    rgba = np.concatenate([rgb, np.full((7, 9, 1), 9, np.uint8)], axis=2)
    np.testing.assert_array_equal(image_conv.image_msg_to_rgb(_img_msg(rgba, "rgba8", pad)), rgb)
    grey = rgb[:, :, 0].copy()
    out = image_conv.image_msg_to_rgb(_img_msg(grey, "mono8", pad))
    np.testing.assert_array_equal(out, np.repeat(grey[:, :, None], 3, axis=2))


def test_rgb8_without_padding_is_a_zero_copy_view():
    rgb = RNG.integers(0, 255, (4, 6, 3), dtype=np.uint8)
    msg = _img_msg(rgb, "rgb8")
    out = image_conv.image_msg_to_rgb(msg)
    assert not out.flags.owndata and out.shape == (4, 6, 3)


def test_yuv422_decodes_to_grey_for_neutral_chroma():
    h, w, y = 4, 6, 120
    uyvy = np.tile(np.array([128, y, 128, y], np.uint8), (h, w // 2)).reshape(h, w, 2)
    out = image_conv.image_msg_to_rgb(_img_msg(uyvy, "yuv422"))
    assert out.shape == (h, w, 3) and np.all(np.abs(out.astype(int) - out[0, 0, 0]) <= 1)


@pytest.mark.parametrize("make,kind", [
    (lambda: Image(height=4, width=4, encoding="32FC1", step=16, data=bytes(64)), "bad_encoding"),
    (lambda: Image(height=0, width=4, encoding="rgb8", step=12, data=b""), "zero_size"),
    (lambda: Image(height=4, width=4, encoding="rgb8", step=10, data=bytes(40)), "bad_step"),
    (lambda: Image(height=4, width=4, encoding="rgb8", step=12, data=bytes(47)), "bad_data_size"),
    (lambda: Image(height=5000, width=8000, encoding="mono8", step=8000, data=b"\x00"), "too_large"),
])
def test_bad_images_raise_named_errors(make, kind):
    with pytest.raises(image_conv.ImageFormatError) as err:
        image_conv.image_msg_to_rgb(make(), max_pixels=7680 * 4320)
    assert err.value.kind == kind and str(err.value)


def test_compressed_roundtrip_and_errors():
    rgb = np.zeros((32, 48, 3), np.uint8)
    rgb[:, :24] = (200, 30, 30)
    out = image_conv.compressed_msg_to_rgb(image_conv.rgb_to_compressed_msg(rgb))
    assert out.shape == rgb.shape and np.abs(out.astype(int) - rgb).mean() < 8
    with pytest.raises(image_conv.UnsupportedEncodingError, match="neither PNG nor JPEG"):
        image_conv.compressed_msg_to_rgb(CompressedImage(format="jpeg", data=b"not a jpeg at all"))
    with pytest.raises(image_conv.DecodeError):
        image_conv.compressed_msg_to_rgb(CompressedImage(format="jpeg", data=b"\xff\xd8\xff\xe0\x00\x10JFIF"))
    with pytest.raises(image_conv.ZeroSizeImageError):
        image_conv.compressed_msg_to_rgb(CompressedImage(format="jpeg", data=b""))


def test_compressed_size_is_read_from_the_png_and_jpeg_headers():
    import cv2

    rgb = RNG.integers(0, 255, (37, 53, 3), dtype=np.uint8)
    for ext, fmt in ((".png", "png"), (".jpg", "jpeg")):
        data = cv2.imencode(ext, rgb)[1].tobytes()
        assert image_conv.compressed_image_size(data) == (fmt, 53, 37)
    progressive = cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
    assert image_conv.compressed_image_size(progressive) == ("jpeg", 53, 37)


def test_huge_compressed_images_are_refused_from_the_header_before_decoding():
    import time

    from image_fixtures import huge_jpeg, huge_png

    for data in (huge_png(30000, 30000), huge_jpeg(30000, 30000)):
        t0 = time.perf_counter()
        with pytest.raises(image_conv.ImageTooLargeError, match="refused before decoding") as err:
            image_conv.compressed_msg_to_rgb(CompressedImage(format="png", data=data), max_pixels=7680 * 4320)
        assert err.value.kind == "too_large" and "30000x30000" in str(err.value)
        assert time.perf_counter() - t0 < 0.05  # nothing was decoded


def test_rgb_to_image_msg_roundtrip():
    rgb = RNG.integers(0, 255, (5, 3, 3), dtype=np.uint8)
    for enc in ("rgb8", "bgr8"):
        msg = image_conv.rgb_to_image_msg(rgb, encoding=enc)
        assert (msg.step, msg.encoding) == (9, enc)
        np.testing.assert_array_equal(image_conv.image_msg_to_rgb(msg), rgb)
    with pytest.raises(ValueError):
        image_conv.rgb_to_image_msg(rgb[:, :, 0])


# ----------------------------------------------------------------------------- hands out
def _hand(side: str, offset: float, with_mano: bool = True) -> Hand:
    j3 = RNG.normal(0, 0.03, (21, 3)).astype(np.float32) + np.float32([0.0, 0.0, 0.5 + offset])
    verts = RNG.normal(0, 0.03, (778, 3)).astype(np.float32) + np.float32([0.0, 0.0, 0.5])
    faces = RNG.integers(0, 778, (1538, 3)).astype(np.int32)
    return Hand(side=side, score=0.9 - offset, joints_2d=RNG.uniform(0, 100, (21, 2)).astype(np.float32),
                joints_3d=j3, calibrated=(side == "right"), handedness_score=0.8,
                pose=RNG.normal(size=48).astype(np.float32) if with_mano else None,
                shape=RNG.normal(size=10).astype(np.float32) if with_mano else None,
                trans=np.float32([0.01, 0.02, 0.5]) if with_mano else None,
                vertices=verts if with_mano else None, faces=faces if with_mano else None)


def test_joints_cloud_layout_roundtrip_and_consumer_dtype():
    from std_msgs.msg import Header

    hands = [_hand("left", 0.0), _hand("right", 0.1)]
    hands[1].joints_std_m = np.linspace(0.001, 0.021, 21).astype(np.float32)
    hands[1].depth_used = True
    header = Header(frame_id="cam")
    header.stamp.sec, header.stamp.nanosec = 12, 345
    msg = hand_msgs.joints_cloud(hands, header)
    assert (msg.width, msg.height, msg.point_step, msg.row_step) == (42, 1, 40, 42 * 40)
    # the fields of the 32-byte layout kept their offsets; the new ones are appended
    offsets = {f.name: (f.offset, f.datatype) for f in msg.fields}
    assert [offsets[n][0] for n in ("x", "y", "z", "u", "v", "score", "hand_id", "joint_id", "side",
                                    "calibrated", "side_score")] == [0, 4, 8, 12, 16, 20, 24, 25, 26, 27, 28]
    assert offsets["uncertainty_m"] == (32, PointField.FLOAT32) and offsets["depth_used"] == (36, PointField.UINT8)
    assert msg.header.frame_id == "cam" and msg.header.stamp.nanosec == 345
    rec = hand_msgs.cloud_to_records(msg)
    np.testing.assert_allclose(np.stack([rec["x"], rec["y"], rec["z"]], 1)[21:], hands[1].joints_3d)
    np.testing.assert_allclose(np.stack([rec["u"], rec["v"]], 1)[:21], hands[0].joints_2d)
    assert list(rec["side"][::21]) == [0, 1] and list(rec["calibrated"][::21]) == [0, 1]
    assert list(rec["joint_id"][:21]) == list(range(21)) and list(rec["hand_id"][::21]) == [0, 1]
    assert np.isnan(rec["uncertainty_m"][:21]).all()  # the model gave no uncertainty
    np.testing.assert_allclose(rec["uncertainty_m"][21:], hands[1].joints_std_m)
    assert list(rec["depth_used"][::21]) == [0, 1]
    # the consumer example spells the layout out itself: it must read the same thing
    per_hand = consumer_example.hands_from_cloud(msg)
    assert per_hand.shape == (2, 21) and np.isclose(per_hand[1][0]["z"], hands[1].joints_3d[0, 2])
    assert consumer_example.JOINTS_DTYPE == hand_msgs.JOINTS_DTYPE
    lines = consumer_example.format_message(msg)
    assert len(lines) == 2 and "side=left" in lines[0] and "side=right" in lines[1]
    assert "depth_used=0" in lines[0] and "depth_used=1" in lines[1]


def test_empty_cloud_is_the_no_hand_message():
    from std_msgs.msg import Header

    msg = hand_msgs.joints_cloud([], Header(frame_id="cam"))
    assert msg.width == 0 and msg.header.frame_id == "cam" and len(msg.fields) == 13
    assert consumer_example.format_message(msg)[0].endswith("no hand")


def test_cloud_to_records_refuses_a_different_layout():
    from std_msgs.msg import Header

    msg = hand_msgs.joints_cloud([_hand("left", 0.0)], Header())
    msg.fields[0].offset = 4
    with pytest.raises(ValueError, match="layout"):
        hand_msgs.cloud_to_records(msg)


def test_mano_cloud_layout_and_nan_without_fit():
    from std_msgs.msg import Header

    hands = [_hand("right", 0.0), _hand("left", 0.0, with_mano=False)]
    msg = hand_msgs.mano_cloud(hands, Header())
    assert (msg.width, msg.point_step) == (2, 252)
    assert [(f.name, f.offset, f.count) for f in msg.fields][4:] == [("pose", 8, 48), ("shape", 200, 10), ("trans", 240, 3)]
    rec = hand_msgs.cloud_to_records(msg, hand_msgs.MANO_DTYPE)
    np.testing.assert_allclose(rec[0]["pose"], hands[0].pose)
    np.testing.assert_allclose(rec[0]["trans"], hands[0].trans)
    assert rec[0]["side"] == 1 and np.all(np.isnan(rec[1]["pose"]))


def test_markers_and_mesh():
    from std_msgs.msg import Header

    hands = [_hand("left", 0.0), _hand("right", 0.1)]
    sk = hand_msgs.skeleton_markers(hands, Header(frame_id="cam"), lifetime_s=1.5)
    assert sk.markers[0].action == Marker.DELETEALL and len(sk.markers) == 5
    bones = sk.markers[1]
    assert bones.type == Marker.LINE_LIST and len(bones.points) == 40 and bones.header.frame_id == "cam"
    assert bones.lifetime.sec == 1 and bones.lifetime.nanosec == 500_000_000
    mesh = hand_msgs.mesh_markers(hands, Header())
    assert [m.type for m in mesh.markers[1:]] == [Marker.TRIANGLE_LIST] * 2
    assert len(mesh.markers[1].points) == 1538 * 3
    f0 = hands[0].faces[0, 0]
    assert np.isclose(mesh.markers[1].points[0].z, hands[0].vertices[f0, 2])
    assert len(hand_msgs.mesh_markers([], Header()).markers) == 1  # DELETEALL only


def test_fast_mesh_serializer_equals_the_message():
    from rclpy.serialization import deserialize_message, serialize_message
    from std_msgs.msg import Header
    from visualization_msgs.msg import MarkerArray

    def wire(msg):  # what a subscriber gets (float32 colours rounded); CDR padding bytes are unspecified
        return deserialize_message(serialize_message(msg), MarkerArray)

    ser = hand_msgs.MeshMarkerSerializer()
    for hands, sec in (([_hand("left", 0.0), _hand("right", 0.1)], 5), ([_hand("right", 0.0)], 6), ([], 7)):
        for frame in ("cam", "other_frame"):
            header = Header(frame_id=frame)
            header.stamp.sec, header.stamp.nanosec = sec, 250
            got = deserialize_message(ser.serialize(hands, header, 0.5), MarkerArray)
            assert got == wire(hand_msgs.mesh_markers(hands, header, 0.5))
    # new vertices with the cached template
    hands = [_hand("left", 0.0), _hand("right", 0.1)]
    ser.serialize(hands, Header(frame_id="cam"))
    hands[1].vertices = hands[1].vertices + np.float32(0.25)
    got = deserialize_message(ser.serialize(hands, Header(frame_id="cam")), MarkerArray)
    assert got == wire(hand_msgs.mesh_markers(hands, Header(frame_id="cam")))
    assert got.markers[2].points[0].z == pytest.approx(float(hands[1].vertices[hands[1].faces[0, 0], 2]))


# ----------------------------------------------------------------------------- latest-wins slot
def test_latest_slot_keeps_only_the_newest_and_counts_drops():
    slot = LatestSlot()
    for i in range(5):
        slot.put(i)
    assert slot.take(timeout=0.1) == 4 and slot.dropped == 4 and slot.received == 5
    assert slot.take(timeout=0.05) is None


def test_latest_slot_close_wakes_a_waiting_worker():
    slot = LatestSlot()
    got = []
    t = threading.Thread(target=lambda: got.append(slot.take(timeout=10)))
    t.start()
    time.sleep(0.1)
    slot.close()
    t.join(timeout=2)
    assert not t.is_alive() and got == [None]


# ----------------------------------------------------------------------------- parameters
def test_yaml_matches_declared_defaults_and_descriptions():
    data = yaml.safe_load((REPO_ROOT / "config" / "hand_pose.yaml").read_text())
    params = data["hand_pose_node"]["ros__parameters"]
    assert set(params) == {p.name for p in PARAMS}
    for p in PARAMS:
        assert params[p.name] == p.default and type(params[p.name]) is type(p.default), p.name
        assert p.description


def test_check_value_reasons():
    by = {p.name: p for p in PARAMS}
    assert check_value(by["min_detection_score"], 0.7) is None
    assert "<= 1.0" in check_value(by["min_detection_score"], 1.5)
    assert "one of" in check_value(by["image_reliability"], "sometimes")


# ----------------------------------------------------------------------------- replay sources
def _write_images(folder: Path, n: int) -> list[np.ndarray]:
    folder.mkdir()
    imgs = []
    for i in range(n):
        img = np.full((24, 32, 3), 10 * i, np.uint8)
        cv2.imwrite(str(folder / f"f{i:03d}.png"), img)
        imgs.append(img)
    return imgs


def test_folder_and_still_sources(tmp_path):
    _write_images(tmp_path / "imgs", 3)
    src = open_source(tmp_path / "imgs")
    frames = list(src) + list(src)  # iterating again restarts: that is the loop
    assert len(frames) == 6 and frames[3].msg.width == 32
    assert [image_conv.image_msg_to_rgb(f.msg)[0, 0, 0] for f in frames[:3]] == [0, 10, 20]
    still = open_source(tmp_path / "imgs" / "f001.png", compressed=True)
    (frame,) = list(still)
    assert isinstance(frame.msg, CompressedImage)


def test_video_source(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 12.0, (64, 48))
    for i in range(5):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    src = open_source(path)
    assert src.native_rate_hz == pytest.approx(12.0)
    frames = list(src)
    assert len(frames) == 5 and (frames[0].msg.width, frames[0].msg.height) == (64, 48)


def test_bag_source_reads_images_and_camera_info(tmp_path):
    from rclpy.serialization import serialize_message
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    bag = tmp_path / "bag"
    with Writer(bag, version=9) as w:
        c_img = w.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=store)
        c_info = w.add_connection("/cam/camera_info", "sensor_msgs/msg/CameraInfo", typestore=store)
        for i in range(4):
            t = 1_000_000_000 + i * 50_000_000
            info = CameraInfo(width=32, height=24, k=[100.0, 0, 16, 0, 100.0, 12, 0, 0, 1])
            w.write(c_info, t, serialize_message(info))
            img = image_conv.rgb_to_image_msg(np.full((24, 32, 3), i, np.uint8))
            w.write(c_img, t + 1, serialize_message(img))
    src = open_source(bag)
    frames = list(src)
    assert len(frames) == 4 and src.image_topic == "/cam/image_raw"
    assert [round(f.t_s, 3) for f in frames] == [0.0, 0.05, 0.1, 0.15]
    assert frames[2].camera_info.k[0] == 100.0
    assert image_conv.image_msg_to_rgb(frames[3].msg)[0, 0, 0] == 3
    with pytest.raises(ReplaySourceError, match="no image topic"):
        open_source(bag, bag_image_topic="/other")


def test_bag_source_pairs_colour_with_aligned_depth(tmp_path):
    from rclpy.serialization import serialize_message
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    bag = tmp_path / "bag"
    with Writer(bag, version=9) as w:
        # the depth topic comes first: it must not be taken for the colour image
        c_depth = w.add_connection("/cam/aligned_depth_to_color/image_raw", "sensor_msgs/msg/Image", typestore=store)
        c_img = w.add_connection("/cam/color/image_raw", "sensor_msgs/msg/Image", typestore=store)
        for i in range(4):
            t = 1_000_000_000 + i * 50_000_000
            img = image_conv.rgb_to_image_msg(np.full((24, 32, 3), i, np.uint8))
            img.header.stamp.sec, img.header.stamp.nanosec = 7, i * 50_000_000
            depth = image_conv.depth_to_image_msg(np.full((24, 32), 500 + i, np.uint16))
            depth.header.stamp.sec, depth.header.stamp.nanosec = 7, i * 50_000_000 + 3_000_000  # 3 ms later
            if i == 2:
                continue  # frame 2 has no depth (a dropped depth frame)
            # depth recorded after its colour image for even frames, before it for odd ones
            first, second = ((c_img, img), (c_depth, depth)) if i % 2 == 0 else ((c_depth, depth), (c_img, img))
            w.write(first[0], t, serialize_message(first[1]))
            w.write(second[0], t + 1, serialize_message(second[1]))
        img = image_conv.rgb_to_image_msg(np.full((24, 32, 3), 2, np.uint8))
        img.header.stamp.sec, img.header.stamp.nanosec = 7, 100_000_000
        w.write(c_img, 1_100_000_000, serialize_message(img))
    src = open_source(bag)
    assert src.image_topic == "/cam/color/image_raw" and src.depth_topic == "/cam/aligned_depth_to_color/image_raw"
    frames = sorted(list(src), key=lambda f: f.msg.header.stamp.nanosec)
    assert len(frames) == 4
    for i, f in enumerate(frames):
        assert image_conv.image_msg_to_rgb(f.msg)[0, 0, 0] == i
        if i == 2:
            assert f.depth is None
        else:
            assert image_conv.depth_msg_to_array(f.depth)[0, 0] == 500 + i
    assert all(f.depth is None for f in open_source(bag, bag_depth_topic="none"))
    with pytest.raises(ReplaySourceError, match="for depth"):
        open_source(bag, bag_depth_topic="/nope")


def test_depth_msg_roundtrip_and_errors():
    mm = RNG.integers(0, 5000, (5, 7)).astype(np.uint16)
    np.testing.assert_array_equal(image_conv.depth_msg_to_array(image_conv.depth_to_image_msg(mm)), mm)
    m = RNG.uniform(0.2, 2.0, (5, 7)).astype(np.float32)
    np.testing.assert_array_equal(image_conv.depth_msg_to_array(image_conv.depth_to_image_msg(m)), m)
    big = Image(height=2, width=2, encoding="16UC1", step=6, is_bigendian=1,
                data=bytes([1, 2, 0, 0, 9, 9, 0, 3, 0, 4, 9, 9]))  # big-endian, padded rows
    np.testing.assert_array_equal(image_conv.depth_msg_to_array(big), [[258, 0], [3, 4]])
    with pytest.raises(image_conv.UnsupportedEncodingError, match="16UC1"):
        image_conv.depth_msg_to_array(Image(height=2, width=2, encoding="rgb8", step=6, data=bytes(12)))
    with pytest.raises(image_conv.DataSizeMismatchError):
        image_conv.depth_msg_to_array(Image(height=2, width=2, encoding="32FC1", step=8, data=bytes(15)))


@pytest.mark.parametrize("make", [
    lambda p: p / "missing.mp4",
    lambda p: (p / "empty").mkdir() or p / "empty",
    lambda p: (p / "bad.jpg").write_bytes(b"nope") and p / "bad.jpg",
    lambda p: (p / "bad.mp4").write_bytes(b"nope") and p / "bad.mp4",
])
def test_bad_sources_raise(tmp_path, make):
    with pytest.raises(ReplaySourceError):
        open_source(make(tmp_path))


def test_parse_intrinsics():
    K = parse_intrinsics("600,610,320,240", 640, 480)
    assert K[0, 0] == 600 and K[1, 1] == 610 and K[1, 2] == 240
    assert parse_intrinsics("", 640, 480) is None
    assert parse_intrinsics("default", 640, 480)[0, 0] == pytest.approx(1.2 * 640)
    for bad in ("600,600,320", "a,b,c,d", "0,600,320,240", "nan,600,320,240"):
        with pytest.raises(ValueError):
            parse_intrinsics(bad, 640, 480)


# ----------------------------------------------------------------------------- child env
def test_child_env_strips_bootstrap_guard_from_another_venv_only():
    import sys

    own = {"LD_LIBRARY_PATH": f"{sys.prefix}/lib", BOOTSTRAP_VAR: "1", "ROS_DOMAIN_ID": "3"}
    env = ros_child_env(42, base=own)
    assert env[BOOTSTRAP_VAR] == "1" and env["ROS_DOMAIN_ID"] == "42"
    assert env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert env["FASTRTPS_DEFAULT_PROFILES_FILE"].endswith("fastdds_shm_large_images.xml")
    other = {"LD_LIBRARY_PATH": "/elsewhere/venv/lib", BOOTSTRAP_VAR: "1"}
    assert BOOTSTRAP_VAR not in ros_child_env(42, base=other)


def test_stamped_buffer_matches_by_stamp_and_waits_for_a_late_one():
    from hand_pose_ros.latest_slot import StampedBuffer

    buf = StampedBuffer(size=3)
    for k in range(5):
        buf.put(k * 1000, f"d{k}")
    assert buf.received == 5
    assert buf.match(4000, 0) == "d4" and buf.match(3010, 20) == "d3"
    assert buf.match(1000, 20) is None  # dropped: only the newest 3 are kept (latest wins)
    assert buf.match(3500, 20, wait_s=1.0) is None  # a newer one is here: no wait
    t0 = time.monotonic()
    threading.Timer(0.1, buf.put, (9000, "late")).start()
    assert buf.match(9005, 10, wait_s=2.0) == "late"  # arrived after the colour image
    assert 0.05 < time.monotonic() - t0 < 1.5
    t0 = time.monotonic()
    assert buf.match(20000, 10, wait_s=0.1) is None and time.monotonic() - t0 < 1.0
