"""Diffusion 3D hand pose (hand_pose_core.models.diffusion_pose) and its training task: tiny
models trained for a few seconds on random skeleton hands (training.random_hands)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hand_pose_core.kinematics.forward_kinematics import bone_lengths
from hand_pose_core.models import create
from hand_pose_core.models.checkpoint import load_model, save_model
from training.datasets.collate import collate_samples
from training.losses import ddpm_loss
from training.random_hands import RandomHands
from training.tasks import build_task
from training.metrics import rr_mpjpe

S = 32
TINY = dict(backbone="none", width=128, depth=2, cond_dim=64, crop_size_px=S, joint_scale_m=0.05)


def _batch(n, seed, p_hidden=0.0):
    ds = RandomHands(n, S, seed=seed, p_hidden=p_hidden)
    return collate_samples([ds[i] for i in range(n)])


def _train(task, model, data, steps, bs=64, lr=2e-3, seed=0):
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr)
    n = len(data["id"])
    for _ in range(steps):
        idx = torch.randint(0, n, (bs,))
        b = {k: (v[idx] if torch.is_tensor(v) else v) for k, v in data.items()}
        loss, _ = task.loss(model, b)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def _fixed_loss(task, model, batch):
    torch.manual_seed(123)  # same t, noise and 2D jitter for every evaluation
    with torch.no_grad():
        return float(task.loss(model, batch)[0])


@pytest.fixture(scope="module")
def train_data():
    torch.set_num_threads(1)
    return _batch(1500, seed=1, p_hidden=0.1)


@pytest.fixture(scope="module")
def heldout():
    return _batch(150, seed=99)


@pytest.mark.parametrize("representation", ["joints", "fk"])
def test_denoiser_trains_on_synthetic_hands_loss_falls(train_data, representation):
    task = build_task("diffusion", {"model": dict(TINY, representation=representation)})
    torch.manual_seed(0)
    model = task.build_model()
    probe = {k: (v[:256] if torch.is_tensor(v) else v[:256]) for k, v in train_data.items()}
    before = _fixed_loss(task, model, probe)
    _train(task, model, train_data, steps=150)
    after = _fixed_loss(task, model, probe)
    assert after < 0.6 * before, (before, after)


def test_resnet_conditioned_denoiser_forward_backward():
    torch.manual_seed(0)
    model = create("diffusion_pose", backbone="resnet18", width=64, depth=1, cond_dim=32, crop_size_px=S)
    b = _batch(4, seed=3)
    task = build_task("diffusion", {"model": {}})
    loss, logs = task.loss(model, b)
    loss.backward()
    g = model.encoder.conv1.weight.grad
    assert torch.isfinite(loss) and g is not None and g.abs().sum() > 0
    assert set(logs) == {"ddpm", "loss"}


def test_sampling_is_reproducible_for_a_seed():
    torch.manual_seed(0)
    model = create("diffusion_pose", **TINY).eval()
    b = _batch(3, seed=5)
    args = (b["image"], b["joints_2d"], b["joints_conf"])
    a = model.sample(*args, num_hypotheses=4, num_steps=4, seed=7)
    a2 = model.sample(*args, num_hypotheses=4, num_steps=4, seed=7)
    c = model.sample(*args, num_hypotheses=4, num_steps=4, seed=8)
    assert torch.equal(a.hypotheses_m, a2.hypotheses_m)
    assert not torch.allclose(a.hypotheses_m, c.hypotheses_m)
    assert a.hypotheses_m.shape == (3, 4, 21, 3) and a.joints_std_m.shape == (3, 21)
    # mean and spread are what the docs say
    torch.testing.assert_close(a.joints_rel_m, a.hypotheses_m.mean(1))
    d = (a.hypotheses_m - a.joints_rel_m[:, None]).norm(dim=-1)
    torch.testing.assert_close(a.joints_std_m, d.pow(2).mean(1).sqrt())


@pytest.mark.parametrize("prediction_type", ["v_prediction", "epsilon"])
def test_direct_ddim_matches_diffusers_scheduler(prediction_type):
    torch.manual_seed(0)
    model = create("diffusion_pose", **dict(TINY, prediction_type=prediction_type)).eval()
    b = _batch(2, seed=4)
    for steps in (1, 4, 10):
        a = model.sample(b["image"], b["joints_2d"], b["joints_conf"], num_hypotheses=3, num_steps=steps, seed=1)
        d = model.sample(b["image"], b["joints_2d"], b["joints_conf"], num_hypotheses=3, num_steps=steps,
                         seed=1, sampler="direct")
        scale = a.hypotheses_m.abs().max()
        assert (a.hypotheses_m - d.hypotheses_m).abs().max() <= 1e-5 * max(1.0, float(scale))


def test_more_sampling_steps_lower_the_error_on_heldout_hands(train_data, heldout):
    """The seed's DDPM parameterisation (the network predicts the noise): one DDIM step from pure
    noise divides the noise error by sqrt(alpha_bar_T); more steps must do better."""
    cfg = dict(TINY, prediction_type="epsilon", beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    task = build_task("diffusion", {"model": cfg, "eval_hypotheses": 4})
    torch.manual_seed(0)
    model = _train(task, task.build_model(), train_data, steps=150).eval()
    errs = {}
    for steps in (1, 4, 10):
        task.eval_steps = steps
        p = task.predict(model, heldout)
        errs[steps] = float(rr_mpjpe(p["joints_cam_m"], heldout["joints_cam_m"], heldout["visible"]).mean())
    assert errs[10] < errs[4] < errs[1], errs


def test_fk_variant_always_respects_the_bone_lengths():
    torch.manual_seed(0)
    model = create("diffusion_pose", **dict(TINY, representation="fk")).eval()
    b = _batch(3, seed=6)
    args = (b["image"], b["joints_2d"], b["joints_conf"])
    s = model.sample(*args, num_hypotheses=5, num_steps=4, seed=0)
    L = bone_lengths(s.hypotheses_m)  # (3, 5, 20)
    torch.testing.assert_close(L, s.bone_lengths_m[:, None].expand_as(L), atol=1e-6, rtol=1e-5)
    # given lengths (e.g. a user's measured hand) are obeyed exactly, by every hypothesis
    j = b["joints_cam_m"]
    true_L = bone_lengths(j - j[:, :1])
    s = model.sample(*args, num_hypotheses=5, num_steps=6, seed=1, bone_lengths_m=true_L)
    L = bone_lengths(s.hypotheses_m)
    torch.testing.assert_close(L, true_L[:, None].expand_as(L), atol=1e-6, rtol=1e-5)
    # while the pose itself varies between hypotheses
    assert s.joints_std_m[:, 1:].mean() > 1e-4


def test_visibility_aware_ddpm_loss_ignores_hidden_joints():
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(2, 63, generator=g, requires_grad=True)
    target = torch.randn(2, 63, generator=g)
    w = torch.ones(2, 21)
    w[0, 5] = 0
    w[1, 20] = 0
    loss = ddpm_loss(pred, target, w)
    loss.backward()
    gr = pred.grad.view(2, 21, 3)
    assert gr[0, 5].abs().sum() == 0 and gr[1, 20].abs().sum() == 0 and gr[0, 4].abs().sum() > 0
    # hand-computed: mean of squared errors over the 2*21*3 - 6 counted values
    e = (pred.detach() - target).pow(2).view(2, 21, 3)
    e[0, 5] = 0
    e[1, 20] = 0
    assert abs(float(loss.detach()) - float(e.sum() / (2 * 63 - 6))) < 1e-6
    # changing a hidden joint's prediction changes nothing
    p2 = pred.detach().clone().view(2, 21, 3)
    p2[0, 5] += 10
    assert abs(float(ddpm_loss(p2.view(2, 63), target, w)) - float(loss.detach())) < 1e-6
    assert float(ddpm_loss(pred.detach(), target, torch.zeros(2, 21))) == 0.0


def test_model_file_round_trip_and_lift_crops(tmp_path):
    torch.manual_seed(0)
    cfg = dict(TINY, representation="fk")
    model = create("diffusion_pose", **cfg).eval()
    path = save_model(tmp_path / "d.safetensors", model, "diffusion_pose", cfg, {"crop_size_px": S})
    loaded, meta = load_model(path)
    b = _batch(2, seed=8)
    crops = (b["image"].permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    uv_cont = b["joints_2d"].numpy() + 0.5  # the estimator's continuous crop pixels
    a = model.lift_crops(crops, uv_cont, None, num_hypotheses=3, num_steps=4, seed=2)
    c = loaded.lift_crops(crops, uv_cont, None, num_hypotheses=3, num_steps=4, seed=2)
    np.testing.assert_array_equal(a["joints_rel_m"], c["joints_rel_m"])
    assert a["joints_rel_m"].shape == (2, 21, 3) and a["hypotheses_m"].shape == (2, 3, 21, 3)
    # the half-pixel shift: lift_crops(uv + 0.5) == sample(uv)
    s = model.sample(torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255, b["joints_2d"], None,
                     num_hypotheses=3, num_steps=4, seed=2)
    np.testing.assert_allclose(a["joints_rel_m"], s.joints_rel_m.numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="2D joints"):
        model.lift_crops(crops, None)
    with pytest.raises(ValueError, match="crops must be"):
        model.lift_crops(crops[:, :10], uv_cont)


def test_task_predict_and_draw():
    task = build_task("diffusion", {"model": TINY, "eval_hypotheses": 3, "eval_steps": 2})
    torch.manual_seed(0)
    model = task.build_model().eval()
    b = _batch(4, seed=9)
    p = task.predict(model, b)
    assert p["joints_cam_m"].shape == (4, 21, 3) and p["joints_std_m"].shape == (4, 21)
    # placed in front of the camera from the 2D joints and K; the wrist-relative part is the mean
    assert torch.isfinite(p["joints_cam_m"]).all()
    placed = torch.isfinite(p["reproj_err_px"])  # an untrained net may give hands that cannot be placed
    assert (p["joints_cam_m"][placed][..., 2] > 0).all()
    torch.testing.assert_close(p["joints_cam_m"] - p["joints_cam_m"][:, :1], p["joints_rel_m"] - p["joints_rel_m"][:, :1],
                               atol=2e-4, rtol=0)
    img = task.draw(b, p)
    assert img.shape == (4, S, S, 3) and img.dtype == np.uint8
    with pytest.raises(ValueError, match="unknown keys"):
        build_task("diffusion", {"model": TINY, "typo_key": 1})


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="representation"):
        create("diffusion_pose", representation="quaternions")
    with pytest.raises(ValueError, match="prediction_type"):
        create("diffusion_pose", prediction_type="noise")
    with pytest.raises(ValueError, match="backbone"):
        create("diffusion_pose", backbone="vgg16")


def test_lifter_loads_from_a_model_file_and_reports_the_spread(tmp_path):
    from hand_pose_core.pipeline.lifters import CheckpointError, load_lifter

    torch.manual_seed(0)
    cfg = dict(TINY)
    model = create("diffusion_pose", **cfg)
    path = save_model(tmp_path / "d.safetensors", model, "diffusion_pose", cfg,
                      {"crop_size_px": S, "num_hypotheses": 4, "num_steps": 3})
    lifter = load_lifter(path, expected_model="diffusion_pose")
    assert lifter.crop_size_px == S and lifter.num_hypotheses == 4 and lifter.num_steps == 3
    b = _batch(2, seed=10)
    crops = (b["image"].permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    uv = b["joints_2d"].numpy() + 0.5
    out = lifter(crops, uv, None)
    assert out.joints_rel_m.shape == (2, 21, 3) and out.joints_std_m.shape == (2, 21)
    assert np.all(out.joints_std_m >= 0) and np.all(np.isfinite(out.joints_rel_m))
    np.testing.assert_array_equal(out.joints_2d_crop_px, uv)
    again = lifter(crops, uv, None)
    np.testing.assert_array_equal(out.joints_rel_m, again.joints_rel_m)  # seeded per call
    lifter.num_hypotheses = 1
    assert lifter(crops, uv, None).joints_std_m is None  # one hypothesis: no spread
    with pytest.raises(CheckpointError, match="not 'mano_regressor'"):
        load_lifter(path, expected_model="mano_regressor")


def test_diffusion_model_runs_in_the_estimator_with_uncertainty(tmp_path, train_data):
    import os
    from pathlib import Path

    import cv2

    real = Path(os.environ.get("HAND_POSE_REAL_DATA",
                               Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real")) / "hands.jpg"
    if not real.is_file():
        pytest.skip(f"real image not found at {real} (../shared/data/real is only on CI/dev machines)")
    from hand_pose_core.pipeline.estimator import HandPoseEstimator

    task = build_task("diffusion", {"model": TINY})
    torch.manual_seed(0)
    model = _train(task, task.build_model(), train_data, steps=60).eval()
    path = save_model(tmp_path / "d.safetensors", model, "diffusion_pose", TINY,
                      {"crop_size": S, "num_hypotheses": 6, "num_steps": 4})
    image = cv2.cvtColor(cv2.imread(str(real)), cv2.COLOR_BGR2RGB)
    est = HandPoseEstimator(tracking=False, model="diffusion_pose", checkpoint=str(path))
    hands = est(image)
    assert len(hands) == 2 and est.last_timings_ms["lifter"] > 0
    for h in hands:
        assert h.joints_std_m is not None and h.joints_std_m.shape == (21,)
        assert np.all(np.isfinite(h.joints_std_m)) and np.all(h.joints_std_m[1:] > 0)
        assert np.all(np.isfinite(h.joints_3d)) and np.all(h.joints_3d[:, 2] > 0)
    # one hypothesis: no spread reported
    est._lifter.num_hypotheses = 1
    assert all(h.joints_std_m is None for h in est(image))


def test_missing_optional_package_is_named_with_how_to_install(monkeypatch):
    """A runtime-only install (no 'train' extra) gets an error naming the package and the extra,
    not a bare ModuleNotFoundError from deep inside the network."""
    import sys

    from hand_pose_core.models.optional_deps import MissingDependencyError

    monkeypatch.setitem(sys.modules, "diffusers", None)  # makes `import diffusers` fail
    with pytest.raises(MissingDependencyError, match=r"diffusion_pose.*'diffusers'.*\[train\]"):
        create("diffusion_pose", **TINY)
    monkeypatch.setitem(sys.modules, "torchvision.models", None)
    with pytest.raises(MissingDependencyError, match=r"mano_regressor.*'torchvision'"):
        create("mano_regressor", backbone="resnet18", pretrained=False)
