"""The main job in one command, no camera and no arguments: replay -> hand_pose_node -> consumer.

Starts the three as child processes (what ``launch/hand.launch.py`` does where ``ros2 launch``
exists), on loopback discovery with the shipped Fast DDS large-image profile, prints every
consumer line, stops everything after ``--duration`` seconds and exits non-zero when no hand
was received. Console script ``hand_pose_demo``::

    hand_pose_demo                       # built-in sample photo, ~20 s
    hand_pose_demo --source video.mp4 --duration 30 --rate 15 -p backend:=onnxruntime
"""
from __future__ import annotations

import argparse
import os
import queue
import signal
import subprocess
import sys
import threading
import time

from hand_pose_ros.procs import module_cmd, ros_child_env, share_file, unique_domain_id


def _pump(name: str, stream, out: queue.Queue) -> None:
    for line in iter(stream.readline, ""):
        out.put((name, line.rstrip("\n")))
    out.put((name, None))


def _stop(procs: dict[str, subprocess.Popen], grace_s: float = 5.0) -> None:
    for p in procs.values():
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    deadline = time.monotonic() + grace_s
    for p in procs.values():
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _prepare_models(source: str, node_overrides: list[str]) -> None:
    """Fetch the sample photo and the networks and build the backend's cached files once, before
    any process starts, so a first run spends its download and conversion time here, visibly,
    and not inside the node's start-up."""
    from hand_pose_core.backends import create_runner
    from hand_pose_core.samples import builtin_sample_image
    from hand_pose_ros.params import PARAMS

    settings = {p.name: p.default for p in PARAMS}
    for item in node_overrides:
        name, _, value = item.partition(":=")
        settings[name] = value
    print("[demo] preparing the sample and the networks (the first run downloads and converts them)", flush=True)
    if not source:
        builtin_sample_image()
    for model in ("palm", "landmark"):
        create_runner(model, backend=settings["backend"], variant=settings["variant"],
                      device=settings["device"], precision=settings["precision"]).close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="replay + hand_pose_node + consumer, printing 3D hand joints")
    ap.add_argument("--source", default="", help="video, image folder, image or bag (default: built-in sample photo)")
    ap.add_argument("--rate", type=float, default=15.0, help="replay rate, Hz (0: native)")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds to run after start-up")
    ap.add_argument("--intrinsics", default="", help="'fx,fy,cx,cy' for camera_info (default: none, default K)")
    ap.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: derived from the pid)")
    ap.add_argument("-p", "--param", action="append", default=[], metavar="NAME:=VALUE",
                    help="extra hand_pose_node parameter, repeatable")
    ap.add_argument("--verbose", action="store_true", help="also print the nodes' logs")
    opts = ap.parse_args(argv)

    try:
        _prepare_models(opts.source, opts.param)
    except Exception as e:  # offline, no apt for the sample, unknown backend: say so and stop
        print(f"[demo] cannot prepare the demo: {e}", file=sys.stderr, flush=True)
        return 1
    env = ros_child_env(opts.domain_id if opts.domain_id is not None else unique_domain_id())
    node_params = ["--params-file", str(share_file("config/hand_pose.yaml"))]
    for p in opts.param:
        node_params += ["-p", p]
    replay_params = ["-p", f"rate_hz:={float(opts.rate)}"]
    if opts.source:
        replay_params += ["-p", f"source:={os.path.abspath(opts.source)}"]
    if opts.intrinsics:
        replay_params += ["-p", f"intrinsics:={opts.intrinsics}"]
    commands = {
        "node": module_cmd("hand_pose_node", node_params),
        "replay": module_cmd("replay_node", replay_params),
        "consumer": module_cmd("consumer_example"),
    }
    print(f"[demo] ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']} profile={env.get('FASTRTPS_DEFAULT_PROFILES_FILE')}", flush=True)
    lines: queue.Queue = queue.Queue()
    procs: dict[str, subprocess.Popen] = {}
    hands = frames = 0
    try:
        for name, cmd in commands.items():
            procs[name] = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                           text=True, bufsize=1)
            threading.Thread(target=_pump, args=(name, procs[name].stdout, lines), daemon=True).start()
        start = time.monotonic()
        first_output = None
        # the clock starts at the first output: loading the networks takes a few seconds
        while True:
            budget = opts.duration if first_output is None else opts.duration - (time.monotonic() - first_output)
            if first_output is None and time.monotonic() - start > opts.duration + 60:
                print("[demo] no output from the node within 60 s of start-up", flush=True)
                break
            if first_output is not None and budget <= 0:
                break
            dead = [n for n, p in procs.items() if p.poll() is not None and n != "consumer"]
            if dead:
                print(f"[demo] {', '.join(dead)} exited early (rc {[procs[n].returncode for n in dead]})", flush=True)
                break
            try:
                name, line = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                continue
            if name == "consumer" and line.startswith("stamp="):
                first_output = first_output or time.monotonic()
                frames += 1
                hands += int("side=" in line)
                print(line, flush=True)
            elif opts.verbose or "ERROR" in line or "FATAL" in line or "WARN" in line:
                print(f"[{name}] {line}", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        _stop(procs)
    print(f"[demo] {frames} consumer lines, {hands} with a hand", flush=True)
    return 0 if hands > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
