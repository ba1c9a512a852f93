"""``--help`` for the node executables: print what the node does, its topics and parameters, and
exit, instead of starting to publish (ROS executables otherwise ignore unknown arguments)."""
from __future__ import annotations

import sys
import textwrap


def help_requested(args=None) -> bool:
    """True when ``-h``/``--help`` is among the non-ROS arguments (those before ``--ros-args``)."""
    from rclpy.utilities import remove_ros_args

    argv = list(sys.argv if args is None else args)
    return any(a in ("-h", "--help") for a in remove_ros_args(argv)[1:])


def usage(prog: str, summary: str, topics: list[tuple[str, str]], params) -> str:
    """Usage text: ``params`` are (name, default, description) triples."""
    lines = [f"usage: {prog} [-h] [--ros-args [-p NAME:=VALUE ...] [-r FROM:=TO ...] [--params-file FILE]]",
             "", summary, "", "topics:"]
    lines += [f"  {name:<25} {what}" for name, what in topics]
    lines += ["", "parameters (-p NAME:=VALUE; defaults in brackets):"]
    for name, default, description in params:
        lines.append(f"  {name} [{default!r}]")
        lines += textwrap.wrap(description, 88, initial_indent=" " * 6, subsequent_indent=" " * 6)
    lines += ["", "See docs/ros.md for the message contracts, bad-input handling and the launch file."]
    return "\n".join(lines)
