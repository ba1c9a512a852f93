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
