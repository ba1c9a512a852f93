"""Training config parsing, the resumable sampler, LR schedules and the training-state files
(fast, in-process)."""
from __future__ import annotations

import random
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from training.config import ConfigError, apply_overrides, defaults, load_config

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path, text: str, name="c.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


BASIC = """
task: {name: mano_regressor, model: {backbone: resnet18}}
data: {name: synthetic, root: /data/synth, batch_size: 32}
optim: {lr: 1e-3}
"""


def test_yaml_and_typed_overrides(tmp_path):
    cfg = load_config(write(tmp_path, BASIC), ["optim.lr=3e-4", "data.batch_size=64", "precision=bf16",
                                               "task.model.backbone=resnet34", "task.loss_weights.verts=0",
                                               "schedule.milestones=[100, 200]", "steps=1000", "data.root=null"])
    assert cfg["optim"]["lr"] == 3e-4 and isinstance(cfg["optim"]["lr"], float)  # '1e-3' is a str in YAML 1.1
    assert cfg["data"]["batch_size"] == 64 and cfg["precision"] == "bf16" and cfg["steps"] == 1000
    assert cfg["task"] == {"name": "mano_regressor", "model": {"backbone": "resnet34"}, "loss_weights": {"verts": 0}}
    assert cfg["schedule"]["milestones"] == [100, 200]
    assert cfg["data"]["root"] is None
    assert cfg["out"] == "runs/c" and cfg["_name"] == "c"
    assert cfg["data"]["workers"] == defaults()["data"]["workers"]  # untouched defaults stay


@pytest.mark.parametrize("override, message", [
    ("optim.lrr=1", "unknown config key 'optim.lrr' (did you mean 'lr'?)"),
    ("optimizer.lr=1", "unknown config key 'optimizer' (did you mean 'optim'?)"),
    ("data.batch_size=many", "data.batch_size must be an integer, got 'many'"),
    ("data.batch_size=3.5", "data.batch_size must be an integer"),
    ("optim.lr=fast", "optim.lr must be a number, got 'fast'"),
    ("precision=fp8", "precision must be one of fp32, bf16, fp16; got 'fp8'"),
    ("log.progress=maybe", "log.progress must be true or false"),
    ("optim.lr", "must look like key=value"),
    ("optim=3", "optim must be a mapping"),
    ("data.batch_size=0", "data.batch_size must be > 0"),
    ("optim.betas=[0.9]", "optim.betas must be two numbers"),
    ("steps=-5", "steps must be > 0"),
    ("seed=[1", "not valid YAML"),
])
def test_bad_overrides_are_refused_with_the_key_named(tmp_path, override, message):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, BASIC), [override])
    assert message in str(err.value)


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"c.yaml: unknown config key 'data.batchsize' \(did you mean 'batch_size'"):
        load_config(write(tmp_path, BASIC + "\n" + "data: {batchsize: 3}\n".replace("data", "data2")
                          .replace("data2", "data")))
    with pytest.raises(ConfigError, match="task.name is required"):
        load_config(write(tmp_path, "data: {name: rhd}\n"))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "task: {name: x\n"))
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(write(tmp_path, "- 1\n- 2\n"))


def test_base_inheritance_and_loops(tmp_path):
    write(tmp_path, BASIC, "base.yaml")
    child = write(tmp_path, "base: base.yaml\nsteps: 20\ndata: {batch_size: 4}\ntask: {model: {width: 2}}\n",
                  "child.yaml")
    cfg = load_config(child)
    assert cfg["steps"] == 20 and cfg["data"]["batch_size"] == 4 and cfg["data"]["root"] == "/data/synth"
    assert cfg["task"]["model"] == {"backbone": "resnet18", "width": 2} and cfg["out"] == "runs/child"
    # on the command line a mapping replaces a free-form dictionary, and merges into a section
    cfg = load_config(child, ["task.model={width: 3}", "data.options={length: 5}", "optim={lr: 0.5}"])
    assert cfg["task"]["model"] == {"width": 3} and cfg["data"]["options"] == {"length": 5}
    assert cfg["optim"]["lr"] == 0.5 and cfg["optim"]["name"] == "adamw"
    write(tmp_path, "base: b.yaml\n", "a.yaml")
    write(tmp_path, "base: a.yaml\n", "b.yaml")
    with pytest.raises(ConfigError, match="loops"):
        load_config(tmp_path / "a.yaml")


