"""hand_pose_ros.launch_args: the launch file's argument checks (pure Python, fast)."""
import pytest

from hand_pose_ros.launch_args import (
    BACKENDS,
    DEVICES,
    LaunchArgumentError,
    validate_launch_arguments,
)

GOOD = {"image": "image", "camera_info": "camera_info", "params_file": "", "backend": "onnxruntime",
        "device": "cpu", "replay": "false", "replay_source": "builtin", "replay_rate": "0.0",
        "rviz": "false", "shm_profile": "true"}


def _check(**changes):
    return validate_launch_arguments({**GOOD, **changes}, rviz_available=lambda: False)


def test_good_arguments_are_typed():
    cfg = _check(replay="True", replay_rate="12.5", rviz="0", shm_profile="1")
    assert cfg["replay"] is True and cfg["rviz"] is False and cfg["shm_profile"] is True
    assert cfg["replay_rate"] == 12.5
    assert validate_launch_arguments({**GOOD, "rviz": "true"}, rviz_available=lambda: True)["rviz"]


@pytest.mark.parametrize("name,value,needle", [
    ("rviz", "maybe", "rviz:='maybe'"),
    ("replay", "yes", "replay:='yes'"),
    ("shm_profile", "", "shm_profile:=''"),
    ("replay_rate", "fast", "replay_rate:='fast'"),
    ("replay_rate", "-1", "replay_rate:='-1'"),
    ("replay_rate", "nan", "replay_rate:='nan'"),
    ("replay_rate", "inf", "replay_rate:='inf'"),
    ("backend", "tensorflow", "backend:='tensorflow'"),
    ("device", "gpu", "device:='gpu'"),
    ("params_file", "/nonexistent/params.yaml", "params_file:='/nonexistent/params.yaml'"),
    ("rviz", "true", "rviz:=true but RViz 2"),
])
def test_each_bad_argument_is_named(name, value, needle):
    with pytest.raises(LaunchArgumentError) as exc:
        _check(**{name: value})
    assert needle in str(exc.value) and "No process was started" in str(exc.value)


def test_all_bad_arguments_reported_at_once_and_replay_source_checked():
    with pytest.raises(LaunchArgumentError) as exc:
        _check(rviz="maybe", replay="true", replay_rate="fast", replay_source="/nonexistent.mp4")
    msg = str(exc.value)
    assert "rviz:='maybe'" in msg and "replay_rate:='fast'" in msg and "replay_source" in msg
    _check(replay="false", replay_source="/nonexistent.mp4")  # not used without replay


def test_choices_match_the_backends():
    from hand_pose_core.backends import NETWORK_BACKENDS as CORE_BACKENDS
    from hand_pose_core.backends import DEVICES as CORE_DEVICES

    assert tuple(BACKENDS) == tuple(CORE_BACKENDS) and tuple(DEVICES) == tuple(CORE_DEVICES)
    from hand_pose_core.pipeline.lifters import BUILTIN_MODEL as CORE_BUILTIN_MODEL
    from hand_pose_ros.launch_args import BUILTIN_MODEL

    assert BUILTIN_MODEL == CORE_BUILTIN_MODEL  # copied, so that launch does not import torch


def test_model_checkpoint_and_cameras_become_node_parameters_when_given(tmp_path):
    from hand_pose_ros.params import PARAMS_BY_NAME

    assert _check()["node_parameters"] == {}  # empty: the params file's values stay
    model_file = tmp_path / "m.safetensors"
    model_file.write_bytes(b"x")  # existence only: the node checks the file itself
    cfg = _check(model="mano_regressor", checkpoint=str(model_file), cameras="head, wrist")
    assert cfg["node_parameters"] == {"model": "mano_regressor", "checkpoint": str(model_file),
                                      "cameras": "head, wrist"}
    assert set(cfg["node_parameters"]) <= set(PARAMS_BY_NAME)
    assert _check(model="mediapipe")["node_parameters"] == {"model": "mediapipe"}


@pytest.mark.parametrize("changes,needle", [
    ({"checkpoint": "/nonexistent/m.safetensors"}, "checkpoint:='/nonexistent/m.safetensors' does not exist"),
    ({"model": "mano_regressor"}, "model:='mano_regressor' needs checkpoint:=FILE"),
    ({"cameras": "head,2wrist"}, "cameras:='head,2wrist'"),
    ({"cameras": "a,a"}, "duplicates"),
])
def test_bad_model_checkpoint_and_cameras_are_named(changes, needle):
    with pytest.raises(LaunchArgumentError) as exc:
        _check(**changes)
    assert needle in str(exc.value) and "No process was started" in str(exc.value)
