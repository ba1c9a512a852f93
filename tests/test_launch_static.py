"""Static checks of launch/hand.launch.py: ``launch``/``launch_ros`` are not installable from the
registries here, so instead of running it we check that every executable, parameter, launch
argument and file it names exists and is installed by setup.py."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch" / "hand.launch.py"


def _tree() -> ast.Module:
    return ast.parse(LAUNCH.read_text(), filename=str(LAUNCH))


def _calls(tree, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == name]


def _kw(call: ast.Call, key: str):
    for kw in call.keywords:
        if kw.arg == key:
            return kw.value
    return None


def _console_scripts() -> set[str]:
    text = (ROOT / "setup.py").read_text()
    return set(re.findall(r'"\s*([\w\-]+)\s*=\s*[\w.]+:\w+\s*"', text))


def test_launch_file_compiles_and_defines_generate_launch_description():
    tree = _tree()
    compile(tree, str(LAUNCH), "exec")
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)


def test_every_hand_pose_executable_is_a_console_script_and_module():
    scripts = _console_scripts()
    nodes = [c for c in _calls(_tree(), "Node") if isinstance(_kw(c, "package"), ast.Name)]  # package=PACKAGE
    executables = {_kw(c, "executable").value for c in nodes}
    assert executables == {"hand_pose_node", "hand_pose_replay"}
    for exe in executables:
        assert exe in scripts, f"{exe} is not a console script in setup.py"
    setup = (ROOT / "setup.py").read_text()
    for exe in executables:
        module = re.search(rf"{exe}\s*=\s*([\w.]+):main", setup).group(1)
        assert (ROOT / (module.replace(".", "/") + ".py")).is_file(), module


def test_every_launch_configuration_is_declared():
    tree = _tree()
    declared = {c.args[0].value for c in _calls(tree, "DeclareLaunchArgument")}
    used = {c.args[0].value for c in _calls(tree, "LaunchConfiguration") if isinstance(c.args[0], ast.Constant)}
    assert used <= declared, f"undeclared launch arguments: {used - declared}"
    # the arguments the launch file validates and reads are exactly the declared ones
    checked = next(n.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "ARGUMENTS")
    assert {e.value for e in checked.elts} == declared
    assert {"image", "camera_info", "params_file", "backend", "device", "replay", "replay_source", "rviz"} <= declared


def test_node_parameters_named_in_launch_exist():
    pytest.importorskip("rclpy", reason="rclpy (ROS 2) is not installed")
    from hand_pose_ros.params import PARAMS
    from hand_pose_ros.replay_node import _PARAMS as REPLAY_PARAMS

    known = {"hand_pose_node": {p.name for p in PARAMS}, "hand_pose_replay": {p[0] for p in REPLAY_PARAMS}}
    for call in _calls(_tree(), "Node"):
        exe = _kw(call, "executable").value
        params = _kw(call, "parameters")
        if exe not in known or params is None:
            continue
        for item in params.elts:
            if isinstance(item, ast.Dict):
                names = {k.value for k in item.keys}
                assert names <= known[exe], f"{exe}: unknown parameters {names - known[exe]}"


def test_files_named_in_launch_exist_and_are_installed():
    text = LAUNCH.read_text()
    named = set(re.findall(r'os\.path\.join\(share,\s*"(\w+)",\s*"([\w.]+)"\)', text))
    assert ("config", "hand_pose.yaml") in named and ("config", "fastdds_shm_large_images.xml") in named
    setup = (ROOT / "setup.py").read_text()
    for folder, name in named:
        assert (ROOT / folder / name).is_file(), f"{folder}/{name} is missing"
        suffix = name.rsplit(".", 1)[-1]
        assert f'glob("{folder}/*.{suffix}")' in setup, f"setup.py does not install {folder}/*.{suffix}"
    assert 'glob("launch/*.launch.py")' in setup


def test_remapped_topics_are_the_ones_the_nodes_use():
    text = LAUNCH.read_text()
    node_src = (ROOT / "hand_pose_ros" / "hand_pose_node.py").read_text()
    for topic in ("image", "image/compressed", "camera_info"):
        assert f'("{topic}",' in text
        assert f'"{topic}"' in node_src


def test_launch_runs_where_launch_is_installed():
    launch = pytest.importorskip("launch", reason="the 'launch' package is not installable here (see docs/ros.md)")
    pytest.importorskip("launch_ros")
    import importlib.util

    spec = importlib.util.spec_from_file_location("hand_launch", LAUNCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert isinstance(mod.generate_launch_description(), launch.LaunchDescription)


def test_docs_list_every_node_parameter():
    pytest.importorskip("rclpy", reason="rclpy (ROS 2) is not installed")
    from hand_pose_ros.params import PARAMS
    from hand_pose_ros.replay_node import _PARAMS as REPLAY_PARAMS

    docs = (ROOT / "docs" / "ros.md").read_text()
    missing = [p.name for p in PARAMS if f"| `{p.name}` |" not in docs]
    missing += [p[0] for p in REPLAY_PARAMS if f"| `{p[0]}` |" not in docs]
    assert not missing, f"docs/ros.md does not document: {missing}"