def test_shipped_configs_parse():
    configs = sorted((ROOT / "training" / "configs").glob("*.yaml"))
    assert configs, "no shipped configs"
    for path in configs:
        with warnings.catch_warnings():
            warnings.simplefilter("error", FutureWarning)  # none uses the deprecated task.init_from
            cfg = load_config(path)
        assert cfg["task"]["name"] and cfg["data"]["name"]


def test_task_init_from_is_moved_to_init_with_a_warning(tmp_path):
    cfg_file = write(tmp_path, BASIC)
    with pytest.warns(FutureWarning, match=r"task.init_from is deprecated, use init=") as rec:
        cfg = load_config(cfg_file, ["task.init_from=/models/a.safetensors"])
    assert len([w for w in rec if issubclass(w.category, FutureWarning)]) == 1  # once per config
    assert cfg["init"] == "/models/a.safetensors"
    assert "init_from" not in cfg["task"]  # the task never receives it (s2hand refuses unknown keys)
    # in a file too (an old config), and the same file under both keys is accepted
    old = write(tmp_path, BASIC.replace("model: {backbone: resnet18}", "init_from: /models/x/../a.safetensors")
                + "init: /models/a.safetensors\n", "old.yaml")
    with pytest.warns(FutureWarning, match="old.yaml"):
        cfg = load_config(old)
    assert cfg["init"] == "/models/a.safetensors" and "init_from" not in cfg["task"]
    # an old placeholder 'init_from: null' is dropped quietly; the new key alone never warns
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        cfg = load_config(cfg_file, ["task.init_from=null", "init=/models/b.safetensors"])
    assert cfg["init"] == "/models/b.safetensors" and "init_from" not in cfg["task"]
    # a stored config (from_dict: training.evaluate without --config) is migrated the same way
    from training.config import from_dict

    stored = {"task": {"name": "mano_regressor", "init_from": "/models/a.safetensors"}, "data": {"name": "synthetic"}}
    with pytest.warns(FutureWarning):
        cfg = from_dict(stored)
    assert cfg["init"] == "/models/a.safetensors" and cfg["task"] == {"name": "mano_regressor"}


def test_init_and_task_init_from_naming_different_files_is_refused(tmp_path):
    cfg_file = write(tmp_path, BASIC)
    with pytest.raises(ConfigError) as err:
        load_config(cfg_file, ["init=/models/a.safetensors", "task.init_from=/models/b.safetensors"])
    assert "/models/a.safetensors" in str(err.value) and "/models/b.safetensors" in str(err.value)
    assert "c.yaml" in str(err.value)
    with pytest.raises(ConfigError, match=r"init='/models/a.safetensors' and task.init_from='/models/b.safetensors'"):
        load_config(write(tmp_path, BASIC + "init: /models/a.safetensors\n", "new.yaml"),
                    ["task.init_from=/models/b.safetensors"])


def test_overrides_on_a_dict_keep_types():
    cfg = apply_overrides(defaults(), ["grad_clip=1", "eval.interval=100"])
    assert cfg["grad_clip"] == 1.0 and isinstance(cfg["grad_clip"], float) and cfg["eval"]["interval"] == 100


# --------------------------------------------------------------------------- sampler

def test_sampler_ranks_split_each_global_batch_and_resume_mid_epoch():
    from training.loader import ResumableDistributedSampler as S

    n, B = 50, 8
    one = S(n, B, seed=3)
    one.set_epoch(2)
    order = list(one)
    assert len(order) == len(one) == 48 and one.steps_per_epoch == 6  # whole global batches only
    assert all(e == 2 for e, _ in order) and len({i for _, i in order}) == 48
    ranks = []
    for r in range(4):
        s = S(n, B, rank=r, world_size=4, seed=3)
        s.set_epoch(2)
        ranks.append([i for _, i in s])
        assert s.per_rank == 2 and len(s) == 12
    for k in range(6):  # global batch k = the union of the ranks' batches k
        union = sorted(i for r in ranks for i in r[2 * k: 2 * k + 2])
        assert union == sorted(i for _, i in order[8 * k: 8 * k + 8])
    one.set_start(4)
    assert list(one) == order[32:] and len(one) == 16
    one.set_epoch(3)
    one.set_start(0)
    assert [i for _, i in one] != [i for _, i in order]  # reshuffled per epoch
    with pytest.raises(ValueError, match="not divisible"):
        S(n, 8, rank=0, world_size=3)
    with pytest.raises(ValueError, match="fewer than one global batch"):
        S(5, 8)


