"""hand_pose_node with a trained model file (parameters ``model`` / ``checkpoint``) over real DDS:
the node runs in a child process; this test publishes a real image and listens."""
from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ros_helpers import RosProcess, diag_values, listener

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402

from hand_pose_core.models import create  # noqa: E402
from hand_pose_core.models.checkpoint import save_model  # noqa: E402
from hand_pose_ros.hand_msgs import cloud_to_records  # noqa: E402
from hand_pose_ros.image_conv import rgb_to_image_msg  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.heavy, pytest.mark.timeout(300)]

REAL_DATA = Path(os.environ.get("HAND_POSE_REAL_DATA",
                                Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"))
STARTUP_S = 120.0
CFG = dict(width=0.25, pretrained=False, ncomps=6)


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("trained")
    torch.manual_seed(0)
    good = save_model(d / "reg.safetensors", create("mano_regressor", **CFG), "mano_regressor", CFG,
                      {"crop_size_px": 96})
    bad = d / "truncated.safetensors"
    bad.write_bytes(good.read_bytes()[:5000])
    return good, bad


def _image():
    p = REAL_DATA / "hands.jpg"
    if not p.is_file():
        pytest.skip(f"real image not found at {p} (../shared/data/real is only on CI/dev machines)")
    return cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)


def _latest_diag(diags) -> dict:
    for _, msg in reversed(diags):
        v = diag_values(msg)
        if v:
            return v
    return {}


def test_node_runs_a_trained_model_refuses_bad_files_and_switches_models(model_files, tmp_path):
    from rclpy.parameter import Parameter
    from rclpy.parameter_client import AsyncParameterClient

    good, bad = model_files
    rgb = _image()
    h, w = rgb.shape[:2]
    node = RosProcess("hand_pose_node", ["-p", "diagnostics_period_s:=0.25", "-p", "image_reliability:=reliable",
                                         "-p", "model:=mano_regressor", "-p", f"checkpoint:={good}"],
                      tmp_path / "node.log")
    try:
        assert node.wait_for_log("ready:", STARTUP_S), node.log()[-3000:]
        with listener("trained_model_listener") as lst:
            joints = lst.collect(PointCloud2, "hand/joints3d")
            diags = lst.collect(DiagnosticArray, "/diagnostics")
            pub = lst.node.create_publisher(Image, "image", 10)
            pub_info = lst.node.create_publisher(CameraInfo, "camera_info", 10)
            # camera_info is not latched: publish only once the node's subscription is matched
            assert lst.wait_until(lambda: pub.get_subscription_count() > 0
                                  and pub_info.get_subscription_count() > 0, 30)
            sec = [200]

            def send_and_wait():
                sec[0] += 1
                for _ in range(3):  # the node reads camera_info best effort: repeat it
                    pub_info.publish(CameraInfo(width=w, height=h, k=[700.0, 0, w / 2, 0, 700.0, h / 2, 0, 0, 1]))
                    time.sleep(0.1)
                msg = rgb_to_image_msg(rgb)
                msg.header.stamp.sec = sec[0]
                msg.header.frame_id = "cam"
                pub.publish(msg)
                s = sec[0]
                assert lst.wait_until(lambda: any(m.header.stamp.sec == s for _, m in joints), 60), node.log()[-2000:]
                return next(m for _, m in joints if m.header.stamp.sec == s)

            msg = send_and_wait()
            rec = cloud_to_records(msg).reshape(-1, 21)
            assert len(rec) == 2 and np.all(rec["calibrated"] == 1)
            xyz = np.stack([rec["x"], rec["y"], rec["z"]], -1)
            assert np.all(xyz[..., 2] > 0.05) and np.all(np.isfinite(xyz))
            # the trained model's lifter ran (its stage time is in the diagnostics)
            assert lst.wait_until(lambda: float(_latest_diag(diags).get("estimator.lifter_ms", 0)) > 0, 10)

            client = AsyncParameterClient(lst.node, "hand_pose_node")
            assert client.wait_for_services(10.0)

            def set_params(params):
                fut = client.set_parameters(params)
                assert lst.wait_until(fut.done, 30.0)
                return fut.result().results

            # a corrupt model file and a file of the wrong model are refused with the reason
            (r,) = set_params([Parameter("checkpoint", Parameter.Type.STRING, str(bad))])
            assert not r.successful and "corrupt or truncated" in r.reason and str(bad) in r.reason
            (r,) = set_params([Parameter("model", Parameter.Type.STRING, "zimmermann_brox")])
            assert not r.successful and "holds a 'mano_regressor' model" in r.reason
            assert node.alive()
            send_and_wait()  # still running the good model
            # back to the built-in model: accepted, rebuilt, no lifter stage any more
            (r,) = set_params([Parameter("model", Parameter.Type.STRING, "mediapipe")])
            assert r.successful, r.reason
            send_and_wait()
            assert node.wait_for_log("estimator rebuilt", 60), node.log()[-2000:]
            n = len(diags)
            assert lst.wait_until(lambda: len(diags) > n + 2, 10)
            assert "estimator.lifter_ms" not in _latest_diag(diags)
            msg = send_and_wait()
            assert msg.width == 42
    finally:
        rc = node.stop()
    assert rc == 0, node.log()[-3000:]


def test_node_refuses_to_start_with_a_corrupt_model_file(model_files, tmp_path):
    _, bad = model_files
    node = RosProcess("hand_pose_node", ["-p", "model:=mano_regressor", "-p", f"checkpoint:={bad}"],
                      tmp_path / "node.log")
    deadline = time.monotonic() + STARTUP_S
    while node.alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    rc = node.stop()
    log = node.log()
    assert rc == 1, log[-2000:]
    assert "failed to start" in log and "corrupt or truncated" in log and str(bad) in log
