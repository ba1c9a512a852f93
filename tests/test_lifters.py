"""Trained models in the estimator (hand_pose_core.pipeline.lifters): model files of the MANO
regressor and Zimmermann-Brox run in HandPoseEstimator on a real image; bad files are refused."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from hand_pose_core.models import create
from hand_pose_core.models.checkpoint import CheckpointError, save_model
from hand_pose_core.pipeline.lifters import LiftOutput, check_model_choice, load_lifter
from hand_pose_core.pipeline.landmarks import rotate_world_to_image
from hand_pose_core.pipeline.roi import apply_affine, crop_roi

# ../shared/data/real beside the repository (HAND_POSE_REAL_DATA overrides it, e.g. in a git worktree)
REAL_DATA = Path(os.environ.get("HAND_POSE_REAL_DATA",
                                Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"))
REAL_IMAGE = REAL_DATA / "hands.jpg"
REG_CFG = dict(width=0.25, pretrained=False, ncomps=6)
ZB_CFG = dict(crop_size=64, seg_width=0.125, pose_width=0.125, prior_width=0.25, stages=2, stage_convs=2)
CROP = 96


@pytest.fixture(scope="module")
def reg_file(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    net = create("mano_regressor", **REG_CFG)
    return save_model(tmp_path_factory.mktemp("models") / "reg.safetensors", net, "mano_regressor",
                      REG_CFG, {"crop_size_px": CROP})


@pytest.fixture(scope="module")
def real_image() -> np.ndarray:
    if not REAL_IMAGE.is_file():
        pytest.skip(f"real image not found at {REAL_IMAGE} (../shared/data/real is only on CI/dev machines)")
    return cv2.cvtColor(cv2.imread(str(REAL_IMAGE)), cv2.COLOR_BGR2RGB)


def test_regressor_lifter_outputs(reg_file):
    lifter = load_lifter(reg_file)
    assert lifter.crop_size_px == CROP and lifter.wants_sides
    crops = np.random.default_rng(0).integers(0, 255, (2, CROP, CROP, 3), dtype=np.uint8)
    out = lifter(crops, None, None, sides=["right", "left"])
    assert isinstance(out, LiftOutput)
    assert out.joints_2d_crop_px.shape == (2, 21, 2) and out.joints_rel_m.shape == (2, 21, 3)
    assert np.allclose(out.joints_rel_m[:, 0], 0.0, atol=1e-7)
    with pytest.raises(ValueError, match="uint8"):
        lifter(crops.astype(np.float32))


def test_zimmermann_brox_lifter_outputs(tmp_path):
    net = create("zimmermann_brox", **ZB_CFG)
    path = save_model(tmp_path / "zb.safetensors", net, "zimmermann_brox", ZB_CFG)
    lifter = load_lifter(path, expected_model="zimmermann_brox")
    assert lifter.crop_size_px == 64
    crops = np.random.default_rng(1).integers(0, 255, (3, 64, 64, 3), dtype=np.uint8)
    out = lifter(crops, np.zeros((3, 21, 2), np.float32), None, sides=["left", "right", "left"])
    assert out.joints_2d_crop_px.shape == (3, 21, 2) and out.joints_rel_m.shape == (3, 21, 3)
    assert np.all(np.isfinite(out.joints_rel_m)) and out.joints_std_m is None


def test_trained_regressor_runs_in_the_estimator_on_a_real_image(reg_file, real_image):
    from hand_pose_core.pipeline.estimator import HandPoseEstimator

    base = HandPoseEstimator(tracking=False, fit_mano=False, with_mesh=False)(real_image)
    est = HandPoseEstimator(tracking=False, model="mano_regressor", checkpoint=str(reg_file))
    hands = est(real_image)
    assert len(hands) == len(base) == 2
    assert est.last_timings_ms["lifter"] > 0 and est.lifter.crop_size_px == CROP
    lifter = load_lifter(reg_file)
    for h, b in zip(hands, base):
        assert np.allclose(h.joints_2d, b.joints_2d)  # the landmark network's 2D (lifter_2d off)
        # the 3D is the lifter's, on this hand's crop, rotated to the image axes
        crop = crop_roi(real_image, h.roi, CROP)[0]
        side = "right" if h.side == "right" else "left"
        ref = lifter(crop[None], None, None, sides=[side]).joints_rel_m[0]
        assert np.allclose(h.world_m, rotate_world_to_image(ref, h.roi), atol=1e-5)
        assert not np.allclose(h.world_m - h.world_m[0], b.world_m - b.world_m[0], atol=0.01)
        # placed metrically in front of the camera with the regressed hand's size, then MANO-fitted
        placed = h.extras["joints_3d_placed_m"]
        assert np.all(placed[:, 2] > 0.05)
        rel = placed - placed[0]
        assert np.allclose(np.linalg.norm(rel, axis=1), np.linalg.norm(ref, axis=1), atol=1e-4)
        assert h.vertices.shape == (778, 3) and h.pose.shape == (48,)


def test_lifter_2d_replaces_the_landmarks(reg_file, real_image):
    from hand_pose_core.pipeline.estimator import HandPoseEstimator

    est = HandPoseEstimator(tracking=False, fit_mano=False, with_mesh=False, model="mano_regressor",
                            checkpoint=str(reg_file), lifter_2d=True)
    lifter = load_lifter(reg_file)
    for h in est(real_image):
        crop, a = crop_roi(real_image, h.roi, CROP)
        out = lifter(crop[None], None, None, sides=[h.side])
        assert np.allclose(h.joints_2d, apply_affine(a, out.joints_2d_crop_px[0]), atol=1e-3)


def _corrupt(path: Path, tmp: Path) -> Path:
    bad = tmp / "truncated.safetensors"
    data = path.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    return bad


def test_bad_model_files_are_refused_with_a_clear_error(reg_file, tmp_path):
    from hand_pose_core.pipeline.estimator import HandPoseEstimator

    bad = _corrupt(reg_file, tmp_path)
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        HandPoseEstimator(model="mano_regressor", checkpoint=str(bad))
    with pytest.raises(CheckpointError, match="does not exist"):
        HandPoseEstimator(model="mano_regressor", checkpoint=str(tmp_path / "missing.safetensors"))
    with pytest.raises(CheckpointError, match="needs a checkpoint"):
        HandPoseEstimator(model="mano_regressor")
    with pytest.raises(CheckpointError, match="holds a 'mano_regressor' model, not 'zimmermann_brox'"):
        HandPoseEstimator(model="zimmermann_brox", checkpoint=str(reg_file))
    with pytest.raises(ValueError, match="only used with a trained model"):
        HandPoseEstimator(checkpoint=str(reg_file))
    posenet = save_model(tmp_path / "posenet.safetensors", create("zb_posenet", width=0.125, stages=1),
                         "zb_posenet", {"width": 0.125, "stages": 1})
    with pytest.raises(CheckpointError, match="cannot run in the estimator"):
        load_lifter(posenet)
    # the node's parameter check gives the same reasons, and accepts good choices
    assert "corrupt" in check_model_choice("mano_regressor", str(bad))
    assert "needs the parameter checkpoint" in check_model_choice("mano_regressor", "")
    assert check_model_choice("mano_regressor", str(reg_file)) is None
    assert check_model_choice("mediapipe", "") is None


def test_cli_predict_with_a_trained_model_and_a_bad_file(reg_file, real_image, tmp_path, capsys):
    import json

    from hand_pose_core import cli

    out = tmp_path / "r.json"
    args = ["predict", str(REAL_IMAGE), "--no-mesh", "--model", "mano_regressor", "--json", str(out)]
    assert cli.main(args + ["--checkpoint", str(reg_file)]) == 0
    hands = json.loads(out.read_text())[0]["hands"]
    assert len(hands) == 2 and all(np.array(h["joints_3d_cam_m"])[:, 2].min() > 0.05 for h in hands)
    bad = _corrupt(reg_file, tmp_path)
    assert cli.main(args + ["--checkpoint", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "corrupt or truncated" in err and str(bad) in err
