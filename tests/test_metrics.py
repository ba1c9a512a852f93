"""training.metrics against hand-computed cases and the FreiHAND protocol facts."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.transform import Rotation

from training.metrics import (
    HandMetrics, f_score, joint_errors, mpjpe, pa_mpjpe, pa_mpvpe, pck_auc, procrustes_align, rr_mpjpe,
)


def test_mpjpe_counts_visible_joints_only():
    gt = np.zeros((2, 4, 3))
    pred = gt.copy()
    pred[0, :, 0] = [0.003, 0.004, 0.0, 1.0]  # joint 3 is huge but invisible
    pred[1, 0] = [0.0, 0.0, 0.012]
    vis = np.array([[True, True, True, False], [False, False, False, False]])
    out = mpjpe(pred, gt, vis)
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out[0], (0.003 + 0.004 + 0.0) / 3)
    assert np.isnan(out[1])  # nothing visible
    np.testing.assert_allclose(mpjpe(pred, gt)[1], 0.012 / 4)
    np.testing.assert_allclose(joint_errors(pred, gt)[0], [0.003, 0.004, 0.0, 1.0])


def test_root_relative_removes_translation_only():
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(3, 21, 3)) * 0.05
    pred = gt + np.array([0.1, -0.2, 0.3])
    np.testing.assert_allclose(rr_mpjpe(pred, gt), 0, atol=1e-12)
    pred[:, 5] += [0.0, 0.021, 0.0]
    np.testing.assert_allclose(rr_mpjpe(pred, gt), 0.021 / 21)
    pred[:, 0] += [0.0, 0.0, 0.021]  # moving the root moves every other joint's relative error
    np.testing.assert_allclose(rr_mpjpe(pred, gt), (20 * 0.021 + np.sqrt(2) * 0.021 - 0.021) / 21, rtol=1e-9)


def test_procrustes_hand_computed_case():
    # gt: a cross; pred: the x arm right, the y arm collapsed to the centre. By hand: centred already,
    # |gt| = 2, |pred| = sqrt(2); gt_n^T pred_n = diag(1/sqrt2, 0, 0) -> R maps x to x, s = 1/sqrt2;
    # aligned = s * |gt| * pred_n = pred -> errors (0, 0, 1, 1).
    gt = np.array([[[1.0, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0]]])
    pred = np.array([[[1.0, 0, 0], [-1, 0, 0], [0, 0, 0], [0, 0, 0]]])
    np.testing.assert_allclose(procrustes_align(pred, gt), pred, atol=1e-7)
    np.testing.assert_allclose(pa_mpjpe(pred, gt), [0.5], atol=1e-7)


def test_procrustes_removes_similarity_and_matches_scipy_reference():
    rng = np.random.default_rng(1)
    gt = rng.normal(size=(4, 21, 3)) * 0.04 + [0, 0, 0.5]
    R = Rotation.random(4, random_state=2).as_matrix()
    pred = 1.7 * np.einsum("bij,bnj->bni", R, gt) + [0.3, -0.1, 0.2]
    np.testing.assert_allclose(pa_mpjpe(pred, gt), 0, atol=1e-7)  # 1e-8 norm epsilon of the protocol
    # with noise: same result as the FreiHAND recipe written with scipy's orthogonal_procrustes
    pred = pred + rng.normal(size=pred.shape) * 0.01
    ours = procrustes_align(pred, gt)
    for b in range(4):
        g, p = gt[b] - gt[b].mean(0), pred[b] - pred[b].mean(0)
        sg, sp = np.linalg.norm(g) + 1e-8, np.linalg.norm(p) + 1e-8
        Rs, s = orthogonal_procrustes(g / sg, p / sp)
        ref = (p / sp) @ Rs.T * s * sg + gt[b].mean(0)
        np.testing.assert_allclose(ours[b], ref, atol=1e-10)


def test_procrustes_reflection_follows_freihand_and_can_be_refused():
    rng = np.random.default_rng(3)
    gt = rng.normal(size=(1, 21, 3))
    mirrored = gt * [-1, 1, 1]
    assert pa_mpjpe(mirrored, gt)[0] < 1e-7  # orthogonal Procrustes: a mirror image aligns
    assert pa_mpjpe(mirrored, gt, reflection=False)[0] > 0.1


def test_procrustes_estimated_on_visible_joints():
    rng = np.random.default_rng(4)
    gt = rng.normal(size=(1, 6, 3))
    pred = 2.0 * gt + 1.0
    pred[0, 5] += 10.0  # an invisible outlier must not disturb the alignment
    vis = np.array([[True] * 5 + [False]])
    al = procrustes_align(pred, gt, vis)
    np.testing.assert_allclose(al[0, :5], gt[0, :5], atol=1e-7)
    np.testing.assert_allclose(pa_mpjpe(pred, gt, vis), [0.0], atol=1e-7)


def test_pa_mpvpe_on_vertices():
    rng = np.random.default_rng(5)
    gt = rng.normal(size=(2, 778, 3)) * 0.05
    R = Rotation.random(2, random_state=6).as_matrix()
    pred = 0.5 * np.einsum("bij,bnj->bni", R, gt) + 0.1
    np.testing.assert_allclose(pa_mpvpe(pred, gt), 0, atol=1e-7)


def test_pck_and_auc_hand_computed():
    # one joint, errors 10 mm and 30 mm, thresholds 0, 10, ..., 50 mm:
    # PCK = 0, .5, .5, 1, 1, 1 (<=); trapezoids * 10 mm = .25 + .5 + .75 + 1 + 1 = 3.5 -> 35 mm / 50 mm
    errors = np.array([[0.010, 5.0, 0.0], [0.030, 5.0, 1.0]])
    vis = np.array([[True, False, True], [True, False, False]])  # joint 1 never visible: skipped
    r = pck_auc(errors[:, :1], None, 0.0, 0.05, 6)
    np.testing.assert_allclose(r["pck"], [0, 0.5, 0.5, 1, 1, 1])
    np.testing.assert_allclose(r["auc"], 0.7)
    np.testing.assert_allclose(r["epe_mean"], 0.02)
    r = pck_auc(errors, vis, 0.0, 0.05, 6)
    np.testing.assert_allclose(r["auc"], (0.7 + 1.0) / 2)  # per keypoint, then over keypoints
    np.testing.assert_allclose(r["epe_mean"], (0.02 + 0.0) / 2)
    assert np.isnan(r["epe_per_joint"][1])
    # 20-50 mm: thresholds 20, 30, 40, 50: PCK .5, 1, 1, 1 -> (.75 + 1 + 1) * 10 / 30
    np.testing.assert_allclose(pck_auc(errors[:, :1], None, 0.02, 0.05, 4)["auc"], 2.75 / 3)


def test_f_score_hand_computed():
    gt = np.array([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]])
    # three predicted points within 2 mm of gt[0], one far away
    pred = np.array([[[0.001, 0, 0], [0, 0.002, 0], [0, 0, -0.001], [5, 5, 5]]])
    # recall (predicted points near gt) 3/4, precision (gt points near a prediction) 1/4
    np.testing.assert_allclose(f_score(pred, gt, 0.005), [2 * 0.75 * 0.25 / 1.0])
    np.testing.assert_allclose(f_score(pred, gt, 0.0015), [2 * 0.5 * 0.25 / 0.75])  # strict <
    np.testing.assert_allclose(f_score(pred + 100, gt, 0.005), [0.0])
    # several thresholds from one distance matrix: the same numbers as one call per threshold
    from training.metrics import f_scores

    many = f_scores(np.concatenate([pred, pred + 100]), np.concatenate([gt, gt]), (0.0015, 0.005))
    np.testing.assert_allclose(many, [[2 * 0.5 * 0.25 / 0.75, 2 * 0.75 * 0.25 / 1.0], [0.0, 0.0]])
    np.testing.assert_allclose(f_score(gt, gt, 0.005), [1.0])


def test_types_follow_input():
    gt = torch.zeros(2, 21, 3)
    pred = gt + 0.01
    out = mpjpe(pred, gt)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    torch.testing.assert_close(out, torch.full((2,), 0.01 * np.sqrt(3)))
    assert isinstance(pa_mpjpe(pred.numpy(), gt.numpy()), np.ndarray)
    with pytest.raises(ValueError, match="visible"):
        mpjpe(pred, gt, torch.ones(2, 20, dtype=torch.bool))
    with pytest.raises(ValueError, match="pred and gt"):
        mpjpe(pred, gt[:, :20])


def test_hand_metrics_summary():
    rng = np.random.default_rng(7)
    gt = rng.normal(size=(5, 21, 3)) * 0.04 + [0, 0, 0.5]
    verts = rng.normal(size=(5, 778, 3)) * 0.04 + [0, 0, 0.5]
    m = HandMetrics()
    # batch 1: perfect; batch 2: everything shifted 10 mm along z (PA removes it); one NaN gt skipped
    m.update(gt[:2], gt[:2], pred_verts=verts[:2], gt_verts=verts[:2],
             pred_2d=gt[:2, :, :2] * 100, gt_2d=gt[:2, :, :2] * 100)
    shifted = gt[2:] + [0, 0, 0.01]
    gt_nan = gt[2:].copy()
    gt_nan[0, 3] = np.nan
    m.update(torch.as_tensor(shifted), torch.as_tensor(gt_nan), pred_verts=verts[2:] + [0, 0, 0.01],
             gt_verts=verts[2:], pred_2d=gt[2:, :, :2] * 100 + [3.0, 4.0], gt_2d=gt[2:, :, :2] * 100)
    r = m.compute()
    assert r["n_3d"] == 4 and r["n_verts"] == 5 and r["n_2d"] == 5
    np.testing.assert_allclose(r["mpjpe_mm"], 10 * 2 / 4)  # per keypoint: (0 + 0 + 10 + 10) / 4
    np.testing.assert_allclose(r["mpjpe_pooled_mm"], 10 * 2 / 4)
    np.testing.assert_allclose(r["rr_mpjpe_mm"], 0, atol=1e-9)
    np.testing.assert_allclose(r["pa_mpjpe_mm"], 0, atol=1e-4)
    # all errors ~0: every PCK is 1 except possibly at t = 0 (round-off errors > 0): half a step
    assert 1 - 0.5 / 99 - 1e-12 <= r["auc_0_50"] <= 1 and 1 - 0.5 / 99 - 1e-12 <= r["pa_auc_0_50"] <= 1
    np.testing.assert_allclose(r["auc_20_50"], 1.0)
    # camera-frame AUC: half the samples 10 mm off: PCK = 0.5 below 10 mm, 1 from 10 mm on
    thr = np.linspace(0, 0.05, 100)
    curve = np.where(thr >= 0.01 - 1e-12, 1.0, 0.5)
    assert abs(r["abs_auc_0_50"] - np.trapezoid(curve, thr) / 0.05) < 0.006
    np.testing.assert_allclose(r["mpvpe_mm"], 10 * 3 / 5)
    np.testing.assert_allclose(r["pa_mpvpe_mm"], 0, atol=1e-4)
    np.testing.assert_allclose(r["pa_f5"], 1.0)
    np.testing.assert_allclose(r["epe2d_px"], 5.0 * 3 / 5)
    # 2D AUC over 0-30 px (20 steps): 2 perfect samples (AUC 1) + 3 with 5 px error per joint
    thr = np.linspace(0, 30, 20)
    curve = (2 + 3 * (thr >= 5)) / 5
    np.testing.assert_allclose(r["auc2d_0_30px"], np.trapezoid(curve, thr) / 30)
    assert HandMetrics().compute() == {}
    # per-keypoint (FreiHAND) vs pooled means differ when visibility differs: joint 0 seen in
    # both samples (errors 1 and 3 mm), joint 1 only in the first (error 8 mm)
    v = HandMetrics()
    g2 = np.zeros((2, 2, 3))
    p2 = g2.copy()
    p2[0, 0, 0], p2[1, 0, 0], p2[0, 1, 0] = 0.001, 0.003, 0.008
    v.update(p2, g2, np.array([[True, True], [True, False]]))
    rv = v.compute()
    np.testing.assert_allclose(rv["mpjpe_mm"], (2 + 8) / 2)
    np.testing.assert_allclose(rv["mpjpe_pooled_mm"], (1 + 3 + 8) / 3)
    # two accumulators merged = one that saw everything
    a, b = HandMetrics(), HandMetrics()
    a.update(gt[:2], gt[:2])
    b.update(shifted, gt_nan)
    merged = a.merge(b).compute()
    np.testing.assert_allclose(merged["mpjpe_mm"], r["mpjpe_mm"])
    assert merged["n_3d"] == 4
