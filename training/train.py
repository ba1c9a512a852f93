"""Train a network: ``python -m training.train --config training/configs/NAME.yaml [key=value ...]``.

The same command runs on one CPU, one GPU, or many GPUs and nodes under ``torchrun``::

    python -m training.train --config training/configs/mano_regressor_synthetic.yaml
    torchrun --nproc_per_node=8 -m training.train --config training/configs/mano_regressor_freihand.yaml
    torchrun --nnodes=4 --nproc_per_node=8 --rdzv_backend=c10d --rdzv_endpoint=HOST:29500 \\
        -m training.train --config ... --resume auto

What it does (see docs/training.md): builds the task (:mod:`training.tasks`) and its model, the
dataset reader (:mod:`training.datasets`) with the crop/augmentation transform, a resumable
distributed sampler (:mod:`training.loader`), the optimizer and the step-indexed learning-rate
schedule (:mod:`training.optim`); then runs ``steps`` optimizer steps (or ``epochs`` epochs)
with DistributedDataParallel when there are several processes, autocast in bf16/fp16 when asked,
gradient clipping, TensorBoard scalars and prediction grids, held-out evaluation, and atomic
checkpoints (:mod:`training.checkpointing`). ``--resume auto`` continues from the newest valid
checkpoint of the run folder after the process was killed at any moment: on the CPU the resumed
run ends with bitwise the same weights as an uninterrupted one.

Outputs in the run folder (``out``): ``config.yaml``, ``train.log``, ``tb/`` (TensorBoard),
``checkpoints/step_N/``, ``model.safetensors`` (the final model, loadable with
``hand_pose_core.models.load_model``) and ``val_metrics.json``.
"""
from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from . import checkpointing as ckpt
from . import distributed as D
from .config import ConfigError, dump, import_plugins, load_config
from .optim import build_optimizer, lr_factor, set_lr


