"""The trainable networks (Zimmermann-Brox, MANO regressor), their losses and training tasks,
on the CPU with tiny configurations."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hand_pose_core.models import create, list_models
from hand_pose_core.models.checkpoint import load_model, save_model
from hand_pose_core.models.zimmermann_brox import (
    boxes_from_masks,
    boxes_from_points,
    crop_images,
    crop_to_input,
    crop_to_map,
    decode_score_maps,
    from_canonical,
    input_to_crop,
    map_to_crop,
    to_canonical,
)
from net_fixtures import toy_batch
from training import losses as L
from training.tasks import build_task

TINY_ZB = dict(crop_size=64, seg_width=0.125, pose_width=0.125, prior_width=0.25, stages=2,
               stage_convs=2)
TINY_REG = dict(width=0.125, pretrained=False, ncomps=6)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _check_grads(model: torch.nn.Module):
    grads = [(n, p.grad) for n, p in model.named_parameters() if p.requires_grad]
    assert grads
    missing = [n for n, g in grads if g is None]
    assert not missing, f"parameters without gradient: {missing[:5]}"
    assert all(torch.isfinite(g).all() for _, g in grads)
    assert sum(float(g.abs().sum()) for _, g in grads) > 0


def test_models_are_registered_by_name():
    names = set(list_models())
    assert {"zb_handsegnet", "zb_posenet", "zb_poseprior", "zimmermann_brox", "mano_regressor"} <= names
    with pytest.raises(ValueError, match="unknown model"):
        create("zb_nonexistent")


@pytest.mark.parametrize("name,cfg,make_inputs,check", [
    ("zb_handsegnet", dict(width=0.125), lambda: (torch.rand(2, 3, 64, 48),),
     lambda out: out.shape == (2, 2, 64, 48)),
    ("zb_posenet", dict(width=0.125, stages=3, stage_convs=2), lambda: (torch.rand(2, 3, 64, 64),),
     lambda out: len(out) == 3 and all(o.shape == (2, 21, 8, 8) for o in out)),
    ("zb_poseprior", dict(map_size=8, width=0.25), lambda: (torch.rand(2, 21, 8, 8), torch.tensor([1, 0])),
     lambda out: out["coords_can"].shape == (2, 21, 3) and out["rot"].shape == (2, 3, 3)),
])
def test_zb_parts_forward_and_backward(name, cfg, make_inputs, check):
    net = create(name, **cfg)
    out = net(*make_inputs())
    assert check(out)
    if isinstance(out, dict):
        loss = out["coords_can"].square().mean() + out["rot"].square().mean()
    elif isinstance(out, list):
        loss = sum(o.square().mean() for o in out)
    else:
        loss = out.square().mean()
    loss.backward()
    _check_grads(net)


def test_poseprior_uses_the_handedness_input():
    net = create("zb_poseprior", map_size=8, width=0.25).eval()
    maps = torch.rand(1, 21, 8, 8)
    a = net(maps, torch.tensor([1]))["coords_can"]
    b = net(maps, torch.tensor([0]))["coords_can"]
    assert not torch.allclose(a, b)


def test_zimmermann_brox_composed_forward_backward_and_mask_crop():
    net = create("zimmermann_brox", **TINY_ZB)
    batch = toy_batch(3, 64)
    out = net(batch["image"], batch["side"])
    assert out["seg_logits"].shape == (3, 2, 64, 64)
    assert out["crop"].shape == (3, 3, 64, 64) and out["boxes"].shape == (3, 3)
    assert len(out["score_maps"]) == 2 and out["score_maps"][0].shape == (3, 21, 8, 8)
    assert out["joints_2d"].shape == (3, 21, 2) and out["joints_rel_m"].shape == (3, 21, 3)
    loss = (sum(m.square().mean() for m in out["score_maps"]) + out["seg_logits"].square().mean()
            + out["coords_can"].square().mean() + out["rot_aa"].square().mean())
    loss.backward()
    _check_grads(net)


def test_mano_regressor_forward_backward_and_outputs():
    net = create("mano_regressor", **TINY_REG)
    out = net(torch.rand(2, 3, 64, 64), torch.tensor([1, 0]))
    assert out["pose"].shape == (2, 3 + 6) and out["shape"].shape == (2, 10)
    assert out["verts_rel_m"].shape == (2, 778, 3) and out["joints_rel_m"].shape == (2, 21, 3)
    assert torch.allclose(out["joints_rel_m"][:, 0], torch.zeros(2, 3), atol=1e-7)  # wrist-relative
    span = (out["joints_rel_m"].amax(1) - out["joints_rel_m"].amin(1)).amax(-1)
    assert torch.all((span > 0.05) & (span < 0.4)), span  # metres, a hand's size
    (out["joints_2d"].square().mean() + out["verts_rel_m"].square().mean()).backward()
    _check_grads(net)
    # the MANO model is not part of the weights (it may be licensed)
    assert not [k for k in net.state_dict() if k.startswith("mano.")]


def test_mano_regressor_full_resnet18_forward_backward():
    net = create("mano_regressor", backbone="resnet18", pretrained=False)
    out = net(torch.rand(1, 3, 64, 64))
    out["joints_2d"].sum().backward()
    assert net.encoder.conv1.weight.grad is not None


def test_mano_regressor_left_hand_is_the_mirrored_right_hand():
    net = create("mano_regressor", **TINY_REG).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        right = net(x.flip(-1), torch.tensor([1]))
        left = net(x, torch.tensor([0]))
    mirror = torch.tensor([-1.0, 1.0, 1.0])
    assert torch.allclose(left["joints_rel_m"], right["joints_rel_m"] * mirror, atol=1e-6)
    assert torch.allclose(left["joints_2d"][..., 0], 63 - right["joints_2d"][..., 0], atol=1e-4)


def test_mano_label_rotations_drive_the_right_model_to_the_labelled_mesh():
    """``label_rotmats`` turns a sample's MANO labels (its own side, flat_hand_mean=False) into
    the rotations of the regressor's right-hand model: posed with them, the right model gives
    the labelled mesh (mirrored back for left hands)."""
    from hand_pose_core.mano import ManoLayer, synthetic_mano
    from training.tasks.mano_regressor import label_rotmats

    torch.manual_seed(0)
    layers = {s: ManoLayer(model=synthetic_mano(s), side=s, use_pca=False, flat_hand_mean=False,
                           center_idx=None) for s in ("right", "left")}
    right_pca = ManoLayer(model=synthetic_mano("right"), side="right", use_pca=True, ncomps=6,
                          flat_hand_mean=True, center_idx=None)  # the regressor's convention may differ
    rot_layer = ManoLayer(model=synthetic_mano("right"), side="right", use_pca=False,
                          root_rot_mode="rotmat", joint_rot_mode="rotmat", center_idx=None)
    pose, betas = 0.5 * torch.randn(4, 48), torch.randn(4, 10)
    side = torch.tensor([1, 0, 1, 0])
    R = label_rotmats(pose, side, right_pca.hands_mean)
    mirror = torch.tensor([-1.0, 1.0, 1.0])
    for i in range(4):
        name = "right" if side[i] == 1 else "left"
        v_label, _ = layers[name](pose[i:i + 1], betas[i:i + 1])
        v_right, _ = rot_layer(R[i:i + 1].reshape(1, 144), betas[i:i + 1])
        if name == "left":
            v_right = v_right * mirror
        assert torch.allclose(v_right, v_label, atol=1e-3), (name, (v_right - v_label).abs().max())
    # a wrong mirror (the left labels used as right ones) is caught by the same check
    R_wrong = label_rotmats(pose, torch.ones(4, dtype=torch.long), right_pca.hands_mean)
    v_wrong, _ = rot_layer(R_wrong[3:4].reshape(1, 144), betas[3:4])
    v_label, _ = layers["left"](pose[3:4], betas[3:4])
    assert (v_wrong * mirror - v_label).abs().max() > 1.0  # mm


def test_rotation_matrix_loss_and_the_mano_label_terms():
    eye = torch.eye(3).expand(2, 4, 3, 3)
    Rz = torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
    other = eye.clone()
    other[0, 1] = Rz  # ||Rz - I||_F^2 = 4, on one of 4 rotations of sample 0
    assert math.isclose(float(L.rotation_matrix_loss(other, eye)), 4 / 4 / 2)
    assert math.isclose(float(L.rotation_matrix_loss(other, eye, torch.tensor([True, False]))), 1.0)
    assert float(L.rotation_matrix_loss(other, eye, torch.tensor([False, True]))) == 0.0
    # in the task: off by default; with weights, a sample without MANO labels adds nothing
    batch = toy_batch(4, 64, seed=5)
    net = create("mano_regressor", **TINY_REG)
    _, logs = build_task("mano_regressor", {"model": TINY_REG}).loss(net, batch)
    assert "loss/mano_pose" not in logs
    task = build_task("mano_regressor", {"model": TINY_REG,
                                         "loss_weights": {"mano_pose": 1.0, "global_orient": 1.0}})
    _, logs = task.loss(net, batch)
    assert logs["loss/mano_pose"] > 0 and logs["loss/global_orient"] > 0
    batch["has_mano"][:] = False
    _, logs = task.loss(net, batch)
    assert logs["loss/mano_pose"] == 0.0 and logs["loss/global_orient"] == 0.0


def test_imagenet_weights_only_from_the_hub_cache(tmp_path, monkeypatch):
    import torchvision

    from hand_pose_core.models.mano_regressor import cached_imagenet_weights

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    assert cached_imagenet_weights("resnet18") is None
    net = create("mano_regressor", backbone="resnet18", pretrained=True)
    assert net.pretrained_source == "random"  # nothing cached: random, and no download
    # a cached checkpoint (here: our own random resnet18 under torchvision's file name) is used
    ref = torchvision.models.resnet18(weights=None)
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    (tmp_path / "checkpoints").mkdir()
    torch.save(ref.state_dict(), tmp_path / "checkpoints" / url.rsplit("/", 1)[-1])
    net = create("mano_regressor", backbone="resnet18", pretrained=True)
    assert net.pretrained_source.startswith("imagenet:")
    assert torch.equal(net.encoder.conv1.weight, ref.conv1.weight)


# ----------------------------------------------------------------------------- canonical frame
def _hands(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    j = torch.randn(n, 21, 3, generator=g, dtype=torch.float64) * 0.04
    return j + torch.tensor([0.0, 0.0, 0.5], dtype=torch.float64)


def test_canonical_frame_round_trip_and_definition():
    j = _hands()
    side = torch.tensor([1, 0, 1, 0, 1, 0])
    w_c, R, s = to_canonical(j, side)
    back = from_canonical(w_c, R, side, s) + j[:, :1]
    assert torch.allclose(back, j, atol=1e-12)
    assert torch.allclose(w_c[:, 0], torch.zeros(6, 3, dtype=j.dtype), atol=1e-12)  # wrist at 0
    assert torch.allclose((w_c[:, 6] - w_c[:, 5]).norm(dim=-1), torch.ones(6, dtype=j.dtype))  # unit bone
    assert torch.allclose(w_c[:, 9, [0, 2]], torch.zeros(6, 2, dtype=j.dtype), atol=1e-12)  # on y
    assert torch.all(w_c[:, 9, 1] > 0)
    assert torch.allclose(w_c[:, 17, 2], torch.zeros(6, dtype=j.dtype), atol=1e-12)  # x-y plane
    assert torch.all(w_c[:, 17, 0] > 0)
    assert torch.allclose(torch.det(R), torch.ones(6, dtype=j.dtype))
    assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3, dtype=j.dtype).expand(6, 3, 3), atol=1e-12)


def test_canonical_frame_is_invariant_and_mirrors_left_hands():
    j = _hands(2, seed=1)
    right = torch.tensor([1, 1])
    w_c, _, _ = to_canonical(j, right)
    # rotated, moved and scaled: the same canonical hand
    ang = torch.tensor([0.3, -1.2, 2.0], dtype=j.dtype)
    from hand_pose_core.kinematics.rotations import axis_angle_to_matrix

    Q = axis_angle_to_matrix(ang)
    w2, _, _ = to_canonical(2.5 * j @ Q.T + torch.tensor([0.1, -0.2, 0.3], dtype=j.dtype), right)
    assert torch.allclose(w_c, w2, atol=1e-10)
    # the mirror image of a right hand, declared left, is the same canonical (right) hand
    mirrored = j * torch.tensor([-1.0, 1.0, 1.0], dtype=j.dtype)
    w3, _, _ = to_canonical(mirrored, torch.tensor([0, 0]))
    assert torch.allclose(w_c, w3, atol=1e-10)


# ----------------------------------------------------------------------------- crops, score maps
def test_crop_coordinate_maps_are_inverse_and_crop_samples_the_box():
    boxes = torch.tensor([[30.5, 20.5, 32.0], [10.5, 40.0, 16.0]])
    uv = torch.rand(2, 21, 2) * 60
    assert torch.allclose(crop_to_input(input_to_crop(uv, boxes, 64), boxes, 64), uv, atol=1e-4)
    img = torch.zeros(2, 1, 64, 64)
    img[0, 0, 25, 35] = 1.0  # (u=35, v=25) lies in box 0
    img[1, 0, 42, 12] = 1.0
    crop = crop_images(img, boxes, 32)  # 1 input px = 1 crop px for box 0
    peak = torch.stack([crop[0, 0].argmax() % 32, crop[0, 0].argmax() // 32]).float()
    assert torch.allclose(peak, input_to_crop(torch.tensor([[[35.0, 25.0]]]), boxes[:1], 32)[0, 0])
    assert math.isclose(float(crop[0].sum()), 1.0, rel_tol=1e-5)
    m = torch.tensor([[[3.0, 4.0]]])
    assert torch.allclose(crop_to_map(map_to_crop(m, 8, 64), 8, 64), m)


def test_boxes_from_points_and_from_the_largest_mask_component():
    uv = torch.tensor([[[10.0, 20.0], [30.0, 24.0]]])
    assert torch.allclose(boxes_from_points(uv, margin=1.5), torch.tensor([[20.0, 22.0, 30.0]]))
    prob = torch.zeros(1, 64, 64)
    prob[0, 10:30, 40:50] = 0.9  # large component: x 40..49, y 10..29
    prob[0, 50:52, 5:7] = 0.9  # small one is ignored
    box = boxes_from_masks(prob, margin=1.0, min_size_frac=0.0)
    assert torch.allclose(box, torch.tensor([[44.5, 19.5, 20.0]]))
    assert torch.allclose(boxes_from_masks(torch.zeros(1, 64, 48)), torch.tensor([[23.5, 31.5, 64.0]]))


def test_decode_score_maps_recovers_subpixel_peaks():
    uv = torch.tensor([[[3.3, 4.6], [10.0, 1.25]]])
    maps = L.gaussian_score_maps(uv, 16, sigma=1.0)
    got, peak = decode_score_maps(maps)
    assert torch.allclose(got, uv, atol=1e-3)
    assert torch.all(peak > 0.7)


# ----------------------------------------------------------------------------- losses by hand
def test_losses_on_hand_computed_cases():
    maps = L.gaussian_score_maps(torch.tensor([[[2.0, 1.0]]]), 4, sigma=1.0)
    assert maps[0, 0, 1, 2] == 1.0 and math.isclose(float(maps[0, 0, 1, 3]), math.exp(-0.5), rel_tol=1e-6)
    target = torch.zeros(1, 2, 2, 2)
    p1, p2 = torch.ones(1, 2, 2, 2), torch.full((1, 2, 2, 2), 3.0)
    assert math.isclose(float(L.score_map_loss([p1, p2], target)), (1 + 9) / 2)
    w = torch.tensor([[1.0, 0.0]])  # second joint not weighted
    p1[0, 1] = 100.0
    assert math.isclose(float(L.score_map_loss([p1], target, w)), 1.0)
    # segmentation: zero logits -> log 2 per pixel; a sample without a mask does not count
    logits = torch.zeros(2, 2, 3, 3)
    logits[1, 1] = 50.0
    mask = torch.zeros(2, 3, 3)
    ce = L.segmentation_loss(logits, mask, torch.tensor([True, False]))
    assert math.isclose(float(ce), math.log(2), rel_tol=1e-6)
    # canonical coordinates / viewpoint
    a, b = torch.zeros(1, 21, 3), torch.zeros(1, 21, 3)
    b[0, 3] = torch.tensor([1.0, 2.0, 2.0])
    assert math.isclose(float(L.canonical_coords_loss(a, b)), 9 / 21, rel_tol=1e-6)
    R = torch.eye(3)[None]
    Rz = torch.tensor([[[0.0, -1, 0], [1, 0, 0], [0, 0, 1]]])
    assert math.isclose(float(L.viewpoint_loss(R, Rz)), 4.0)
    assert float(L.viewpoint_loss(R, Rz, torch.tensor([0.0]))) == 0.0
    # 2D joints: weighted by visibility x confidence, in units of norm_px
    p = torch.zeros(1, 21, 2)
    g = torch.zeros(1, 21, 2)
    g[0, 0] = torch.tensor([3.0, 4.0])
    g[0, 1] = torch.tensor([100.0, 0.0])
    wv = torch.ones(1, 21)
    wv[0, 1] = 0
    assert math.isclose(float(L.joints_2d_loss(p, g, wv, norm_px=5.0)), 1.0 / 20, rel_tol=1e-6)
    # 3D joints and vertices are root-relative: a translation of the target changes nothing
    gt = torch.rand(2, 21, 3)
    pred = gt - gt[:, :1]
    assert float(L.joints_3d_loss(pred, gt + torch.tensor([0.0, 0.0, 2.0]))) < 1e-12
    pred2 = pred.clone()
    pred2[0, 5, 0] += 0.1
    assert math.isclose(float(L.joints_3d_loss(pred2, gt, torch.tensor([True, False]))), 0.01 / 21,
                        rel_tol=1e-4)
    verts = torch.rand(1, 778, 3)
    assert float(L.vertex_loss(verts - gt[:1, :1], verts, gt[:1])) < 1e-12
    assert math.isclose(float(L.vertex_loss(verts - gt[:1, :1] + 0.01, verts, gt[:1])), 3e-4, rel_tol=1e-4)
    # regularisers skip the global rotation
    pose = torch.zeros(2, 9)
    pose[:, :3] = 5.0
    pose[0, 3] = 2.0
    assert float(L.pose_regularizer(pose)) == 2.0 and float(L.shape_regularizer(torch.ones(2, 10))) == 10.0


# ----------------------------------------------------------------------------- tasks
@pytest.mark.parametrize("name,model_cfg,steps", [("mano_regressor", TINY_REG, 25),
                                                   ("zimmermann_brox", TINY_ZB, 25)])
def test_task_loss_falls_predict_places_metrically_and_draws(name, model_cfg, steps):
    task = build_task(name, {"model": model_cfg})
    model = task.build_model()
    batch = toy_batch(6, 64, seed=3)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    first = None
    for _ in range(steps):
        loss, logs = task.loss(model, batch)
        assert torch.isfinite(loss) and "loss/total" in logs
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    last = float(task.loss(model, batch)[0].detach())
    assert last < 0.7 * first, (first, last)
    model.eval()
    pred = task.predict(model, batch)
    j = pred["joints_cam_m"]
    assert j.shape == (6, 21, 3) and torch.all(j[..., 2] > 0.01)
    ok = torch.isfinite(pred["reproj_err_px"])
    assert ok.any()
    # placed in the crop's camera: the 3D projects through K onto the predicted 2D
    proj = (j @ batch["K"].transpose(1, 2))
    uv = proj[..., :2] / proj[..., 2:]
    rms = (uv - pred["joints_2d"]).square().sum(-1).mean(-1).sqrt()
    assert torch.allclose(rms[ok], pred["reproj_err_px"][ok].float(), atol=1e-3)
    # and keeps the predicted wrist-relative shape (only a translation is solved)
    assert torch.allclose(j - j[:, :1], pred["joints_rel_m"] - pred["joints_rel_m"][:, :1], atol=1e-5)
    if "verts_cam_m" in pred:
        assert pred["verts_cam_m"].shape == (6, 778, 3)
    imgs = task.draw(batch, pred)
    assert imgs.shape == (6, 64, 64, 3) and imgs.dtype == np.uint8
    base = (batch["image"].permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)
    assert (imgs != base).any(axis=-1).sum() > 50  # something was drawn


def test_task_config_errors_are_clear():
    with pytest.raises(ValueError, match="unknown loss_weights"):
        build_task("mano_regressor", {"loss_weights": {"joints2d": 1.0}})
    with pytest.raises(ValueError, match="prior_input"):
        build_task("zimmermann_brox", {"prior_input": "maybe"})


@pytest.mark.parametrize("name,cfg", [("mano_regressor", TINY_REG), ("zimmermann_brox", TINY_ZB)])
def test_model_file_round_trip(tmp_path, name, cfg):
    net = create(name, **cfg).eval()
    path = save_model(tmp_path / "m.safetensors", net, name, cfg, {"crop_size_px": 64})
    back, meta = load_model(path)
    assert meta["model_name"] == name and meta["extra"]["crop_size_px"] == 64
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        a, b = net(x, torch.tensor([1])), back(x, torch.tensor([1]))
    assert torch.equal(a["joints_rel_m"], b["joints_rel_m"])


@pytest.mark.parametrize("name,cfg", [("mano_regressor", TINY_REG), ("zimmermann_brox", TINY_ZB)])
def test_task_loss_under_bf16_autocast(name, cfg):
    task = build_task(name, {"model": cfg})
    model = task.build_model()
    batch = toy_batch(2, 64, seed=5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = task.loss(model, batch)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    _check_grads(model)