def test_sample_randomness_depends_only_on_seed_epoch_index():
    from training.loader import SampleSet

    class Reader:
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return {"image": np.zeros((2, 2, 3), np.uint8), "noise": np.random.rand(), "t": torch.rand(1).item(),
                    "p": random.random()}

    def tf(sample, rng):
        sample["aug"] = rng.random()
        return sample

    s = SampleSet(Reader(), tf, seed=7, crop_size=None)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    a = s[(1, 2)]
    assert torch.equal(torch.get_rng_state(), before)  # the trainer's own RNG is untouched
    b = s[(1, 2)]
    assert {k: a[k] for k in ("noise", "t", "p", "aug")} == {k: b[k] for k in ("noise", "t", "p", "aug")}
    assert s[(1, 3)]["aug"] != a["aug"] and s[(2, 2)]["aug"] != a["aug"]
    assert SampleSet(Reader(), tf, seed=8, crop_size=None)[(1, 2)]["aug"] != a["aug"]
    with pytest.raises(ValueError, match="expected data.crop_size 4x4"):
        SampleSet(Reader(), tf, seed=7, crop_size=4)[(0, 0)]


# --------------------------------------------------------------------------- schedules

def test_lr_schedules():
    from training.optim import lr_factor

    sch = defaults()["schedule"]
    cos = dict(sch, name="cosine", warmup_steps=10, warmup_start_factor=0.1, min_lr_factor=0.05)
    assert lr_factor(cos, 0, 110) == pytest.approx(0.1)
    assert lr_factor(cos, 5, 110) == pytest.approx(0.55)
    assert lr_factor(cos, 10, 110) == pytest.approx(1.0)
    assert lr_factor(cos, 60, 110) == pytest.approx(0.05 + 0.95 * 0.5)
    assert lr_factor(cos, 110, 110) == pytest.approx(0.05)
    st = dict(sch, name="step", milestones=[100, 200], gamma=0.1)
    assert [lr_factor(st, s, 300) for s in (99, 100, 250)] == pytest.approx([1, 0.1, 0.01])
    st2 = dict(sch, name="step", step_size=50, gamma=0.5)
    assert lr_factor(st2, 120, 300) == pytest.approx(0.25)
    assert lr_factor(dict(sch, name="constant"), 77, 100) == 1.0


# --------------------------------------------------------------------------- state files

def test_training_state_round_trip_is_exact(tmp_path):
    from training.checkpointing import capture_rng, load_tree, save_tree_bytes

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    for opt in (torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.8, 0.95)),
                torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)):
        for _ in range(2):
            model(torch.randn(5, 4)).square().mean().backward()
            opt.step()
        random.random(), np.random.rand(3)
        state = {"optimizer": opt.state_dict(), "rng": capture_rng(), "step": 7, "nested": {3: (1.5, None)},
                 "nan": float("nan")}
        p = tmp_path / "s.safetensors"
        p.write_bytes(save_tree_bytes(state, "train_state"))
        back = load_tree(p, "train_state")
        assert back["step"] == 7 and back["nested"] == {3: (1.5, None)} and np.isnan(back["nan"])
        sd, sd2 = opt.state_dict(), back["optimizer"]
        assert sd["param_groups"] == sd2["param_groups"]
        assert sd["state"].keys() == sd2["state"].keys()
        for k in sd["state"]:
            for name, v in sd["state"][k].items():
                assert torch.equal(v, sd2["state"][k][name]) and v.dtype == sd2["state"][k][name].dtype
        r0, r1 = state["rng"], back["rng"]
        assert r0["python"] == r1["python"] and torch.equal(r0["torch"], r1["torch"])
        assert r0["numpy"][0] == r1["numpy"][0] and np.array_equal(r0["numpy"][1], r1["numpy"][1])
        assert r1["numpy"][1].dtype == np.uint32 and r0["numpy"][2:] == r1["numpy"][2:]
        opt2 = type(opt)(model.parameters(), lr=5.0)
        opt2.load_state_dict(back["optimizer"])  # what a resume does


def test_state_file_refuses_other_kinds_and_pickles(tmp_path):
    from training.checkpointing import CheckpointError, load_tree, save_tree_bytes

    p = tmp_path / "s.safetensors"
    p.write_bytes(save_tree_bytes({"a": 1}, "rank_state"))
    with pytest.raises(CheckpointError, match="is not a 'train_state' file"):
        load_tree(p, "train_state")
    p.write_bytes(b"\x80\x04K\x01.")  # a pickle
    with pytest.raises(CheckpointError, match=r"s.safetensors is corrupt or truncated"):
        load_tree(p, "train_state")
    with pytest.raises(TypeError, match="without pickle"):
        save_tree_bytes({"f": object()}, "x")
