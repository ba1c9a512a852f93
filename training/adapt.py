"""``hand-pose adapt VIDEO|DIR|BAG --out MODEL``: from a user's recordings to a MANO regressor
adapted to their camera, lighting and hands, in one command.

1. pseudo-label: the default tracker labels every hand in the footage
   (:func:`training.pseudo_label.pseudo_label`; a folder that already holds such labels, i.e.
   a ``meta.json`` of format ``hand_pose_ros/footage``, is used as is);
2. fine-tune: the S2HAND self-supervised task (:mod:`training.tasks.s2hand`) trains the MANO
   regressor on the pseudo-labels with the trainer (:mod:`training.train`), starting from
   ``init`` (a ``mano_regressor`` model file) or from scratch; config
   ``training/configs/s2hand_adapt_footage.yaml`` plus ``overrides``;
3. export: the trained model file is checked to load as an estimator lifter and written
   atomically to ``out`` (``HandPoseEstimator(model='mano_regressor', checkpoint=out)``, node
   parameters ``model``/``checkpoint``).
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

CONFIG = Path(__file__).resolve().parent / "configs" / "s2hand_adapt_footage.yaml"


def _is_footage_dir(path: Path) -> bool:
    meta = path / "meta.json"
    if not (path.is_dir() and meta.is_file()):
        return False
    try:
        return json.loads(meta.read_text()).get("format") == "hand_pose_ros/footage"
    except (OSError, ValueError):
        return False


def adapt(source, out, *, init=None, K=None, steps: int = 300, crop_size: int = 128, workdir=None,
          every: int = 1, max_frames: int | None = None, overrides=(), progress: bool = True) -> dict:
    """Run the three steps above; returns timings and paths. ``workdir`` keeps the labels and
    the training run (default: a temporary folder, removed afterwards)."""
    from hand_pose_core.models.checkpoint import read_model_file
    from hand_pose_core.paths import atomic_write_bytes
    from hand_pose_core.pipeline.lifters import load_lifter

    source, out = Path(source), Path(out)
    if not source.exists():
        raise FileNotFoundError(f"{source} does not exist")
    if init is not None:
        _, meta = read_model_file(init)
        if meta["model_name"] != "mano_regressor":
            raise ValueError(f"--init {init} holds a {meta['model_name']!r} model; adapt fine-tunes a mano_regressor")
    tmp = None
    if workdir is None:
        tmp = tempfile.mkdtemp(prefix="hand_pose_adapt_")
        workdir = Path(tmp)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    times = {}
    try:
        t0 = time.perf_counter()
        if _is_footage_dir(source):
            labels = source
        else:
            from training.pseudo_label import pseudo_label

            labels = workdir / "labels"
            if _is_footage_dir(labels):
                shutil.rmtree(labels)
            pseudo_label(source, labels, K=K, crop_size=max(int(crop_size), 128), every=every,
                         max_frames=max_frames, progress=progress)
        times["pseudo_label_s"] = time.perf_counter() - t0
        meta = json.loads((labels / "meta.json").read_text())
        if int(meta.get("count", 0)) == 0:
            raise ValueError(f"the tracker found no hands in {source}: nothing to adapt to")

        from training.train import main as train_main

        run = workdir / "run"
        args = ["--config", str(CONFIG), f"data.root={labels}", f"steps={int(steps)}", f"out={run}",
                f"data.crop_size={int(crop_size)}", f"log.progress={'true' if progress else 'false'}"]
        if init is not None:
            args.append(f"init={Path(init).resolve()}")
        t0 = time.perf_counter()
        rc = train_main(args + list(overrides))
        times["train_s"] = time.perf_counter() - t0
        if rc != 0:
            raise RuntimeError(f"fine-tuning failed (exit {rc}); see {run / 'train.log'}")
        model_file = run / "model.safetensors"
        load_lifter(model_file, expected_model="mano_regressor")  # it runs in the estimator
        atomic_write_bytes(out, model_file.read_bytes())
        return {"out": str(out), "labels": str(labels), "hands": int(meta["count"]), **times}
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


__all__ = ["adapt", "CONFIG"]
