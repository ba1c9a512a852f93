"""The trainer end to end in real processes: a smoke run whose loss falls, SIGKILL mid-epoch +
``--resume auto`` = bitwise the uninterrupted weights, ``torchrun --nproc_per_node=2`` (gloo) =
one process with the same global batch, corrupt checkpoints refused.

The task/dataset/model are the small real ones of ``tests/training_toy.py``."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
TORCHRUN = str(Path(PY).with_name("torchrun"))


def toy_config(tmp: Path, name: str, **over) -> Path:
    cfg = {
        "imports": ["tests.training_toy"],
        "task": {"name": "toy_joints", "model": {"width": 8}},
        "data": {"name": "toy_hands", "transform": False, "crop_size": 32, "batch_size": 8, "workers": 0,
                 "options": {"length": 64}},
        "optim": {"name": "adamw", "lr": 3e-3},
        "steps": 40,
        "log": {"interval": 10, "image_interval": 0, "progress": False},
        "ckpt": {"interval": 0, "keep": 3},
        "out": str(tmp / name),
    }
    for key, value in over.items():
        sec, _, sub = key.partition("__")
        if sub:
            cfg.setdefault(sec, {})[sub] = value
        else:
            cfg[sec] = value
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    e["OMP_NUM_THREADS"] = "1"
    e.pop("RANK", None), e.pop("WORLD_SIZE", None), e.pop("LOCAL_RANK", None)
    return e


def train(cfg: Path, *args, timeout=240) -> subprocess.CompletedProcess:
    """A training run in its own process."""
    return subprocess.run([PY, "-m", "training.train", "--config", str(cfg), *args], cwd=ROOT, env=env(),
                          capture_output=True, text=True, timeout=timeout)


def train_here(cfg: Path, capsys, *args) -> tuple[int, str, str]:
    """A training run in this process (cheaper: no interpreter start): (exit code, stdout, stderr)."""
    from training.train import main

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    capsys.readouterr()
    rc = main(["--config", str(cfg), *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def losses(stdout: str) -> list[float]:
    return [float(m) for m in re.findall(r"^\[train\] step \d+/\d+ epoch \S+ loss (\S+)", stdout, re.M)]


def test_smoke_run_loss_falls_and_writes_a_loadable_model(tmp_path, capsys):
    from hand_pose_core.models.checkpoint import load_model

    cfg = toy_config(tmp_path, "smoke", steps=60, log={"interval": 10, "image_interval": 30, "progress": False},
                     data={"name": "toy_hands", "transform": False, "crop_size": 32, "batch_size": 8, "workers": 0,
                           "options": {"length": 64}, "val_split": "val", "val_options": {"length": 24}},
                     eval={"interval": 30, "at_start": True})
    rc, out, err = train_here(cfg, capsys)
    assert rc == 0, out + err
    ls = losses(out)
    assert len(ls) == 6, out
    assert ls[-1] < 0.5 * ls[0], f"loss did not fall: {ls}"
    run = tmp_path / "smoke"
    assert "toy_joints" in (run / "config.yaml").read_text()
    events = list((run / "tb").glob("events.out.tfevents.*"))
    assert events, "no TensorBoard event file"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tb"), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    assert {"train/loss", "train/lr", "train/loss/joints_2d", "perf/images_per_s"} <= set(tags["scalars"])
    assert [e.step for e in acc.Scalars("train/loss")] == [10, 20, 30, 40, 50, 60]
    assert "train/predictions" in tags["images"]
    assert [e.step for e in acc.Scalars("val/pa_mpjpe_mm")] == [0, 30, 60]
    before, after = acc.Scalars("val/pa_mpjpe_mm")[0].value, acc.Scalars("val/pa_mpjpe_mm")[-1].value
    assert after < before, (before, after)
    val = json.loads((run / "val_metrics.json").read_text())
    assert val["n_samples"] == 24 and val["pa_mpjpe_mm"] > 0
    # the curves picture for the docs
    from PIL import Image

    from training.curves import main as curves

    assert curves([str(run), "--out", str(tmp_path / "c.png")]) == 0
    img = np.asarray(Image.open(tmp_path / "c.png").convert("RGB"))
    assert img.shape[0] > 400 and img.shape[1] > 800
    assert ((img[..., 2] > 150) & (img[..., 0] < 80)).sum() > 200  # the blue curves were drawn
    import tests.training_toy  # noqa: F401  (registers the toy model for load_model)

    model, meta = load_model(run / "model.safetensors")
    assert meta["model_name"] == "toy_joint_net" and meta["extra"]["step"] == 60
    assert meta["extra"]["task"] == "toy_joints" and meta["extra"]["config"]["seed"] == 0
    assert (run / "checkpoints" / "step_00000060" / "manifest.json").is_file()


def _kill_at(cfg: Path, pattern: str, timeout=240) -> tuple[int, str]:
    """Start a training run and SIGKILL it as soon as a stdout line matches ``pattern``."""
    p = subprocess.Popen([PY, "-m", "training.train", "--config", str(cfg)], cwd=ROOT, env=env(),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    seen = []
    t0 = time.monotonic()
    try:
        for line in p.stdout:
            seen.append(line)
            if re.search(pattern, line):
                os.kill(p.pid, signal.SIGKILL)
                break
            assert time.monotonic() - t0 < timeout
        p.wait(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return p.returncode, "".join(seen)


@pytest.mark.heavy
def test_sigkill_mid_epoch_then_resume_is_bitwise_identical(tmp_path):
    # 8 steps per epoch; dropout, reader noise from the global RNG and 2 data-loader workers, so
    # the data order, the per-sample randomness and the dropout RNG must all be restored
    common = dict(steps=28, data={"name": "toy_hands", "transform": False, "crop_size": 32, "batch_size": 8,
                                  "workers": 2, "options": {"length": 64, "noise": 0.05}},
                  task={"name": "toy_joints", "model": {"width": 8, "dropout": 0.3}},
                  log={"interval": 1, "image_interval": 0, "progress": False}, ckpt={"interval": 3, "keep": 2})
    ref = train(toy_config(tmp_path, "ref", **common))
    assert ref.returncode == 0, ref.stdout + ref.stderr

    cfg = toy_config(tmp_path, "killed", **common)
    rc, out = _kill_at(cfg, r"^\[train\] step 13/28 ")
    assert rc == -signal.SIGKILL, out
    run = tmp_path / "killed"
    assert not (run / "model.safetensors").exists(), "the run finished before it was killed"
    last = int(re.findall(r"step (\d+)/28", out)[-1])
    assert 8 < last < 28, "not killed mid-run"

    res = train(cfg, "--resume", "auto")
    assert res.returncode == 0, res.stdout + res.stderr
    m = re.search(r"resumed from \S+step_(\d+): step (\d+), epoch (\d+), batch (\d+)/8", res.stdout)
    assert m, res.stdout
    step = int(m.group(2))
    assert step % 3 == 0 and step >= 9 and step % 8 != 0, f"resumed at step {step}: not mid-epoch"
    a, b = weights(tmp_path / "ref" / "model.safetensors"), weights(run / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after the resume (max {float((a[k] - b[k]).abs().max())})"
    # and the resumed run trained: it differs from the checkpoint it started from
    start = weights(run / "checkpoints" / f"step_{step:08d}" / "model.safetensors") if (
        run / "checkpoints" / f"step_{step:08d}").exists() else None
    if start is not None:
        assert any(not torch.equal(start[k], b[k]) for k in b)


@pytest.mark.heavy
def test_torchrun_two_processes_match_one_process(tmp_path, capsys):
    common = dict(steps=12, log={"interval": 4, "image_interval": 0, "progress": False},
                  data={"name": "toy_hands", "transform": False, "crop_size": 32, "batch_size": 8, "workers": 0,
                        "options": {"length": 48, "noise": 0.05}})
    rc, one_out, err = train_here(toy_config(tmp_path, "one", **common), capsys)
    assert rc == 0, one_out + err
    cfg2 = toy_config(tmp_path, "two", **common)
    r = subprocess.run([TORCHRUN, "--standalone", "--nproc_per_node=2", "-m", "training.train", "--config", str(cfg2)],
                       cwd=ROOT, env=env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "on 2 process(es), cpu (gloo)" in r.stdout, r.stdout
    assert "(4 per process)" in r.stdout
    a, b = weights(tmp_path / "one" / "model.safetensors"), weights(tmp_path / "two" / "model.safetensors")
    for k in a:
        diff = float((a[k] - b[k]).abs().max())
        assert diff < 2e-5 * max(1.0, float(a[k].abs().max())), f"{k}: 1 vs 2 processes differ by {diff}"
    # the logged losses agree too (averaged over both ranks)
    la, lb = losses(one_out), losses(r.stdout)
    assert len(la) == len(lb) == 3 and all(abs(x - y) < 1e-4 * max(1, x) for x, y in zip(la, lb)), (la, lb)


def test_resume_refuses_corrupt_checkpoint_and_auto_falls_back(tmp_path, capsys):
    cfg = toy_config(tmp_path, "c", steps=12, ckpt={"interval": 4, "keep": 0}, log={"tensorboard": False})
    rc, out, err = train_here(cfg, capsys)
    assert rc == 0, out + err
    ck = tmp_path / "c" / "checkpoints"
    assert sorted(p.name for p in ck.iterdir()) == ["step_00000004", "step_00000008", "step_00000012"]
    # truncate the newest model file, flip one byte of the one before
    newest = ck / "step_00000012" / "model.safetensors"
    newest.write_bytes(newest.read_bytes()[:-100])
    mid = ck / "step_00000008" / "train_state.safetensors"
    data = bytearray(mid.read_bytes())
    data[-5] ^= 0xFF
    mid.write_bytes(bytes(data))
    # a half-written checkpoint (killed while writing) is ignored
    (ck / ".step_00000016.partial").mkdir()
    (ck / ".step_00000016.partial" / "model.safetensors").write_bytes(b"\0" * 10)

    # explicit: refused, naming the file
    rc, out, err = train_here(cfg, capsys, "--resume", str(ck / "step_00000012"))
    assert rc == 2 and "step_00000012/model.safetensors is truncated" in err, err
    rc, out, err = train_here(cfg, capsys, "--resume", str(ck / "step_00000008"))
    assert rc == 2 and "step_00000008/train_state.safetensors is corrupt" in err, err
    (ck / "step_00000004" / "manifest.json").write_text('{"format": "hand_pose_ros.checkpoint/1", "fi')
    rc, out, err = train_here(cfg, capsys, "--resume", str(ck / "step_00000004"))
    assert rc == 2 and "step_00000004/manifest.json is corrupt or truncated" in err, err
    rc, out, err = train_here(cfg, capsys, "--resume", str(tmp_path / "c"))  # a run folder: none valid
    assert rc == 2 and "no valid checkpoint" in err, err
    assert all((ck / f"step_{s:08d}.refused").is_dir() for s in (4, 8, 12))  # moved aside, kept
    os.rename(ck / "step_00000004.refused", ck / "step_00000002")  # (a valid one, see below)
    (ck / "step_00000002" / "manifest.json").unlink()
    rc, out, err = train_here(cfg, capsys, "--resume", str(ck / "step_00000002"))
    assert rc == 2 and "step_00000002 is incomplete" in err, err

    # auto: falls back to the newest good checkpoint and says so
    (ck / "step_00000002").rename(tmp_path / "trash")
    rc, out, err = train_here(toy_config(tmp_path, "c", steps=16, ckpt={"interval": 4, "keep": 0},
                                         log={"tensorboard": False}), capsys)
    assert rc == 0, out + err  # (overwrites the run: 4 good checkpoints again)
    newest = ck / "step_00000016" / "model.safetensors"
    newest.write_bytes(newest.read_bytes()[:-100])
    data = bytearray((ck / "step_00000012" / "rank_00000.safetensors").read_bytes())
    data[len(data) // 2] ^= 0x01
    (ck / "step_00000012" / "rank_00000.safetensors").write_bytes(bytes(data))
    rc, out, err = train_here(cfg, capsys, "steps=18", "--resume", "auto")
    assert rc == 0, out + err
    assert re.search(r"refusing checkpoint \S+step_00000016: .*truncated.*falling back.*step_00000012", out), out
    assert re.search(r"refusing checkpoint \S+step_00000012: .*corrupt.*falling back.*step_00000008", out), out
    assert re.search(r"resumed from \S+step_00000008: step 8", out), out
    assert "config differs from the checkpoint's in steps" in out
    # the refused ones were moved aside (kept for inspection, no longer checkpoints)
    assert (ck / "step_00000016.refused").is_dir() and (ck / "step_00000012.refused").is_dir()
    assert sorted(p.name for p in ck.iterdir() if p.name.startswith("step_") and "." not in p.name) == [
        "step_00000004", "step_00000008", "step_00000012", "step_00000016", "step_00000018"]


def test_evaluate_cli_writes_metrics_and_refuses_bad_files(tmp_path, capsys):
    from hand_pose_core.models.checkpoint import save_model
    from training.evaluate import main as evaluate

    import tests.training_toy as toy

    cfg = toy_config(tmp_path, "ev", steps=40, log={"tensorboard": False}, ckpt={"interval": 20},
                     data={"name": "toy_hands", "transform": False, "crop_size": 32, "batch_size": 8, "workers": 0,
                           "options": {"length": 64}, "val_split": "val", "val_options": {"length": 40}},
                     eval={"at_end": False})
    rc, out, err = train_here(cfg, capsys)
    assert rc == 0, out + err
    run = tmp_path / "ev"

    def ev(*args):
        capsys.readouterr()
        rc = evaluate(list(args))
        o = capsys.readouterr()
        return rc, o.out, o.err

    rc, out, err = ev("--config", str(cfg), "--checkpoint", str(run), "--out", str(tmp_path / "m.json"),
                      "--images", str(tmp_path / "pics" / "grid.png"), "--images-count", "10")
    assert rc == 0, out + err
    import cv2

    grid = cv2.imread(str(tmp_path / "pics" / "grid.png"))
    assert grid.shape == (2 + 2 * (32 + 2), 2 + 8 * (32 + 2), 3)  # 10 crops of 32 px, 8 per row
    assert grid[2:34, 2:34].std() > 0  # a drawn crop, not padding
    report = json.loads((tmp_path / "m.json").read_text())
    m = report["metrics"]
    assert report["split"] == "val" and report["step"] == 40 and m["n_samples"] == 40 and m["n_3d"] == 40
    for key in ("mpjpe_mm", "pa_mpjpe_mm", "rr_mpjpe_mm", "auc_20_50", "epe2d_px"):
        assert np.isfinite(m[key]) and key in out
    # the config stored in the model file is enough; a checkpoint folder works too
    rc, out2, err = ev("--checkpoint", str(run / "checkpoints" / "step_00000040"), "--out", str(tmp_path / "m2.json"))
    assert rc == 0, out2 + err
    assert json.loads((tmp_path / "m2.json").read_text())["metrics"]["pa_mpjpe_mm"] == m["pa_mpjpe_mm"]
    # an untrained model is worse: the numbers measure the network
    torch.manual_seed(0)
    save_model(tmp_path / "untrained.safetensors", toy.ToyJointNet(8), "toy_joint_net", {"width": 8})
    rc, out3, err = ev("--config", str(cfg), "--checkpoint", str(tmp_path / "untrained.safetensors"),
                       "--out", str(tmp_path / "m3.json"))
    assert rc == 0, out3 + err
    m3 = json.loads((tmp_path / "m3.json").read_text())["metrics"]
    assert m3["pa_mpjpe_mm"] > 1.5 * m["pa_mpjpe_mm"] and m3["epe2d_px"] > 1.5 * m["epe2d_px"], (m, m3)
    # damaged files are refused with their name
    f = run / "model.safetensors"
    f.write_bytes(f.read_bytes()[:-64])
    rc, _, err = ev("--config", str(cfg), "--checkpoint", str(f))
    assert rc == 2 and "model.safetensors is corrupt or truncated" in err, err
    g = run / "checkpoints" / "step_00000020" / "model.safetensors"
    data = bytearray(g.read_bytes())
    data[-3] ^= 0x10
    g.write_bytes(bytes(data))
    rc, _, err = ev("--config", str(cfg), "--checkpoint", str(g.parent))
    assert rc == 2 and "step_00000020/model.safetensors is corrupt: SHA-256 differs" in err, err


MANO_TINY = {"name": "mano_regressor",
             "model": {"backbone": "resnet18", "pretrained": False, "use_pca": True, "ncomps": 6, "hidden": 64,
                       "width": 0.125}}
ZB_TINY = {"name": "zimmermann_brox",
           "model": {"crop_size": 32, "seg_width": 0.125, "pose_width": 0.125, "prior_width": 0.25, "stages": 2,
                     "stage_convs": 2}}


def mano_crops(**options) -> dict:
    """The real crop + augmentation pipeline over toy MANO hands (tests/net_fixtures.py)."""
    return {"name": "toy_mano_crops", "options": {"length": 48, "size": 96, **options}, "crop_size": 64,
            "batch_size": 8, "workers": 0, "val_split": "val", "val_options": {"length": 8},
            "augment": {"crop_scale": 2.0, "rot_deg": 20, "color_prob": 0.5, "noise_prob": 0.5, "flip_prob": 0.0}}


@pytest.mark.parametrize("task, optim", [(MANO_TINY, {"name": "adamw", "lr": 3e-3}),
                                         (ZB_TINY, {"name": "adam", "lr": 3e-3, "weight_decay": 0.0})],
                         ids=["mano_regressor", "zimmermann_brox"])
def test_real_networks_train_with_augmentation_and_evaluate(tmp_path, capsys, task, optim):
    cfg = toy_config(tmp_path, "net", task=task, optim=optim, data=mano_crops(), steps=30,
                     log={"interval": 5, "image_interval": 15, "progress": False})
    rc, out, err = train_here(cfg, capsys)
    assert rc == 0, out + err
    ls = losses(out)
    assert len(ls) == 6 and ls[-1] < 0.6 * ls[0], f"loss did not fall: {ls}"
    val = json.loads((tmp_path / "net" / "val_metrics.json").read_text())
    assert val["n_samples"] == 8 and np.isfinite(val["pa_mpjpe_mm"]) and np.isfinite(val["epe2d_px"])
    from hand_pose_core.models.checkpoint import load_model

    model, meta = load_model(tmp_path / "net" / "model.safetensors")
    assert meta["model_name"] == task["name"] and meta["extra"]["crop_size"] == 64


def test_sigterm_checkpoints_and_stops_then_resume_matches(tmp_path, capsys):
    # the MANO regressor (BatchNorm) with the real crop + augmentation pipeline: the resumed run
    # must reproduce data order, augmentation and optimizer state exactly
    common = dict(steps=14, task=MANO_TINY, log={"interval": 1, "tensorboard": False, "progress": False},
                  ckpt={"interval": 0}, eval={"at_end": False})
    rc, out, err = train_here(toy_config(tmp_path, "ref", data=mano_crops(), **common), capsys)
    assert rc == 0, out + err
    cfg = toy_config(tmp_path, "term", data=mano_crops(sigterm_at=60), **common)
    rc, out, err = train_here(cfg, capsys)  # the 60th sample read sends SIGTERM: during step 8
    assert rc == 128 + signal.SIGTERM, out + err
    assert "got signal 15" in out and "stopped by a signal at step 8" in out, out
    assert (tmp_path / "term" / "checkpoints" / "step_00000008").is_dir()
    assert not (tmp_path / "term" / "model.safetensors").exists()
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handlers put back
    rc, out, err = train_here(cfg, capsys, "data.options.sigterm_at=null", "--resume", "auto")
    assert rc == 0 and "resumed from" in out and "step 8, epoch 1, batch 2/6" in out, out + err
    a, b = weights(tmp_path / "ref" / "model.safetensors"), weights(tmp_path / "term" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.heavy
def test_shipped_smoke_config_trains_on_rendered_synthetic_hands(tmp_path):
    # the real 'synthetic' dataset rendered on the fly (EGL) in its own process
    r = train(ROOT / "training" / "configs" / "smoke_mano_regressor.yaml", f"out={tmp_path / 'run'}", "steps=20",
              "log.interval=5", "log.tensorboard=false")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "data synthetic split train: 76 samples" in r.stdout, r.stdout
    ls = losses(r.stdout)
    assert len(ls) == 4 and ls[-1] < 0.6 * ls[0], f"loss did not fall: {ls}"
    assert "eval step 20 on val" in r.stdout and (tmp_path / "run" / "model.safetensors").is_file()


def test_init_a_model_file_for_fine_tuning(tmp_path, capsys):
    rc, out, err = train_here(toy_config(tmp_path, "base", steps=10, log={"tensorboard": False}), capsys)
    assert rc == 0, out + err
    base = tmp_path / "base" / "model.safetensors"
    cfg = toy_config(tmp_path, "ft", steps=1, optim={"name": "sgd", "lr": 1e-12, "momentum": 0.0},
                     init=str(base), log={"tensorboard": False})
    rc, out, err = train_here(cfg, capsys)
    assert rc == 0 and f"init: weights from {base} (step 10 of its run)" in out, out + err
    a, b = weights(base), weights(tmp_path / "ft" / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-9) for k in a)
    rc, out, err = train_here(cfg, capsys, "task.model.width=4")
    assert rc == 2 and "does not fit the configured model" in err and str(base) in err, err
    # the old task-level key still starts the run from the file (moved to init, with a warning) ...
    old = toy_config(tmp_path, "ft_old", steps=1, optim={"name": "sgd", "lr": 1e-12, "momentum": 0.0},
                     log={"tensorboard": False})
    with pytest.warns(FutureWarning, match="task.init_from is deprecated, use init="):
        rc, out, err = train_here(old, capsys, f"task.init_from={base}")
    assert rc == 0 and f"init: weights from {base} (step 10 of its run)" in out, out + err
    c = weights(tmp_path / "ft_old" / "model.safetensors")
    assert all(torch.allclose(a[k], c[k], atol=1e-9) for k in a)
    stored = yaml.safe_load((tmp_path / "ft_old" / "config.yaml").read_text())
    assert stored["init"] == str(base) and "init_from" not in stored["task"]
    # ... but not beside an init naming another file
    rc, out, err = train_here(cfg, capsys, f"task.init_from={tmp_path / 'other.safetensors'}")
    assert rc == 2 and str(base) in err and str(tmp_path / "other.safetensors") in err, err