def _fmt_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def to_device(batch: dict, device: torch.device) -> dict:
    non_blocking = device.type == "cuda"
    return {k: (v.to(device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v)
            for k, v in batch.items()}


def rank_seed(seed: int, rank: int) -> int:
    """Seed of a rank's global RNGs (dropout etc.): independent streams per rank."""
    return int(np.random.SeedSequence([seed & 0xFFFFFFFF, rank, 0xD0]).generate_state(1, np.uint64)[0] >> 1)


def seed_all(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed & 0xFFFFFFFF)
    torch.manual_seed(seed)


def model_identity(task, task_cfg: dict) -> tuple[str, dict]:
    """(model name, constructor cfg) of the task's model, for the model file's metadata."""
    name = getattr(task, "model_name", None)
    mcfg = getattr(task, "model_cfg", None)
    if name is None:
        raise ConfigError(f"task {type(task).__name__} does not say which model it builds: give it "
                          "attributes model_name and model_cfg (a name of hand_pose_core.models.create "
                          "and its keyword arguments)")
    return name, dict(mcfg or {})


class Logger:
    """Log lines on rank 0: to stdout (around the tqdm bar) and to RUN/train.log."""

    def __init__(self, info: D.DistInfo, path: Path | None):
        self.info = info
        self.file = open(path, "a") if (path is not None and info.is_main) else None
        self.bar = None

    def __call__(self, msg: str) -> None:
        if not self.info.is_main:
            return
        line = f"[train] {msg}"
        if self.bar is not None and not self.bar.disable:
            self.bar.write(line)
        else:
            print(line, flush=True)
        if self.file is not None:
            self.file.write(time.strftime("%Y-%m-%dT%H:%M:%S ") + line + "\n")
            self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


class Trainer:
    def __init__(self, cfg: dict, info: D.DistInfo):
        self.cfg = cfg
        self.info = info
        self.out = Path(cfg["out"])
        self.device = info.device
        self.stop_requested = False
        self.stop_signal = None

    # ------------------------------------------------------------------ set-up
    def setup(self) -> None:
        from .datasets import build_dataset  # noqa: F401  (registers the readers' names)
        from .loader import make_dataset, train_loader
        from .tasks import build_task

        cfg, info = self.cfg, self.info
        if info.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        D.barrier(info)
        self.log = Logger(info, self.out / "train.log")
        import_plugins(cfg)

        precision = cfg["precision"]
        if precision == "fp16" and self.device.type != "cuda":
            raise ConfigError("precision fp16 needs a CUDA device (loss scaling with GradScaler); "
                              "use precision=bf16 on the CPU")
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        self.scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None

        task_cfg = {k: v for k, v in cfg["task"].items() if k != "name"}
        self.task = build_task(cfg["task"]["name"], task_cfg)
        seed_all(cfg["seed"])  # the same initial weights on every rank and in every run
        model = self.task.build_model()
        self.model_name, self.model_cfg = model_identity(self.task, task_cfg)
        if cfg["init"]:
            self._init_from(model, cfg["init"])
        model = model.to(self.device)
        if info.distributed and cfg["sync_batchnorm"]:
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model
        self.optimizer = build_optimizer(cfg["optim"], model)
        if info.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = DDP(model, device_ids=ids, find_unused_parameters=cfg["find_unused_parameters"])
        else:
            self.ddp = model

        data = cfg["data"]
        self.dataset = make_dataset(data, data["split"], train=True)
        try:
            self.loader, self.sampler = train_loader(data, self.dataset, cfg["seed"], info.rank, info.world_size,
                                                     pin_memory=self.device.type == "cuda")
        except ValueError as err:  # batch vs dataset size / number of processes
            raise ConfigError(f"data: {err}") from err
        self.steps_per_epoch = self.sampler.steps_per_epoch
        self.total_steps = cfg["steps"] or cfg["epochs"] * self.steps_per_epoch
        self.global_batch = data["batch_size"]
        self.val_loader = None
        if data.get("val_split"):
            from .loader import eval_loader

            val_ds = make_dataset(data, data["val_split"], train=False)
            self.val_loader = eval_loader(data, val_ds, cfg["seed"], info.rank, info.world_size,
                                          data.get("val_max_samples"), pin_memory=self.device.type == "cuda")
        n_params = sum(p.numel() for p in model.parameters())
        self.log(f"task {cfg['task']['name']} / model {self.model_name} ({n_params / 1e6:.2f} M parameters) on "
                 f"{info.world_size} process(es), {self.device.type}"
                 f"{' (' + info.backend + ')' if info.backend else ''}; precision {precision}")
        self.log(f"data {data['name']} split {data['split']}: {len(self.dataset)} samples, global batch "
                 f"{self.global_batch} ({self.sampler.per_rank} per process), {self.steps_per_epoch} steps/epoch, "
                 f"{self.total_steps} steps ({self.total_steps / self.steps_per_epoch:.2f} epochs)")
        if info.is_main:
            (self.out / "config.yaml").write_text(dump(cfg))
        self.step = 0

    def _init_from(self, model, path) -> None:
        """Start from the weights of a model file (fine-tuning); same network and config required.
        ``init`` is the one key for it (the old ``task.init_from`` is moved here by the config)."""
        from hand_pose_core.models.checkpoint import load_weights_into

        from .evaluate import resolve_model_file

        if not Path(path).exists():
            raise ckpt.CheckpointError(f"init: model file {path} does not exist")
        path = resolve_model_file(path)
        meta = load_weights_into(model, path, self.model_name, what="init")
        self.log(f"init: weights from {path} (step {meta['extra'].get('step')} of its run)")

    # ------------------------------------------------------------------ state
    def _train_state(self) -> dict:
        epoch, pos = divmod(self.step, self.steps_per_epoch)
        cfg = {k: v for k, v in self.cfg.items() if not k.startswith("_")}
        return {
            "step": self.step, "epoch": epoch, "batch_in_epoch": pos,
            "steps_per_epoch": self.steps_per_epoch, "dataset_len": len(self.dataset),
            "global_batch": self.global_batch, "world_size": self.info.world_size,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "config_json": json.dumps(cfg, sort_keys=True),
        }

    def model_extra(self, **more) -> dict:
        cfg = {k: v for k, v in self.cfg.items() if not k.startswith("_")}
        return {"task": self.cfg["task"]["name"], "task_cfg": {k: v for k, v in self.cfg["task"].items() if k != "name"},
                "crop_size": self.cfg["data"]["crop_size"], "step": self.step, "config": cfg, **more}

    def save_checkpoint(self) -> Path:
        t0 = time.perf_counter()
        path = ckpt.write_checkpoint(
            self.out / "checkpoints", self.step, rank=self.info.rank, world_size=self.info.world_size,
            rank_state=ckpt.capture_rng(), model=self.model, model_name=self.model_name,
            model_cfg=self.model_cfg, model_extra=self.model_extra(),
            train_state=self._train_state() if self.info.is_main else None,
            barrier=lambda: D.barrier(self.info), keep=self.cfg["ckpt"]["keep"])
        self.log(f"checkpoint step {self.step}: {path} ({time.perf_counter() - t0:.2f} s)")
        return path

    def resume(self, spec: str) -> bool:
        """Load the checkpoint ``--resume spec`` names; False when 'auto' finds none."""
        step = -1
        path = None
        if self.info.is_main:
            path = ckpt.find_resume(spec, self.out, self.log, quarantine=True)
            step = int(path.name.split("_")[1]) if path is not None else -1
        step = D.broadcast_int(self.info, step)
        if step < 0:
            self.log(f"resume {spec}: no checkpoint in {self.out / 'checkpoints'}; starting from scratch")
            return False
        if path is None:  # other ranks: the folder rank 0 chose
            path = ckpt.resume_root(spec, self.out) / ckpt.step_dir_name(step)
        state = ckpt.load_checkpoint(path, self.info.rank)
        if state["model_meta"]["model_name"] != self.model_name:
            raise ckpt.CheckpointError(f"checkpoint {path} holds model {state['model_meta']['model_name']!r}, "
                                       f"the config builds {self.model_name!r}")
        try:
            self.model.load_state_dict(state["model_state"], strict=True)
        except RuntimeError as err:
            raise ckpt.CheckpointError(f"checkpoint {path / ckpt.MODEL_FILE} does not fit the model: {err}") from err
        ts = state["train_state"]
        try:
            self.optimizer.load_state_dict(ts["optimizer"])
        except (ValueError, KeyError) as err:
            raise ckpt.CheckpointError(f"checkpoint {path / ckpt.STATE_FILE}: optimizer state does not fit "
                                       f"({err})") from err
        if self.scaler is not None and ts.get("scaler"):
            self.scaler.load_state_dict(ts["scaler"])
        self.step = int(ts["step"])
        old_cfg = json.loads(ts.get("config_json", "{}"))
        new_cfg = {k: v for k, v in self.cfg.items() if not k.startswith("_")}
        changed = sorted(_diff_keys(old_cfg, new_cfg))
        if changed:
            self.log(f"resume: the config differs from the checkpoint's in {', '.join(changed)}")
        exact = True
        if (ts["dataset_len"], ts["global_batch"]) != (len(self.dataset), self.global_batch):
            self.log(f"resume: WARNING dataset size / global batch changed ({ts['dataset_len']}, {ts['global_batch']}) "
                     f"-> ({len(self.dataset)}, {self.global_batch}): the data order after the resume differs")
            exact = False
        if ts["world_size"] != self.info.world_size or state["rank_state"] is None:
            self.log(f"resume: {ts['world_size']} process(es) wrote the checkpoint, {self.info.world_size} now: "
                     "RNG streams are re-seeded (the run is not bitwise reproducible)")
            seed_all(rank_seed(self.cfg["seed"] + self.step, self.info.rank))
            exact = False
        else:
            self._rng_to_restore = state["rank_state"]
        epoch, pos = divmod(self.step, self.steps_per_epoch)
        self.log(f"resumed from {path}: step {self.step}, epoch {epoch}, batch {pos}/{self.steps_per_epoch}"
                 f"{'' if exact else ' (not exact)'}")
        return True

    # ------------------------------------------------------------------ loop
    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def train_step(self, batch: dict) -> dict:
        cfg = self.cfg
        lr = set_lr(self.optimizer, cfg["optim"]["lr"], lr_factor(cfg["schedule"], self.step, self.total_steps))
        batch = to_device(batch, self.device)
        self.ddp.train()
        with self._autocast():
            loss, terms = self.task.loss(self.ddp, batch)
        if not torch.isfinite(loss.detach()).all():
            raise FloatingPointError(f"loss is {float(loss.detach())} at step {self.step} (terms: "
                                     f"{ {k: float(v) for k, v in terms.items()} }); stopping. Resume from the "
                                     "last checkpoint with a lower optim.lr or a grad_clip")
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        grad_norm = None
        if cfg["grad_clip"] > 0:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg["grad_clip"]))
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        out = {"loss": float(loss.detach())}
        for k, v in terms.items():
            out[k if k.startswith("loss") else f"loss/{k}"] = float(v)
        if grad_norm is not None:
            out["grad_norm"] = grad_norm
        out["lr"] = lr
        return out

    def _reduce_means(self, sums: dict, count: int) -> dict:
        keys = sorted(sums)
        vec = torch.tensor([sums[k] for k in keys] + [float(count)], dtype=torch.float64)
        vec = D.all_reduce_sum(self.info, vec)
        n = max(vec[-1].item(), 1.0)
        return {k: vec[i].item() / n for i, k in enumerate(keys)}

    def _images(self, batch: dict) -> None:
        draw = getattr(self.task, "draw", None)
        if draw is None or self.writer is None:
            return
        model = self.model
        was_training = model.training
        model.eval()
        try:
            b = to_device(batch, self.device)
            n = self.cfg["log"]["images"]
            b = {k: v[:n] for k, v in b.items()}
            with torch.no_grad(), self._autocast():
                pred = self.task.predict(model, b)
            grid = np.asarray(draw(b, pred))[:n]
            self.writer.add_images("train/predictions", grid, self.step, dataformats="NHWC")
        finally:
            model.train(was_training)

    def evaluate(self) -> dict | None:
        if self.val_loader is None:
            return None
        from .evaluate import evaluate_model

        t0 = time.perf_counter()
        metrics = evaluate_model(self.task, self.model, self.val_loader, self.info, self.amp_dtype)
        shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, (int, float)))
        self.log(f"eval step {self.step} on {self.cfg['data']['val_split']} "
                 f"({time.perf_counter() - t0:.1f} s): {shown}")
        if self.writer is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)) and math.isfinite(v):
                    self.writer.add_scalar(f"val/{k}", v, self.step)
            self.writer.flush()
        return metrics

    def fit(self, resume: str | None = None) -> Path | None:
        cfg, info = self.cfg, self.info
        self._rng_to_restore = None
        resumed = self.resume(resume) if resume else False
        self.writer = None
        if info.is_main and cfg["log"]["tensorboard"]:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.out / "tb"), purge_step=self.step if resumed else None)
        from tqdm import tqdm

        bar = tqdm(total=self.total_steps, initial=self.step, desc="train", dynamic_ncols=True,
                   disable=None if (info.is_main and cfg["log"]["progress"]) else True)
        self.log.bar = bar
        # the global RNGs at the start of the loop: restored exactly, or seeded per rank
        if self._rng_to_restore is not None:
            ckpt.restore_rng(self._rng_to_restore)
        elif not resumed:
            seed_all(rank_seed(cfg["seed"], info.rank))
        self._install_signal_handlers()
        try:
            return self._loop(bar, resumed)
        finally:
            self._restore_signal_handlers()

    def _loop(self, bar, resumed: bool) -> Path | None:
        cfg, info = self.cfg, self.info

        log_every, img_every = cfg["log"]["interval"], cfg["log"]["image_interval"]
        ckpt_every, eval_every = cfg["ckpt"]["interval"], cfg["eval"]["interval"]
        sums, count = {}, 0
        t_last, step_last = time.perf_counter(), self.step
        t_start, step_start = t_last, self.step
        last_ckpt = self.step if resumed else -1
        metrics = None
        if cfg["eval"]["at_start"] and not resumed:
            self.evaluate()
        while self.step < self.total_steps and not self.stop_requested:
            epoch, pos = divmod(self.step, self.steps_per_epoch)
            self.sampler.set_epoch(epoch)
            self.sampler.set_start(pos)
            for batch in self.loader:
                terms = self.train_step(batch)
                self.step += 1
                bar.update(1)
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + v
                count += 1
                if img_every and self.step % img_every == 0 and info.is_main:
                    self._images(batch)
                if self.step % log_every == 0 or self.step == self.total_steps:
                    means = self._reduce_means(sums, count)
                    now = time.perf_counter()
                    steps_s = (self.step - step_last) / max(now - t_last, 1e-9)
                    eta = (self.total_steps - self.step) / max(steps_s, 1e-9)
                    self._log_step(means, steps_s, eta)
                    sums, count, t_last, step_last = {}, 0, now, self.step
                if eval_every and self.step % eval_every == 0 and self.step < self.total_steps:
                    metrics = self.evaluate()
                if ckpt_every and self.step % ckpt_every == 0 and self.step < self.total_steps:
                    self.save_checkpoint()
                    last_ckpt = self.step
                if self._stop_agreed() or self.step >= self.total_steps:
                    break
            self.sampler.set_start(0)
        bar.close()
        self.log.bar = None
        if self.stop_requested and self.step < self.total_steps:
            if last_ckpt != self.step:
                self.save_checkpoint()
            self.log(f"stopped by a signal at step {self.step}; continue with --resume auto")
            return None
        if last_ckpt != self.step:
            self.save_checkpoint()
        if cfg["eval"]["at_end"] and self.val_loader is not None:
            metrics = self.evaluate()
        final = self.out / "model.safetensors"
        if info.is_main:
            from hand_pose_core.models.checkpoint import save_model

            save_model(final, self.model, self.model_name, self.model_cfg,
                       self.model_extra(val_metrics=metrics or {}))
            if metrics is not None:
                (self.out / "val_metrics.json").write_text(json.dumps(metrics, indent=1, sort_keys=True))
        elapsed = time.perf_counter() - t_start
        done = self.step - step_start
        self.log(f"done: {done} steps in {_fmt_duration(elapsed)} ({done / max(elapsed, 1e-9):.2f} steps/s); "
                 f"model {final}")
        if self.writer is not None:
            self.writer.close()
        D.barrier(info)
        return final

    def _log_step(self, means: dict, steps_s: float, eta: float) -> None:
        loss = means.get("loss", float("nan"))
        terms = " ".join(f"{k.split('/', 1)[1]} {v:.4g}" for k, v in means.items()
                         if k.startswith("loss/") and k != "loss/total")
        epoch = self.step / self.steps_per_epoch
        imgs_s = steps_s * self.global_batch
        self.log(f"step {self.step}/{self.total_steps} epoch {epoch:.2f} loss {loss:.5g}"
                 f"{' [' + terms + ']' if terms else ''} lr {means.get('lr', 0):.3g} "
                 f"{steps_s:.2f} steps/s {imgs_s:.1f} img/s eta {_fmt_duration(eta)}")
        if self.log.bar is not None:
            self.log.bar.set_postfix(loss=f"{loss:.4g}")
        if self.writer is not None:
            for k, v in means.items():
                self.writer.add_scalar(f"train/{k}", v, self.step)
            self.writer.add_scalar("perf/steps_per_s", steps_s, self.step)
            self.writer.add_scalar("perf/images_per_s", imgs_s, self.step)
            self.writer.flush()

    # ------------------------------------------------------------------ signals
    def _install_signal_handlers(self) -> None:
        self._old_handlers = {}

        def handler(signum, frame):
            if self.stop_requested:  # a second signal: stop now
                raise KeyboardInterrupt
            self.log(f"got signal {signum}: writing a checkpoint after this step, then stopping")
            self.stop_requested = True
            self.stop_signal = signum

        for sig in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGUSR1", None)):
            if sig is not None:
                try:
                    self._old_handlers[sig] = signal.signal(sig, handler)
                except ValueError:  # not the main thread
                    pass

    def _restore_signal_handlers(self) -> None:
        for sig, old in getattr(self, "_old_handlers", {}).items():
            signal.signal(sig, old)
        self._old_handlers = {}

    def _stop_agreed(self) -> bool:
        """All ranks stop at the same step when any of them got SIGTERM/SIGINT/SIGUSR1."""
        if self.info.distributed:
            self.stop_requested = D.all_reduce_max(self.info, 1.0 if self.stop_requested else 0.0) > 0
        return self.stop_requested


