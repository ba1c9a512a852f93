"""``hand-pose bench``: the project's one home for benchmarks.

    hand-pose bench [all|networks|pipeline] [--backends torch onnxruntime] [--batch 1,8,32]
                    [--device cpu|cuda] [--precision fp32,fp16] [--frames N] [--video PATH]
                    [--repeat N] [--runs N] [--accuracy] [--mediapipe-python PY] [--no-append]
    hand-pose bench fit [--hands 1 2]            MANO fit alone (synthetic model)
    hand-pose bench multicam [--frames N]        two cameras: estimate_many vs two calls (:mod:`.multicam`)
    hand-pose bench transport [...]              ROS 2 image transport (hand_pose_ros; needs rclpy)

Networks (:mod:`.networks`): p50/p99 latency and throughput of the palm and landmark networks
for every available backend, precision and batch size on real inputs. Pipeline
(:mod:`.pipeline`): per-stage latency of the whole estimator on single images (640x480 and
256x256) and video tracking (640x480), with and without the MANO mesh, interleaved with
MediaPipe's own solution when its separate venv exists (:mod:`.mediapipe_client`). Results are
printed and appended, with the machine (:mod:`.machine`) and the command, to
``docs/benchmarks.md`` (or ``--output``).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import shlex
import sys
from pathlib import Path

from . import machine

DEFAULT_DOC = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"


def available_backends(device: str, what: str = "networks") -> list[str]:
    """Backends worth trying on ``device`` (availability is checked when they are built). The
    pipeline leaves the slow torch CPU backend out unless asked (--backends)."""
    if device == "cpu":
        return ["litert", "onnxruntime", "torch"] if what == "networks" else ["auto", "litert", "onnxruntime"]
    return ["torch", "tensorrt", "onnxruntime"]


def _csv_ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be integers >= 1, got {text!r}")
    return values


def _csv(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hand-pose bench", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("what", nargs="?", default="all", choices=["all", "networks", "pipeline"])
    p.add_argument("--backends", nargs="+", default=None,
                   help="default on cpu: litert onnxruntime torch (networks), auto litert onnxruntime "
                        "(pipeline; auto = the estimator's default); on cuda: torch tensorrt onnxruntime")
    p.add_argument("--precision", type=_csv, default=None, help="comma list; default fp32 (cpu), fp32,fp16 (cuda)")
    p.add_argument("--batch", type=_csv_ints, default=[1, 8, 32], help="network batch sizes (default 1,8,32)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--frames", type=int, default=100, help="consecutive real frames per pipeline run")
    p.add_argument("--video", type=Path, default=None,
                   help="video or image folder (default: the shared real video, ../shared/data/real)")
    p.add_argument("--repeat", type=int, default=3, help="pipeline repeats (interleaved with MediaPipe)")
    p.add_argument("--runs", type=int, default=40, help="network calls per configuration")
    p.add_argument("--threads", type=int, default=2, help="CPU threads per network runtime")
    p.add_argument("--no-mesh-rows", action="store_true", help="pipeline: only the default (mesh) rows")
    p.add_argument("--accuracy", action="store_true",
                   help="also the 2D agreement with the shared video's reference landmarks")
    p.add_argument("--mediapipe-python", default=None,
                   help="python of MediaPipe's venv (default $HAND_POSE_MEDIAPIPE_PYTHON or .venv-bench)")
    p.add_argument("--no-mediapipe", action="store_true")
    p.add_argument("--output", type=Path, default=None, help=f"markdown file to append to (default {DEFAULT_DOC})")
    p.add_argument("--no-append", action="store_true", help="print only")
    p.add_argument("--title", default="", help="heading suffix in the appended section")
    return p


def append_report(path: Path, title: str, command: str, info: dict, sections: list[tuple[str, list[str]]],
                  end_load=None) -> None:
    """Append one report section (heading, command, machine, tables) to ``path``."""
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = ["", f"## `hand-pose bench` {now}{(': ' + title) if title else ''}", "",
             f"Command: `{command}`", "", machine.describe(info)
             + (f" Load average at the end {end_load[0]:.1f}." if end_load else ""), ""]
    for heading, rows in sections:
        lines += [f"### {heading}", "", *rows, ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["transport"]:
        try:
            from hand_pose_ros.bench_transport import main as transport_main  # noqa: PLC0415 (rclpy)
        except ImportError as exc:
            print(f"hand-pose bench transport needs the ROS 2 package (rclpy): {exc}", file=sys.stderr)
            return 2
        return transport_main(argv[1:])
    if argv[:1] == ["multicam"]:
        from .multicam import main as multicam_main

        return multicam_main(argv[1:])
    if argv[:1] == ["fit"]:
        from .fit import main as fit_main

        return fit_main(argv[1:])
    args = build_parser().parse_args(argv)
    return run(args, "hand-pose bench " + " ".join(shlex.quote(a) for a in argv))


def run(args, command: str) -> int:
    from . import data, networks, pipeline

    device = args.device
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("hand-pose bench: --device cuda but torch sees no CUDA GPU", file=sys.stderr)
            return 2
    backends = args.backends or available_backends(device)
    pipe_backends = args.backends or available_backends(device, "pipeline")
    import torch

    torch.set_num_threads(args.threads)
    precisions = args.precision or (["fp32"] if device == "cpu" else ["fp32", "fp16"])
    info = machine.machine_info()
    print(machine.describe(info))
    native, ref, src = data.load_native(args.video, limit=max(args.frames, 1) if not args.accuracy else None)
    sets = data.frame_sets(native, ref, args.frames)
    print(f"frames: {len(sets['640x480'])} from {src}")
    sections: list[tuple[str, list[str]]] = []

    if args.what in ("all", "networks"):
        inputs = {"palm": data.palm_inputs(sets["640x480"][:32]),
                  "landmark": data.landmark_inputs(native[:32], ref)}
        cfgs = networks.build_configs(backends, precisions, args.batch, device, inputs, threads=args.threads)
        networks.run_configs(cfgs, args.runs)
        rows = networks.table(cfgs)
        print("\n".join(rows))
        sections.append((f"Networks ({args.runs} calls per row, round-robin; real inputs from {src.name}; "
                         "litert = MediaPipe's .tflite files in TFLite/XNNPACK, MediaPipe's own runtime)", rows))

    if args.what in ("all", "pipeline"):
        from .mediapipe_client import find_mediapipe_python

        mp_python = None if args.no_mediapipe or device != "cpu" else find_mediapipe_python(args.mediapipe_python)
        mesh_options = (True,) if args.no_mesh_rows else (True, False)
        configs = pipeline.build(pipe_backends, device, "fp32", sets, mesh_options)
        solution = None
        if mp_python:
            from .mediapipe_client import MediaPipeSolution

            try:
                solution = MediaPipeSolution(mp_python)
            except Exception as exc:
                print(f"MediaPipe reference unavailable ({exc})", file=sys.stderr)
        elif device == "cpu" and not args.no_mediapipe:
            print("MediaPipe reference: no venv found (bash scripts/benchmark.sh builds .venv-bench)")
        try:
            configs = pipeline.run(configs, sets, args.repeat, mediapipe=solution)
            rows = pipeline.table(configs)
            print("\n".join(rows))
            sections.append((f"End to end, ms per frame ({len(sets['640x480'])} consecutive frames x "
                             f"{args.repeat} interleaved repeats; one hand)", rows))
            if args.accuracy and ref is not None:
                acc = ["| system | mode | median px | p90 px | missed frames |", "|---|---|---|---|---|"]
                for tracking in (True, False):
                    med, p90, missed = pipeline.agreement(native, ref, tracking, backend=pipe_backends[0],
                                                          device=device)
                    acc.append(f"| ours/{pipe_backends[0]} | {'tracking' if tracking else 'single image'} | "
                               f"{med:.2f} | {p90:.2f} | {missed} |")
                    if solution is not None:
                        got = solution.joints(src, static=not tracking)
                        med, p90, missed = pipeline.mediapipe_agreement(got, ref, len(native))
                        acc.append(f"| MediaPipe {solution.version} | {'tracking' if tracking else 'single image'} | "
                                   f"{med:.2f} | {p90:.2f} | {missed} |")
                print("\n".join(acc))
                sections.append((f"2D agreement with the reference landmarks ({len(native)} native frames of "
                                 f"{src.name})", acc))
        finally:
            if solution is not None:
                solution.close()

    if not args.no_append:
        out = args.output or DEFAULT_DOC
        if args.output is None and not DEFAULT_DOC.parent.is_dir():
            print("(not appended: no docs/ folder next to the package; use --output FILE)")
        else:
            append_report(out, args.title, command, info, sections, machine.load_average())
            print(f"appended to {out}")
    return 0
