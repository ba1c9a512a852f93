"""The ``hand-pose`` command line: weights, single images, and videos or image folders.

    hand-pose weights [--source PATH] [--offline] [--variant full|lite|all] [--force]
    hand-pose predict IMAGE... [--K fx,fy,cx,cy] [--json OUT] [--overlay DIR]
    hand-pose run VIDEO|DIR [--output results.jsonl] [--overlay out.mp4] [--K fx,fy,cx,cy]
    hand-pose synth --out DIR --count N [--workers 2] [--seed 0] [--depth] [--backgrounds DIR]
    hand-pose pseudo-label VIDEO|DIR|BAG --out DIR [--K fx,fy,cx,cy]
    hand-pose adapt VIDEO|DIR|BAG --out MODEL.safetensors [--init MODEL] [--steps N] [--K fx,fy,cx,cy] [--set KEY=VALUE ...]
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
    _add_data_commands(sub)
    _add_adapt_command(sub)
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
    p.add_argument("--model", default="mediapipe",
                   help="where the 3D comes from: mediapipe (default) or a trained model "
                        "(mano_regressor, zimmermann_brox, ...) given by --checkpoint")
    p.add_argument("--checkpoint", type=Path, default=None, help="model file (.safetensors) of a trained --model")
    p.add_argument("--lifter-2d", action="store_true", help="report the trained model's own 2D joints")


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
        mano_root=str(args.mano_root) if args.mano_root else None, model=args.model,
        checkpoint=str(args.checkpoint) if args.checkpoint else None, lifter_2d=args.lifter_2d,
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


# --------------------------------------------------------------------------- training data
def _add_data_commands(sub) -> None:
    synth = sub.add_parser("synth", help="render a synthetic training set (MANO hands, exact labels)")
    synth.add_argument("--out", type=Path, required=True, help="output folder (layout: training.synthetic.writer)")
    synth.add_argument("--count", type=int, required=True, help="number of images")
    synth.add_argument("--workers", type=int, default=2, help="render processes (0 = in this process)")
    synth.add_argument("--seed", type=int, default=0, help="dataset seed: sample i depends on (seed, i) only")
    synth.add_argument("--size", type=int, default=256, help="image size in pixels (square)")
    synth.add_argument("--depth", action="store_true", help="also write the rendered depth (16-bit PNG, mm)")
    synth.add_argument("--backgrounds", type=Path, default=None,
                       help="folder of background images (default: procedural backgrounds)")
    synth.add_argument("--mano-root", type=Path, default=None,
                       help="folder or file of the official MANO models (default: the synthetic MANO model)")
    synth.add_argument("--distance", default="0.2,1.5", help="min,max camera depth of the hand in metres")
    synth.add_argument("--left-fraction", type=float, default=0.5, help="share of left hands")
    synth.set_defaults(handler=_cmd_synth)

    pl = sub.add_parser("pseudo-label", help="track hands through your own footage and store teacher labels")
    pl.add_argument("source", type=Path, help="video file, folder of images, or ROS 2 bag (.mcap/.db3/folder)")
    pl.add_argument("--out", type=Path, required=True, help="output folder (layout: training.pseudo_label)")
    pl.add_argument("--K", dest="K", help="intrinsics fx,fy,cx,cy in pixels (default: the bag's CameraInfo, "
                    "else an uncalibrated guess)")
    pl.add_argument("--crop-size", type=int, default=256, help="side of the stored hand crops in pixels")
    pl.add_argument("--crop-scale", type=float, default=1.6, help="crop side / extent of the 2D joints")
    pl.add_argument("--min-score", type=float, default=0.5, help="drop hands with a lower presence score")
    pl.add_argument("--every", type=int, default=1, help="keep every n-th frame (all are tracked)")
    pl.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    pl.add_argument("--fps", type=float, default=None, help="frame rate of an image folder (default 30)")
    pl.add_argument("--topic", default=None, help="image topic of a bag (default: the first image topic)")
    pl.add_argument("--max-hands", type=int, default=2)
    pl.add_argument("--backend", default="onnxruntime", choices=["torch", "onnxruntime", "tensorrt"])
    pl.add_argument("--variant", default="full", choices=["full", "lite"])
    pl.add_argument("--mirrored", action="store_true", help="images are mirrored (selfie view)")
    pl.add_argument("--mano-root", type=Path, default=None, help="folder or file of the official MANO model")
    pl.set_defaults(handler=_cmd_pseudo_label)


def _cmd_synth(args) -> int:
    from training.synthetic.writer import write_dataset  # training is imported lazily

    try:
        lo, hi = (float(v) for v in args.distance.split(","))
    except ValueError:
        raise ValueError(f"--distance expects min,max in metres, got {args.distance!r}") from None
    result = write_dataset(
        args.out, args.count, workers=args.workers, seed=args.seed, image_size=args.size,
        mano_root=args.mano_root, background_dir=args.backgrounds, with_depth=args.depth,
        distance_m=(lo, hi), left_fraction=args.left_fraction)
    print(f"wrote {args.count} images to {args.out} in {result['seconds']:.1f} s "
          f"({result['images_per_s']:.0f} images/s with {args.workers} worker(s))")
    return 0


def _cmd_pseudo_label(args) -> int:
    from training.pseudo_label import pseudo_label  # training is imported lazily

    meta = pseudo_label(
        args.source, args.out, K=parse_K(args.K), crop_size=args.crop_size, crop_scale=args.crop_scale,
        min_score=args.min_score, max_frames=args.max_frames, every=args.every, fps=args.fps,
        topic=args.topic, max_hands=args.max_hands, backend=args.backend, variant=args.variant,
        mirrored=args.mirrored, mano_root=args.mano_root)
    print(f"{meta['frames']} frames, {meta['count']} labelled hands -> {args.out}"
          + ("" if meta["calibrated"] else " (uncalibrated K: 3D depth is a guess)"))
    return 0


def _add_adapt_command(sub) -> None:
    ad = sub.add_parser("adapt", help="fine-tune the MANO regressor self-supervised on your own footage "
                        "(pseudo-label -> S2HAND fine-tuning -> model file for the estimator/node)")
    ad.add_argument("source", type=Path, help="video file, folder of images, ROS 2 bag, or a folder "
                    "written by `hand-pose pseudo-label`")
    ad.add_argument("--out", type=Path, required=True, help="model file to write (.safetensors)")
    ad.add_argument("--init", type=Path, default=None, help="mano_regressor model file to start from "
                    "(default: a fresh network)")
    ad.add_argument("--K", dest="K", help="intrinsics fx,fy,cx,cy in pixels (default: a bag's CameraInfo, "
                    "else an uncalibrated guess)")
    ad.add_argument("--steps", type=int, default=300, help="fine-tuning steps")
    ad.add_argument("--crop-size", type=int, default=128, help="network input size in pixels")
    ad.add_argument("--every", type=int, default=1, help="label every n-th frame")
    ad.add_argument("--max-frames", type=int, default=None)
    ad.add_argument("--workdir", type=Path, default=None, help="keep the labels and the training run here")
    ad.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="trainer config override (repeatable), e.g. --set optim.lr=1e-4")
    ad.set_defaults(handler=_cmd_adapt)


def _cmd_adapt(args) -> int:
    from training.adapt import adapt  # training is imported lazily

    res = adapt(args.source, args.out, init=args.init, K=parse_K(args.K), steps=args.steps,
                crop_size=args.crop_size, workdir=args.workdir, every=args.every,
                max_frames=args.max_frames, overrides=args.overrides)
    print(f"{res['hands']} labelled hands, pseudo-labels {res['pseudo_label_s']:.1f} s, fine-tuning "
          f"{res['train_s']:.1f} s -> {res['out']} (HandPoseEstimator(model='mano_regressor', checkpoint=...))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