def _diff_keys(a, b, prefix="") -> set:
    if isinstance(a, dict) and isinstance(b, dict):
        out = set()
        for k in set(a) | set(b):
            out |= _diff_keys(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return set() if a == b else {prefix.rstrip(".")}


def user_errors() -> tuple:
    """Errors that are the user's input (config, files, data), shown as one line, no traceback."""
    from .datasets.sample import SampleError

    errs = [ConfigError, ckpt.CheckpointError, FileNotFoundError, SampleError]
    try:
        from .datasets.native_io import DatasetFormatError
        errs.append(DatasetFormatError)
    except ImportError:
        pass
    return tuple(errs)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        prog="python -m training.train",
        description="Train a hand pose network (one process, or many under torchrun).",
        epilog="example: python -m training.train --config training/configs/mano_regressor_synthetic.yaml "
               "optim.lr=3e-4 data.batch_size=64")
    ap.add_argument("--config", required=True, help="YAML config (training/configs/*.yaml)")
    ap.add_argument("--resume", default=None, metavar="auto|DIR",
                    help="'auto': newest valid checkpoint of the run folder (or start fresh); "
                         "DIR: that checkpoint folder, or a run folder")
    ap.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. optim.lr=3e-4")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    info = D.init(cfg["device"])
    trainer = Trainer(cfg, info)
    try:
        trainer.setup()
        if trainer.fit(args.resume) is None:  # stopped by a signal, checkpoint written
            return 128 + int(trainer.stop_signal or signal.SIGTERM)
    except user_errors() as err:
        print(f"error (rank {info.rank}): {err}", file=sys.stderr, flush=True)
        return 2
    finally:
        if hasattr(trainer, "log"):
            trainer.log.close()
        D.shutdown(info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
