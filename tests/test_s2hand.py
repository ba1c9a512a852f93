"""S2HAND self-supervision (training.tasks.s2hand, the S2HAND losses) and `hand-pose adapt` on
real footage (../shared/data/real/asl_hand.25fps.mp4)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hand_pose_core.kinematics.forward_kinematics import TEMPLATE_JOINTS_M, bone_lengths
from training import losses as L
from training.random_hands import random_hand_joints

VIDEO = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real" / "asl_hand.25fps.mp4"
TINY_MODEL = {"backbone": "resnet18", "pretrained": False, "use_pca": True, "ncomps": 6, "hidden": 64,
              "width": 0.125}
# footage split for a 325-frame video: val = frames 75-99, 175-199, 275-299 (3-frame guards)
SPLIT = {"block_frames": 25, "val_every": 4, "guard_frames": 3}


def test_joint_angle_prior_is_zero_for_plausible_hands_and_penalises_impossible_ones():
    rng = np.random.default_rng(0)
    j = torch.as_tensor(random_hand_joints(64, rng))  # flexion within anatomical ranges
    assert float(L.joint_angle_prior_loss(j, torch.ones(64))) < 1e-6
    # the mirror image is a plausible left hand, and an implausible right hand
    mirrored = j * torch.tensor([-1.0, 1.0, 1.0], dtype=j.dtype)
    assert float(L.joint_angle_prior_loss(mirrored, torch.zeros(64))) < 1e-6
    assert float(L.joint_angle_prior_loss(mirrored, torch.ones(64))) > 1e-3
    # bend the index PIP backwards by 60 degrees (hyper-extension) in the flat template hand
    t = torch.as_tensor(TEMPLATE_JOINTS_M)[None].clone()
    assert float(L.joint_angle_prior_loss(t)) < 1e-9
    bad = t.clone()
    a = np.deg2rad(60)
    for k in (7, 8):  # index DIP and tip rotate about the PIP (joint 6) towards -z (the back)
        d = bad[0, k] - t[0, 6]
        bad[0, k] = t[0, 6] + torch.tensor([d[0], d[1] * np.cos(a), -d[1] * np.sin(a)], dtype=d.dtype)
    assert float(L.joint_angle_prior_loss(bad)) > 1e-3
    g = torch.zeros_like(bad, requires_grad=True)
    L.joint_angle_prior_loss(bad + g).backward()
    assert g.grad[0, 7:9].abs().sum() > 0 and torch.isfinite(g.grad).all()


def test_bone_length_prior_is_scale_free():
    t = torch.as_tensor(TEMPLATE_JOINTS_M)[None]
    Lb = bone_lengths(t)[0]
    ref = Lb / Lb[8]
    assert float(L.bone_length_prior_loss(t * 1.7, ref)) < 1e-12
    longer = t.clone()
    longer[0, 8] = t[0, 7] + 2 * (t[0, 8] - t[0, 7])  # index tip bone twice as long
    assert abs(float(L.bone_length_prior_loss(longer, ref)) - float(ref[7]) / 20) < 1e-9


def test_placed_perspective_projection_recovers_the_translation():
    rng = np.random.default_rng(1)
    rel = torch.as_tensor(random_hand_joints(4, rng))
    t = torch.tensor([[0.02, -0.01, 0.4], [0.0, 0.0, 0.7], [-0.05, 0.03, 0.3], [0.01, 0.01, 0.9]], dtype=rel.dtype)
    K = torch.tensor([[500.0, 0, 64], [0, 480.0, 60], [0, 0, 1]], dtype=rel.dtype).expand(4, 3, 3)
    P = rel + t[:, None]
    uv = torch.stack([500 * P[..., 0] / P[..., 2] + 64, 480 * P[..., 1] / P[..., 2] + 60], -1)
    proj = L.perspective_projection_of_placed(rel, uv, K)
    torch.testing.assert_close(proj, uv, atol=1e-6, rtol=0)
    assert float(L.consistency_2d3d_loss(uv, proj)) < 1e-12
    # a 3D shape that does not fit its 2D (mirrored depth) is inconsistent
    flat = rel * torch.tensor([1.0, 1.0, -1.0], dtype=rel.dtype)
    assert float(L.consistency_2d3d_loss(uv, L.perspective_projection_of_placed(flat, uv, K))) > 1e-2


def test_s2hand_task_trains_without_3d_labels_and_uses_the_mask():
    from training.datasets.collate import collate_samples
    from training.tasks import build_task
    from training.tasks.s2hand import vertices_2d

    torch.manual_seed(0)
    task = build_task("s2hand", {"model": TINY_MODEL, "silhouette": {"size_px": 32, "sigma_px": 0.5}})
    model = task.build_model()
    rng = np.random.default_rng(0)
    samples = []
    for i in range(4):
        m = np.zeros((64, 64), np.uint8)
        m[16:48, 20:44] = 1
        samples.append({"image": rng.integers(0, 255, (64, 64, 3), dtype=np.uint8),
                        "K": np.array([[150, 0, 32], [0, 150, 32], [0, 0, 1]], np.float32),
                        "joints_cam_m": np.full((21, 3), np.nan, np.float32),
                        "joints_2d": (rng.random((21, 2)) * 40 + 12).astype(np.float32),
                        "visible": np.ones(21, bool), "side": "left" if i % 2 else "right", "id": str(i),
                        "mask": m, "joints_conf": np.full(21, 0.9, np.float32)})
    batch = collate_samples(samples)
    loss, logs = task.loss(model, batch)
    assert set(logs) >= {"loss/joints_2d", "loss/bone_prior", "loss/angle_prior", "loss/pose_reg",
                         "loss/shape_reg", "loss/consistency", "loss/silhouette", "loss/total"}
    assert "loss/joints_3d" not in logs and torch.isfinite(loss)
    loss.backward()
    assert model.encoder[0].weight.grad.abs().sum() > 0
    # the mesh projection used for the silhouette is the camera of the model's own 2D joints
    with torch.no_grad():
        out = model(batch["image"], batch["side"])
        out2 = dict(out, verts_rel_m=out["joints_rel_m"])
        torch.testing.assert_close(vertices_2d(out2, batch["side"], 64), out["joints_2d"], atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="unknown loss_weights"):
        build_task("s2hand", {"loss_weights": {"photometric": 1.0}})
    # the model file a run starts from is the trainer's init, never a task key (no silent fresh start)
    for name in ("s2hand", "mano_regressor"):
        with pytest.raises(ValueError, match="init_from is not a task key.*top-level init"):
            build_task(name, {"model": TINY_MODEL, "init_from": "model.safetensors"})


def _eval_2d_error(model_file, labels, crop_size):
    """Mean 2D distance (crop px, weighted by visibility x confidence) between a model file's
    2D joints and the teacher's on the held-out frames."""
    from hand_pose_core.models.checkpoint import load_model
    from training.adapt import CONFIG
    from training.config import load_config
    from training.loader import eval_loader, make_dataset

    cfg = load_config(CONFIG, [f"data.root={labels}", f"data.crop_size={crop_size}", "data.workers=0"]
                      + [f"data.options.{k}={v}" for k, v in SPLIT.items()])
    ds = make_dataset(cfg["data"], "val", train=False)
    assert len(ds) >= 30
    model, _ = load_model(model_file)
    num = den = 0.0
    with torch.no_grad():
        for b in eval_loader(cfg["data"], ds, 0, 0, 1):
            out = model(b["image"], b["side"])
            w = b["visible"].float() * b["joints_conf"]
            d = (out["joints_2d"] - b["joints_2d"]).norm(dim=-1)
            num += float((d * w).sum())
            den += float(w.sum())
    return num / den


