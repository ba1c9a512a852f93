"""Writing a synthetic dataset to disk (``hand-pose synth``) and reading its files back.

On-disk layout (``DIR``; ``%08d`` = sample index 0..count-1)::

    DIR/meta.json          written LAST: {"format": "hand_pose_ros/synthetic", "version": 1,
                           "count", "image_size", "seed", "mano" ("synthetic" or the MANO path),
                           "background_dir", "with_depth", "distance_m", "left_fraction",
                           "split_rule", "jpeg_quality"}; a folder without it is incomplete
    DIR/rgb/%08d.jpg       the image (RGB, JPEG)
    DIR/mask/%08d.png      the hand mask, 1-bit PNG (reads as 8-bit 0 / 255), 255 = hand
    DIR/labels/%08d.npy    one record of the structured dtype LABEL_DTYPE (np.load with
                           allow_pickle=False): K (3,3), joints_cam_m (21,3), joints_2d (21,2),
                           visible (21,) bool, side ('left'/'right'), mano_pose (48),
                           mano_shape (10), mano_trans (3), verts_cam_m (778,3); float32, units
                           and frames as in training.datasets.sample
    DIR/depth/%08d.png     only with --depth: rendered depth, 16-bit PNG in millimetres, 0 = none

Sample ``i`` is the generator's sample ``(seed, i)`` (see :mod:`.generator`), so a dataset can be
extended or re-created exactly. Splits: ``index % 20 == 19`` is 'val' (5 %), the rest 'train'.

Workers: each worker is a separate process started with the 'spawn' method (an EGL context
does not survive a fork), builds its own generator and renderer, and writes whole chunks of
consecutive indices; the parent only counts.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from pathlib import Path

import cv2
import numpy as np

__all__ = ["write_dataset", "write_sample", "read_meta", "read_labels", "FORMAT", "LABEL_DTYPE",
           "split_of"]

FORMAT = "hand_pose_ros/synthetic"
VERSION = 1
LABEL_DTYPE = np.dtype([
    ("K", "<f4", (3, 3)), ("joints_cam_m", "<f4", (21, 3)), ("joints_2d", "<f4", (21, 2)),
    ("visible", "?", (21,)), ("side", "<U5"), ("mano_pose", "<f4", (48,)),
    ("mano_shape", "<f4", (10,)), ("mano_trans", "<f4", (3,)), ("verts_cam_m", "<f4", (778, 3)),
])
SPLIT_RULE = "index % 20 == 19 -> val, else train"
CHUNK = 32


def split_of(index: int) -> str:
    """'val' for every 20th sample (index % 20 == 19), else 'train'."""
    return "val" if index % 20 == 19 else "train"


def write_sample(out: Path, index: int, sample: dict, jpeg_quality: int = 95) -> None:
    name = f"{index:08d}"
    ok, jpg = cv2.imencode(".jpg", sample["image"][..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for sample {index}")
    (out / "rgb" / f"{name}.jpg").write_bytes(jpg.tobytes())
    # 1-bit PNG (reads back as 8-bit 0/255): ~0.1 ms instead of ~0.8 ms for an 8-bit one.
    ok, png = cv2.imencode(".png", sample["mask"] * np.uint8(255),
                           [cv2.IMWRITE_PNG_BILEVEL, 1, cv2.IMWRITE_PNG_COMPRESSION, 1,
                            cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE])
    (out / "mask" / f"{name}.png").write_bytes(png.tobytes())
    if "depth_m" in sample:
        mm = np.clip(np.round(sample["depth_m"] * 1000.0), 0, 65535).astype(np.uint16)
        ok, png = cv2.imencode(".png", mm, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        (out / "depth" / f"{name}.png").write_bytes(png.tobytes())
    record = np.zeros((), LABEL_DTYPE)
    for key in LABEL_DTYPE.names:
        record[key] = sample[key]
    with open(out / "labels" / f"{name}.npy", "wb") as f:
        np.save(f, record, allow_pickle=False)


def read_labels(path) -> np.ndarray:
    """One label record (see LABEL_DTYPE); errors name the file and the problem."""
    try:
        record = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable label file ({err})") from err
    if record.dtype != LABEL_DTYPE or record.shape != ():
        raise ValueError(f"{path}: expected one record of dtype {LABEL_DTYPE.descr}, "
                         f"got dtype {record.dtype} shape {record.shape}")
    return record


# --------------------------------------------------------------------------- workers
_WORKER = {}


def _init_worker(out: str, gen_kwargs: dict, jpeg_quality: int):
    # An exception here would make multiprocessing.Pool restart the worker forever: keep it and
    # raise it from the first task instead.
    try:
        os.environ.setdefault("LP_NUM_THREADS", "0")  # llvmpipe: rasterise in this thread
        import torch

        torch.set_num_threads(1)
        cv2.setNumThreads(1)
        from training.synthetic.generator import SyntheticHands

        _WORKER["out"] = Path(out)
        _WORKER["gen"] = SyntheticHands(**gen_kwargs)
        _WORKER["q"] = jpeg_quality
        _WORKER.pop("error", None)
    except Exception as err:  # noqa: BLE001 - re-raised in _write_chunk
        _WORKER["error"] = err


def _write_chunk(bounds) -> int:
    if "error" in _WORKER:
        raise _WORKER["error"]
    start, stop = bounds
    gen, out = _WORKER["gen"], _WORKER["out"]
    for i, sample in zip(range(start, stop), gen.samples(range(start, stop))):
        write_sample(out, i, sample, _WORKER["q"])
    return stop - start


def write_dataset(out, count: int, *, workers: int = 2, seed: int = 0, image_size: int = 256,
                  mano_root=None, background_dir=None, with_depth: bool = False,
                  distance_m=(0.2, 1.5), left_fraction: float = 0.5, jpeg_quality: int = 95,
                  start: int = 0, progress: bool = True) -> dict:
    """Render and write samples ``start .. start+count-1`` into ``out``; returns the meta dict
    plus ``seconds`` and ``images_per_s`` of this run. ``workers=0`` renders in this process."""
    out = Path(out)
    count, workers, start = int(count), int(workers), int(start)
    if count <= 0:
        raise ValueError(f"--count must be positive, got {count}")
    if workers < 0:
        raise ValueError(f"--workers must be >= 0, got {workers}")
    meta_path = out / "meta.json"
    gen_kwargs = dict(image_size=image_size, seed=seed, mano_root=mano_root,
                      background_dir=None if background_dir is None else str(background_dir),
                      distance_m=tuple(distance_m), left_fraction=left_fraction, with_depth=with_depth)
    if meta_path.exists():
        old = read_meta(out)
        for key in ("seed", "image_size", "with_depth"):
            if old[key] != gen_kwargs[key]:
                raise ValueError(f"{out} already holds a synthetic dataset with {key}={old[key]!r}; "
                                 f"use another --out or the same settings")
    # Validate settings (background folder, distances, MANO files) before starting workers;
    # _setup loads the MANO models but creates no GL context (that happens on the first render).
    from training.synthetic.generator import SyntheticHands

    SyntheticHands(**gen_kwargs)._setup()
    for sub in ("rgb", "mask", "labels") + (("depth",) if with_depth else ()):
        (out / sub).mkdir(parents=True, exist_ok=True)
    chunks = [(a, min(a + CHUNK, start + count)) for a in range(start, start + count, CHUNK)]
    from tqdm import tqdm

    bar = tqdm(total=count, unit="img", desc="synth", disable=not progress, smoothing=0.1)
    t0 = time.perf_counter()
    if workers == 0:
        _init_worker(str(out), gen_kwargs, jpeg_quality)
        for c in chunks:
            bar.update(_write_chunk(c))
    else:
        ctx = mp.get_context("spawn")
        with ctx.Pool(workers, initializer=_init_worker, initargs=(str(out), gen_kwargs, jpeg_quality)) as pool:
            for n in pool.imap_unordered(_write_chunk, chunks):
                bar.update(n)
    seconds = time.perf_counter() - t0
    bar.close()
    previous = read_meta(out)["count"] if meta_path.exists() else 0
    meta = {
        "format": FORMAT, "version": VERSION,
        "count": max(previous, start + count),
        "image_size": int(image_size), "seed": int(seed),
        "mano": "synthetic" if mano_root is None else str(mano_root),
        "background_dir": gen_kwargs["background_dir"], "with_depth": bool(with_depth),
        "distance_m": list(distance_m), "left_fraction": float(left_fraction),
        "split_rule": SPLIT_RULE, "jpeg_quality": int(jpeg_quality),
    }
    tmp = out / f".meta.json.{os.getpid()}"
    tmp.write_text(json.dumps(meta, indent=1))
    tmp.replace(meta_path)
    return dict(meta, seconds=seconds, images_per_s=count / seconds)


def read_meta(root) -> dict:
    """The dataset's meta.json, checked (names the file and the problem)."""
    path = Path(root) / "meta.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {root} is not a complete synthetic dataset "
                                "(write one with `hand-pose synth --out DIR --count N`)")
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} meta file (format={meta.get('format') if isinstance(meta, dict) else None!r})")
    if meta.get("version") != VERSION:
        raise ValueError(f"{path}: unsupported version {meta.get('version')!r} (this reader knows {VERSION})")
    for key, typ in (("count", int), ("image_size", int), ("seed", int), ("with_depth", bool)):
        if not isinstance(meta.get(key), typ):
            raise ValueError(f"{path}: {key!r} must be {typ.__name__}, got {meta.get(key)!r}")
    return meta
