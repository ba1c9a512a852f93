"""The ``hand-pose`` command line: weights, single images, and videos or image folders.

    hand-pose weights [--source PATH] [--offline] [--variant full|lite|all] [--force]
    hand-pose predict IMAGE... [--K fx,fy,cx,cy] [--json OUT] [--overlay DIR]
    hand-pose run VIDEO|DIR [--output results.jsonl] [--overlay out.mp4] [--K fx,fy,cx,cy]
    hand-pose bench [networks|pipeline|fit|transport] [--backends ...] [--batch 1,8,32] [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from hand_pose_core.frames import iter_frames, read_rgb

def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "weights":
        from hand_pose_core.weights import weights_command

        return weights_command(argv[1:])
    if argv and argv[0] == "bench":
        from hand_pose_core.bench import main as bench_main

        return bench_main(argv[1:])
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.handler(args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"hand-pose {args.command}: error: {err}", file=sys.stderr)
        return 1


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hand-pose", description="Monocular RGB 3D hand pose.")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("weights", help="download/convert the pretrained networks (see `hand-pose weights --help`)")
    sub.add_parser("bench", help="benchmarks: networks, pipeline vs MediaPipe, MANO fit, ROS transport "
                                 "(see `hand-pose bench --help`)")

    predict = sub.add_parser("predict", help="estimate hands in still images")
    predict.add_argument("images", nargs="+", type=Path)
    predict.add_argument("--json", type=Path, help="write all results to this JSON file")
    predict.add_argument("--overlay", type=Path, help="folder for overlay images (skeleton + mesh)")
    _add_estimator_args(predict)
    predict.set_defaults(handler=_cmd_predict)

    run = sub.add_parser("run", help="track hands through a video file or an image folder")
    run.add_argument("source", type=Path, help="video file or folder of images (sorted by name)")
    run.add_argument("--output", type=Path, default=Path("results.jsonl"), help="JSON Lines, one line per frame")
    run.add_argument("--overlay", type=Path, help="write an overlay video (e.g. out.mp4)")
    run.add_argument("--fps", type=float, default=None, help="frame rate of an image folder (default 30)")
    _add_estimator_args(run)
    run.set_defaults(handler=_cmd_run)
    return parser


def _add_estimator_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--K", dest="K", help="intrinsics fx,fy,cx,cy in pixels (default: uncalibrated guess)")
    p.add_argument("--max-hands", type=int, default=2)
    p.add_argument("--backend", default="auto", choices=["auto", "litert", "onnxruntime", "torch", "tensorrt"],
                   help="auto: litert on the CPU when installed (fastest measured), else onnxruntime; torch on CUDA")
    p.add_argument("--device", default="cpu")
    p.add_argument("--variant", default="full", choices=["full", "lite"])
    p.add_argument("--mirrored", action="store_true", help="images are mirrored (selfie view)")
    p.add_argument("--mano-root", type=Path, default=None, help="folder or file of the official MANO model")
    p.add_argument("--no-mesh", action="store_true", help="skip the MANO fit and mesh")
    p.add_argument("--with-mesh-json", action="store_true", help="include vertices and faces in the JSON")


def parse_K(text: str | None) -> np.ndarray | None:
    """'fx,fy,cx,cy' -> 3x3 K (validated), or None."""
    if text is None:
        return None
    from hand_pose_core.camera import K_from_fxfycxcy, validate_intrinsics

    parts = text.split(",")
    if len(parts) != 4:
        raise ValueError(f"--K expects fx,fy,cx,cy (4 numbers), got {text!r}")
    try:
        values = [float(v) for v in parts]
    except ValueError:
        raise ValueError(f"--K expects numbers, got {text!r}") from None
    return validate_intrinsics(K_from_fxfycxcy(*values))


def _make_estimator(args, tracking: bool):
    from hand_pose_core.pipeline.estimator import HandPoseEstimator

    fit = not args.no_mesh
    return HandPoseEstimator(
        max_hands=args.max_hands, backend=args.backend, device=args.device, variant=args.variant,
        mirrored=args.mirrored, tracking=tracking, fit_mano=fit, with_mesh=fit,
        mano_root=str(args.mano_root) if args.mano_root else None,
    )


def _effective_K(K, image_rgb):
    from hand_pose_core.camera import resolve_intrinsics

    h, w = image_rgb.shape[:2]
    return resolve_intrinsics(K, w, h)[0]


def _cmd_predict(args) -> int:
    import cv2
    from tqdm import tqdm

    from hand_pose_core.overlay import draw_hands

    K = parse_K(args.K)
    missing = [str(p) for p in args.images if not p.is_file()]
    if missing:  # fail before the (slow) network set-up
        raise FileNotFoundError(f"no such image: {', '.join(missing)}")
    estimator = _make_estimator(args, tracking=False)
    results = []
    if args.overlay:
        args.overlay.mkdir(parents=True, exist_ok=True)
    for path in tqdm(args.images, desc="images", unit="img", disable=len(args.images) < 2):
        image = read_rgb(path)
        hands = estimator(image, K)
        results.append({"image": str(path), "hands": [h.to_dict(args.with_mesh_json) for h in hands]})
        print(f"{path}: {len(hands)} hand(s)" + "".join(
            f"\n  {h.side:5s} score {h.score:.2f} wrist ({', '.join(f'{v:+.3f}' for v in h.joints_3d[0])}) m"
            + ("" if h.calibrated else " (uncalibrated)") for h in hands))
        if args.overlay:
            drawn = draw_hands(image, hands, _effective_K(K, image))
            out = args.overlay / f"{path.stem}_hands.png"
            cv2.imwrite(str(out), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
        print(f"wrote {args.json}")
    return 0


def _cmd_run(args) -> int:
    import cv2
    from tqdm import tqdm

    from hand_pose_core.overlay import draw_hands

    K = parse_K(args.K)
    frames, count, rate = iter_frames(args.source, args.fps)
    estimator = _make_estimator(args, tracking=True)
    writer = None
    n_frames = n_with_hands = 0
    with open(args.output, "w") as out:
        for index, image in enumerate(tqdm(frames, total=count if count > 0 else None, desc="frames", unit="frame")):
            hands = estimator(image, K, timestamp_s=index / rate)
            out.write(json.dumps({"frame": index, "t_s": index / rate, "hands": [h.to_dict(args.with_mesh_json) for h in hands]}) + "\n")
            n_frames += 1
            n_with_hands += bool(hands)
            if args.overlay:
                if writer is None:
                    h, w = image.shape[:2]
                    writer = cv2.VideoWriter(str(args.overlay), cv2.VideoWriter_fourcc(*"mp4v"), rate, (w, h))
                    if not writer.isOpened():
                        raise RuntimeError(f"cannot write video {args.overlay}")
                drawn = draw_hands(image, hands, _effective_K(K, image))
                writer.write(cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
    if writer is not None:
        writer.release()
    print(f"{n_frames} frames, {n_with_hands} with hands -> {args.output}" + (f", overlay {args.overlay}" if args.overlay else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
