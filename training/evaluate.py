"""Evaluate a trained model on a dataset split and write the metrics as JSON.

    python -m training.evaluate --config training/configs/mano_regressor_freihand.yaml \\
        --checkpoint runs/mano_regressor_freihand/model.safetensors --split evaluation --out metrics.json

``--checkpoint`` takes a model file, a checkpoint folder (``RUN/checkpoints/step_N``, verified
against its manifest) or a run folder (its final ``model.safetensors``, else its newest valid
checkpoint). Without ``--config`` the config stored in the model file is used. Works under
``torchrun`` too (each rank evaluates a shard; rank 0 prints and writes). ``--images FILE.png``
also writes the first ``--images-count`` samples with the predictions drawn on them (the task's
``draw``: the same pictures as TensorBoard's) as one grid. The metrics are those
of :class:`training.metrics.HandMetrics` (FreiHAND protocol: MPJPE over visible joints,
root-relative and Procrustes-aligned errors, PCK AUCs, mesh errors and F-scores, 2D errors).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from . import distributed as D
from .config import ConfigError, from_dict, import_plugins, load_config


def _nan_where(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    x = x.detach().float().cpu().clone()
    x[~keep.cpu()] = float("nan")
    return x


@torch.no_grad()
def evaluate_model(task, model, loader, info: D.DistInfo, amp_dtype=None, chunk: int = 64) -> dict:
    """Run ``task.predict`` over ``loader`` (this rank's shard), gather every rank's rows and
    return :meth:`training.metrics.HandMetrics.compute` (the same dict on every rank)."""
    from .metrics import HandMetrics
    from .train import to_device

    device = info.device
    was_training = model.training
    model.eval()
    cols: dict[str, list] = {k: [] for k in ("pj", "gj", "vis", "p2", "g2", "pv", "gv")}
    try:
        for batch in loader:
            b = to_device(batch, device)
            ctx = torch.autocast(device_type=device.type, dtype=amp_dtype) if amp_dtype else nullcontext()
            with ctx:
                pred = task.predict(model, b)
            cols["pj"].append(pred["joints_cam_m"].detach().float().cpu())
            cols["gj"].append(_nan_where(b["joints_cam_m"], b["has_3d"]))
            cols["vis"].append(b["visible"].cpu())
            if "joints_2d" in pred:
                cols["p2"].append(pred["joints_2d"].detach().float().cpu())
                cols["g2"].append(b["joints_2d"].float().cpu())
            pv = pred.get("verts_cam_m")
            if pv is not None:
                cols["pv"].append(pv.detach().float().cpu())
                cols["gv"].append(_nan_where(b["verts_cam_m"], b["has_verts"]))
    finally:
        model.train(was_training)
    # every rank must take part in the same gathers, also a rank with an empty shard
    shapes = {"pj": (21, 3), "gj": (21, 3), "vis": (21,), "p2": (21, 2), "g2": (21, 2), "pv": (778, 3),
              "gv": (778, 3)}
    flags = torch.tensor([float(bool(cols["p2"])), float(bool(cols["pv"]))], dtype=torch.float64)
    flags = D.all_reduce_sum(info, flags)
    want = {"pj", "gj", "vis"} | ({"p2", "g2"} if flags[0] > 0 else set()) | ({"pv", "gv"} if flags[1] > 0 else set())
    rows = {}
    for k in sorted(want):
        if cols[k]:
            t = torch.cat(cols[k])
        else:
            t = torch.zeros((0,) + shapes[k], dtype=torch.bool if k == "vis" else torch.float32)
        if k == "vis":
            t = t.to(torch.uint8)  # gloo/nccl gathers of bool are not portable
        rows[k] = D.gather_rows(info, t)
    m = HandMetrics()
    vis = rows["vis"].bool()
    n = rows["pj"].shape[0]
    for i in range(0, n, chunk):  # chunks: the mesh F-scores hold (chunk, 778, 778) distances
        sl = slice(i, i + chunk)
        get = (lambda k: rows[k][sl] if k in rows else None)  # noqa: E731
        m.update(rows["pj"][sl], rows["gj"][sl], vis[sl], pred_verts=get("pv"), gt_verts=get("gv"),
                 pred_2d=get("p2"), gt_2d=get("g2"))
    out = m.compute()
    out["n_samples"] = int(rows["pj"].shape[0])
    return out


@torch.no_grad()
def prediction_grid(task, model, loader, count: int, device, per_row: int = 8) -> "np.ndarray":
    """The first ``count`` samples of ``loader`` with ``task.draw``'s predictions, tiled into one
    RGB uint8 image (torchvision's ``make_grid``, 2-px white gaps)."""
    from torchvision.utils import make_grid

    from .train import to_device

    was_training = model.training
    model.eval()
    tiles = []
    try:
        for batch in loader:
            b = to_device(batch, device)
            tiles.append(torch.from_numpy(np.asarray(task.draw(b, task.predict(model, b)))))
            if sum(len(t) for t in tiles) >= count:
                break
    finally:
        model.train(was_training)
    if not tiles:
        raise ValueError("no samples to draw")
    x = torch.cat(tiles)[:count].permute(0, 3, 1, 2)
    grid = make_grid(x, nrow=min(per_row, len(x)), padding=2, pad_value=255)
    return np.ascontiguousarray(grid.permute(1, 2, 0).numpy())


def resolve_model_file(spec) -> Path:
    """A model file from ``--checkpoint`` (model file, checkpoint folder or run folder)."""
    from . import checkpointing as ckpt

    p = Path(spec)
    if p.is_file():
        return p
    if (p / ckpt.MANIFEST).exists() or ckpt._STEP_RE.match(p.name):
        ckpt.verify_checkpoint(p)
        return p / ckpt.MODEL_FILE
    if (p / "model.safetensors").is_file():
        return p / "model.safetensors"
    if (p / "checkpoints").is_dir():
        found = ckpt.find_resume(str(p), p, lambda m: print(f"[evaluate] {m}", file=sys.stderr))
        if found is not None:
            return found / ckpt.MODEL_FILE
    raise ckpt.CheckpointError(f"--checkpoint {spec}: no model file, checkpoint folder or run folder there")


def run(cfg: dict, model_file: Path, split: str | None, info: D.DistInfo, max_samples: int | None = None,
        images: str | None = None, images_count: int = 16) -> dict:
    from hand_pose_core.models.checkpoint import CheckpointError, load_model

    from .loader import eval_loader, make_dataset
    from .tasks import build_task

    import_plugins(cfg)
    model, meta = load_model(model_file, map_location=str(info.device))
    task_cfg = {k: v for k, v in cfg["task"].items() if k != "name"}
    task = build_task(cfg["task"]["name"], task_cfg)
    want = getattr(task, "model_name", None)
    if want is not None and want != meta["model_name"]:
        raise CheckpointError(f"model file {model_file} holds {meta['model_name']!r}, task "
                              f"{cfg['task']['name']!r} runs {want!r}")
    data = cfg["data"]
    split = split or data.get("val_split") or data["split"]
    ds = make_dataset(data, split, train=False)
    loader = eval_loader(data, ds, cfg["seed"], info.rank, info.world_size, max_samples,
                         pin_memory=info.device.type == "cuda")
    amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg["precision"]) if info.device.type == "cuda" else None
    t0 = time.perf_counter()
    metrics = evaluate_model(task, model, loader, info, amp)
    metrics["seconds"] = round(time.perf_counter() - t0, 3)
    if images and info.is_main:
        import cv2

        if getattr(task, "draw", None) is None:
            raise ConfigError(f"--images: task {cfg['task']['name']!r} draws no pictures")
        grid = prediction_grid(task, model, loader, images_count, info.device)
        Path(images).parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(images), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {images} (the extension picks the format: .png or .jpg)")
        print(f"[evaluate] wrote {images} ({min(images_count, metrics['n_samples'])} samples)")
    return {"dataset": data["name"], "split": split, "root": data.get("root"), "model_file": str(model_file),
            "model_name": meta["model_name"], "step": meta["extra"].get("step"), "metrics": metrics}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m training.evaluate",
                                 description="Evaluate a trained model; prints and writes JSON metrics.")
    ap.add_argument("--config", default=None, help="YAML config (default: the one stored in the model file)")
    ap.add_argument("--checkpoint", required=True, help="model file, checkpoint folder or run folder")
    ap.add_argument("--split", default=None, help="dataset split (default: data.val_split, else data.split)")
    ap.add_argument("--out", default=None, help="write the metrics JSON here")
    ap.add_argument("--max-samples", type=int, default=None, help="evaluate the first N samples only")
    ap.add_argument("--images", default=None, metavar="FILE.png",
                    help="also write the first samples with the predictions drawn, as one grid")
    ap.add_argument("--images-count", type=int, default=16, help="samples in the --images grid")
    ap.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. data.root=/data/FreiHAND")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    from hand_pose_core.models.checkpoint import CheckpointError, read_model_file

    from .train import user_errors

    args = parse_args(argv)
    info = None
    try:
        model_file = resolve_model_file(args.checkpoint)
        if args.config:
            cfg = load_config(args.config, args.overrides)
        else:
            _, meta = read_model_file(model_file)
            stored = meta["extra"].get("config")
            if not stored:
                raise ConfigError(f"model file {model_file} stores no config: pass --config")
            cfg = from_dict(stored, args.overrides, name=Path(model_file).stem)
        info = D.init(cfg["device"])
        report = run(cfg, model_file, args.split, info, args.max_samples, args.images, args.images_count)
    except (ConfigError, CheckpointError) + user_errors() as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        if info is not None:
            D.shutdown(info)
    if info.is_main:
        text = json.dumps(report, indent=1, sort_keys=True, default=float)
        m = report["metrics"]
        print(f"[evaluate] {report['model_name']} on {report['dataset']} {report['split']} "
              f"({m.get('n_samples', 0)} samples):")
        for k in sorted(m):
            v = m[k]
            if isinstance(v, float) and math.isfinite(v):
                print(f"  {k:>16s}  {v:.4f}")
            else:
                print(f"  {k:>16s}  {v}")
        if args.out:
            from hand_pose_core.paths import atomic_write_bytes

            atomic_write_bytes(Path(args.out), (text + "\n").encode())
            print(f"[evaluate] wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
