"""Checks of ``launch/hand.launch.py``'s arguments, run by the launch file before any process
starts (pure Python: no ``launch``, no ``rclpy``, so it is testable anywhere).

A bad value must stop the launch with a message naming the argument, not start
``hand_pose_node`` and then fail on a later action (which leaves the node running as an orphan
and reports e.g. ``name 'fast' is not defined``).
"""
from __future__ import annotations

import math
import os
import shutil
from typing import Callable, Mapping

__all__ = ["LaunchArgumentError", "BOOL_ARGS", "BACKENDS", "DEVICES", "NODE_PARAMETER_ARGS", "parse_bool",
           "rviz_installed", "validate_launch_arguments"]

# Launch's IfCondition accepts exactly these (case-insensitive).
_TRUE, _FALSE = ("true", "1"), ("false", "0")
BOOL_ARGS = ("replay", "rviz", "shm_profile", "use_depth")
# Same as hand_pose_core.backends.NETWORK_BACKENDS / DEVICES (a test checks it; not imported here so that
# the launch process does not load torch).
BACKENDS = ("torch", "onnxruntime", "tensorrt", "litert", "auto")
DEVICES = ("cpu", "cuda", "auto")
# Launch arguments passed to hand_pose_node as the parameters of the same name when not empty
# (empty: the params file's value stays).
NODE_PARAMETER_ARGS = ("model", "checkpoint", "cameras")
BUILTIN_MODEL = "mediapipe"  # hand_pose_core.pipeline.lifters.BUILTIN_MODEL (not imported: no torch here)


class LaunchArgumentError(ValueError):
    """One or more launch arguments are invalid; the message names each of them."""


def parse_bool(name: str, text: str) -> bool:
    value = str(text).strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise LaunchArgumentError(f"{name}:={text!r} is not a boolean: use true or false")


def rviz_installed() -> bool:
    """True when RViz 2 can be started by launch (package ``rviz2`` in the ament index)."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_prefix
    except ImportError:
        return shutil.which("rviz2") is not None
    try:
        get_package_prefix("rviz2")
    except PackageNotFoundError:
        return False
    return True


def validate_launch_arguments(
    args: Mapping[str, str],
    rviz_available: Callable[[], bool] = rviz_installed,
) -> dict:
    """Check the launch arguments (strings, as launch holds them) and return typed values:
    ``replay``, ``rviz``, ``shm_profile``, ``use_depth`` (bool), ``replay_rate`` (float Hz), ``backend``,
    ``device``, ``params_file``, ``replay_source`` (str), and ``node_parameters``: the non-empty
    ones of ``model``, ``checkpoint``, ``cameras`` (``hand_pose_node`` parameters).

    Raises:
        LaunchArgumentError: naming every bad argument and its value.
    """
    errors: list[str] = []
    out: dict = {}
    for name in BOOL_ARGS:
        try:
            out[name] = parse_bool(name, args.get(name, "false"))
        except LaunchArgumentError as e:
            errors.append(str(e))
    text = str(args.get("replay_rate", "0.0"))
    try:
        rate = float(text)
    except ValueError:
        rate = float("nan")
    if not math.isfinite(rate) or rate < 0:
        errors.append(f"replay_rate:={text!r} is not a rate: use a number of Hz >= 0 (0: the "
                      "source's own rate)")
    out["replay_rate"] = rate
    for name, choices in (("backend", BACKENDS), ("device", DEVICES)):
        value = str(args.get(name, choices[0]))
        if value not in choices:
            errors.append(f"{name}:={value!r} is not one of {', '.join(choices)}")
        out[name] = value
    params_file = str(args.get("params_file", ""))
    if params_file and not os.path.isfile(params_file):
        errors.append(f"params_file:={params_file!r} does not exist")
    out["params_file"] = params_file
    source = str(args.get("replay_source", "builtin")).strip()
    if out.get("replay") and source not in ("", "builtin") and not os.path.exists(source):
        errors.append(f"replay_source:={source!r} does not exist")
    out["replay_source"] = source
    node_params = {name: str(args.get(name, "")).strip() for name in NODE_PARAMETER_ARGS}
    checkpoint, model = node_params["checkpoint"], node_params["model"]
    if checkpoint and not os.path.isfile(checkpoint):
        errors.append(f"checkpoint:={checkpoint!r} does not exist (a model file written by training)")
    if model and model != BUILTIN_MODEL and not checkpoint:
        errors.append(f"model:={model!r} needs checkpoint:=FILE (the model file written by training)")
    if node_params["cameras"]:
        from .params import PARAMS_BY_NAME, check_value  # stdlib only: no rclpy, no torch

        reason = check_value(PARAMS_BY_NAME["cameras"], node_params["cameras"])
        if reason:
            errors.append(f"cameras:={node_params['cameras']!r}: {reason}")
    out["node_parameters"] = {k: v for k, v in node_params.items() if v}
    if out.get("rviz") and not rviz_available():
        errors.append("rviz:=true but RViz 2 (package rviz2) is not installed: install it "
                      "(e.g. apt install ros-jazzy-rviz2) or leave rviz:=false")
    if errors:
        raise LaunchArgumentError("invalid launch argument" + ("s" if len(errors) > 1 else "")
                                  + ": " + "; ".join(errors) + ". No process was started.")
    return out