@pytest.mark.heavy
def test_adapt_on_real_footage_lowers_the_2d_disagreement_with_the_teacher(tmp_path):
    if not VIDEO.is_file():
        pytest.skip(f"real footage not available at {VIDEO} (../shared/data/real is absent)")
    from hand_pose_core.cli import main as cli_main
    from hand_pose_core.models import create
    from hand_pose_core.models.checkpoint import save_model
    from training.pseudo_label import pseudo_label

    torch.set_num_threads(1)
    labels = tmp_path / "labels"
    pseudo_label(VIDEO, labels, crop_size=128, progress=False)
    torch.manual_seed(0)
    init = save_model(tmp_path / "init.safetensors", create("mano_regressor", **TINY_MODEL), "mano_regressor",
                      TINY_MODEL, {"crop_size": 64})
    out = tmp_path / "adapted.safetensors"
    sets = ["data.workers=0", "data.batch_size=16", "optim.lr=3e-3"] \
        + [f"task.model.{k}={v}" for k, v in TINY_MODEL.items()] \
        + [f"data.options.{k}={v}" for k, v in SPLIT.items()]
    rc = cli_main(["adapt", str(labels), "--out", str(out), "--init", str(init), "--steps", "80",
                   "--crop-size", "64", "--workdir", str(tmp_path / "work")]
                  + [a for kv in sets for a in ("--set", kv)])
    assert rc == 0 and out.is_file()
    before = _eval_2d_error(init, labels, 64)
    after = _eval_2d_error(out, labels, 64)
    assert after < 0.6 * before, (before, after)
    # the adapted file runs in the estimator
    from hand_pose_core.pipeline.lifters import load_lifter

    assert load_lifter(out, expected_model="mano_regressor").crop_size_px == 64
