"""Hand pose metrics: pure functions over batches (torch tensors or numpy arrays) + a dataset
accumulator that reproduces the FreiHAND evaluation protocol.

Units: 3D inputs in metres (like ``joints_cam_m``), 2D inputs in pixels. Per-sample functions
return the input's type (numpy in -> numpy out), in the input's units. ``visible`` (B, J) bool
masks joints out everywhere (None = all visible); a sample with no visible joint gets NaN.

Per-sample functions (shape (B,)):
    :func:`mpjpe` (visible joints only), :func:`rr_mpjpe` (root-relative: both skeletons move
    their root joint to the origin first), :func:`pa_mpjpe` / :func:`pa_mpvpe` (after
    :func:`procrustes_align`), :func:`f_score` (on vertices).
Curves: :func:`pck_auc` (3D or 2D, from errors).
Dataset summary: :class:`HandMetrics` (``update(...)`` per batch, ``compute()`` -> dict).

FreiHAND evaluation protocol (facts from the dataset's published evaluation script, re-implemented
here, not copied):

* Alignment ("aligned"/PA errors): both point sets are centred on their means and divided by their
  Frobenius norm (+1e-8); the orthogonal Procrustes problem between them is solved by SVD
  (``gt_n^T pred_n = U S V^T``, ``R = U V^T``: the best *orthogonal* matrix, so a reflection is
  allowed), scale ``s = sum(S)``; the aligned prediction is ``s * |gt_c| * pred_n R^T + mean(gt)``.
  Joints are aligned on the joints; a 778-vertex mesh on its own vertices.
  ``reflection=False`` restricts ``R`` to proper rotations (what many other papers do).
* Errors are Euclidean per point. The mean error is the mean over keypoints of each keypoint's
  mean over the samples where it is visible (FreiHAND: all visible).
* PCK at threshold t counts errors ``<= t``. The curve is evaluated at ``linspace(lo, hi, steps)``
  (FreiHAND: 0-50 mm, 100 steps); AUC = trapezoid integral of the curve / (hi - lo), computed per
  keypoint, then averaged over the keypoints that have data; the curve is averaged the same way.
* F-score at threshold t (5 mm, 15 mm) on vertices: nearest-neighbour distances between the two
  point clouds (not vertex correspondences), a point counts when its distance is ``< t``;
  precision and recall are the fractions of each cloud that count, F = 2PR / (P + R) (0 when both
  are 0). FreiHAND reports F on the unaligned and on the aligned mesh (we report both).

Other conventions: the 3D PCK AUC over 20-50 mm (Zimmermann & Brox, STB/RHD comparisons) uses the
same integration over ``linspace(20 mm, 50 mm, steps)``; the 2D PCK AUC defaults to 0-30 px in 20
steps (the hand3d 2D evaluation).
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "joint_errors", "mpjpe", "rr_mpjpe", "procrustes_align", "pa_mpjpe", "pa_mpvpe",
    "pck_auc", "f_score", "f_scores", "HandMetrics",
]


def _t(x, dtype=torch.float64) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().to(dtype)
    return torch.as_tensor(np.asarray(x), dtype=dtype)


def _like(out: torch.Tensor, ref):
    """Return ``out`` as the caller gave ``ref``: numpy, or a tensor of its dtype and device."""
    if isinstance(ref, torch.Tensor):
        return out.to(device=ref.device, dtype=ref.dtype if ref.is_floating_point() else torch.float32)
    return out.numpy()


def _vis(visible, shape) -> torch.Tensor:
    if visible is None:
        return torch.ones(shape, dtype=torch.bool)
    v = _t(visible, torch.bool) if not isinstance(visible, torch.Tensor) else visible.detach().bool()
    if v.shape != torch.Size(shape):
        raise ValueError(f"visible must have shape {tuple(shape)}, got {tuple(v.shape)}")
    return v.cpu()


def _check_pair(pred, gt, dims=(3,)):
    p, g = _t(pred).cpu(), _t(gt).cpu()
    if p.shape != g.shape or p.ndim != 3 or p.shape[-1] not in dims:
        raise ValueError(f"pred and gt must both be (B, N, {dims}), got {tuple(p.shape)} and {tuple(g.shape)}")
    return p, g


def joint_errors(pred, gt):
    """Euclidean distance per point, (B, N) (2D or 3D)."""
    p, g = _check_pair(pred, gt, (2, 3))
    return _like(torch.linalg.norm(p - g, dim=-1), pred)


def _masked_mean(err: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
    n = vis.sum(-1)
    s = torch.where(vis, err, torch.zeros_like(err)).sum(-1)
    return torch.where(n > 0, s / n.clamp(min=1), torch.full_like(s, float("nan")))


def mpjpe(pred, gt, visible=None):
    """Mean per-joint position error over the visible joints of each sample, (B,)."""
    p, g = _check_pair(pred, gt, (2, 3))
    return _like(_masked_mean(torch.linalg.norm(p - g, dim=-1), _vis(visible, p.shape[:2])), pred)


def rr_mpjpe(pred, gt, visible=None, root: int = 0):
    """MPJPE after moving each skeleton's ``root`` joint to the origin, (B,)."""
    p, g = _check_pair(pred, gt)
    p = p - p[:, root:root + 1]
    g = g - g[:, root:root + 1]
    return _like(_masked_mean(torch.linalg.norm(p - g, dim=-1), _vis(visible, p.shape[:2])), pred)


def procrustes_align(pred, gt, visible=None, *, reflection: bool = True):
    """Similarity-align ``pred`` (B, N, 3) to ``gt`` as the FreiHAND evaluation does (module
    docstring); the transform is estimated from the visible points and applied to all."""
    p, g = _check_pair(pred, gt)
    w = _vis(visible, p.shape[:2]).to(p.dtype)[..., None]  # (B, N, 1)
    n = w.sum(1, keepdim=True).clamp(min=1)
    mp = (p * w).sum(1, keepdim=True) / n
    mg = (g * w).sum(1, keepdim=True) / n
    pc, gc = (p - mp) * w, (g - mg) * w
    sp = torch.linalg.norm(pc.flatten(1), dim=1)[:, None, None] + 1e-8
    sg = torch.linalg.norm(gc.flatten(1), dim=1)[:, None, None] + 1e-8
    M = (gc / sg).transpose(1, 2) @ (pc / sp)  # (B, 3, 3) = gt_n^T pred_n
    U, S, Vh = torch.linalg.svd(M)
    if not reflection:
        d = torch.sign(torch.linalg.det(U @ Vh))
        d = torch.where(d == 0, torch.ones_like(d), d)
        D = torch.ones_like(S)
        D[:, -1] = d
        U = U * D[:, None, :]
        S = S * D
    R = U @ Vh
    s = S.sum(-1)[:, None, None]
    aligned = s * sg * (((p - mp) / sp) @ R.transpose(1, 2)) + mg
    return _like(aligned, pred)


def pa_mpjpe(pred, gt, visible=None, *, reflection: bool = True):
    """MPJPE after :func:`procrustes_align` (estimated and measured on visible joints), (B,)."""
    aligned = _t(procrustes_align(pred, gt, visible, reflection=reflection))
    g = _t(gt)
    return _like(_masked_mean(torch.linalg.norm(aligned - g, dim=-1), _vis(visible, g.shape[:2])), pred)


def pa_mpvpe(pred_verts, gt_verts, *, reflection: bool = True):
    """Mean vertex error after aligning the mesh on its own vertices (FreiHAND), (B,)."""
    return pa_mpjpe(pred_verts, gt_verts, None, reflection=reflection)


def f_scores(pred_verts, gt_verts, thresholds_m) -> torch.Tensor:
    """F-scores at each of ``thresholds_m`` between two point clouds per sample (module
    docstring), (B, T). One distance matrix per sample serves both directions and every
    threshold (with 778-vertex meshes the (B, 778, 778) distances are the whole cost)."""
    p, g = _t(pred_verts).cpu(), _t(gt_verts).cpu()
    if p.ndim != 3 or g.ndim != 3 or p.shape[0] != g.shape[0] or p.shape[-1] != 3 or g.shape[-1] != 3:
        raise ValueError(f"expected (B, N, 3) and (B, M, 3), got {tuple(p.shape)} and {tuple(g.shape)}")
    d = torch.cdist(p, g)                       # (B, N, M)
    p_to_g = d.min(-1).values[..., None]        # each predicted point to the nearest gt point
    g_to_p = d.min(-2).values[..., None]        # each gt point to the nearest predicted point
    t = torch.as_tensor(thresholds_m, dtype=p.dtype).reshape(1, 1, -1)
    recall = (p_to_g < t).to(p.dtype).mean(1)     # (B, T) predicted points near the gt
    precision = (g_to_p < t).to(p.dtype).mean(1)  # gt points near the prediction
    denom = precision + recall
    return torch.where(denom > 0, 2 * precision * recall / denom.clamp(min=1e-12), torch.zeros_like(denom))


def f_score(pred_verts, gt_verts, threshold_m: float):
    """F-score at ``threshold_m`` between two point clouds per sample (module docstring), (B,)."""
    return _like(f_scores(pred_verts, gt_verts, [threshold_m])[:, 0], pred_verts)


def pck_auc(errors, visible=None, lo: float = 0.0, hi: float = 0.05, steps: int = 100) -> dict:
    """PCK curve and AUC from per-point errors (N, J) over a whole set (module docstring).

    Returns ``{"thresholds", "pck" (curve, steps), "auc", "epe_mean", "epe_median",
    "epe_per_joint" (J,, NaN where never visible)}`` as numpy/floats.
    """
    e = _t(errors).cpu().numpy()
    if e.ndim != 2:
        raise ValueError(f"errors must be (N, J), got {e.shape}")
    v = _vis(visible, e.shape).numpy()
    if not hi > lo or steps < 2:
        raise ValueError(f"need hi > lo and steps >= 2, got lo={lo}, hi={hi}, steps={steps}")
    thr = np.linspace(lo, hi, steps)
    curves, aucs, means, medians = [], [], [], []
    per_joint = np.full(e.shape[1], np.nan)
    for j in range(e.shape[1]):
        d = e[v[:, j], j]
        if d.size == 0:
            continue
        curve = (d[None, :] <= thr[:, None]).mean(1)
        curves.append(curve)
        aucs.append(_trapezoid(curve, thr) / (hi - lo))
        means.append(d.mean())
        medians.append(np.median(d))
        per_joint[j] = d.mean()
    if not curves:
        nan = float("nan")
        return {"thresholds": thr, "pck": np.full(steps, np.nan), "auc": nan, "epe_mean": nan,
                "epe_median": nan, "epe_per_joint": per_joint}
    return {"thresholds": thr, "pck": np.mean(curves, 0), "auc": float(np.mean(aucs)),
            "epe_mean": float(np.mean(means)), "epe_median": float(np.mean(medians)),
            "epe_per_joint": per_joint}


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2.0)


class HandMetrics:
    """Accumulate a whole evaluation set batch by batch, then :meth:`compute` the summary.

    ``update(pred_joints, gt_joints, visible=None, pred_verts=None, gt_verts=None,
    pred_2d=None, gt_2d=None)``: 3D in metres (B, 21, 3), vertices (B, 778, 3), 2D in pixels.
    Samples whose ground-truth 3D holds NaN are skipped for the 3D metrics.

    :meth:`compute` returns floats: ``mpjpe_mm`` and ``abs_auc_0_50`` (FreiHAND "mean3d" and
    "auc3d": camera-frame errors), ``rr_mpjpe_mm``, ``pa_mpjpe_mm`` (FreiHAND
    "aligned mean3d"), ``auc_0_50`` / ``auc_20_50`` (root-relative 3D PCK AUC), ``pa_auc_0_50``
    (FreiHAND "aligned auc3d"), ``mpvpe_mm``, ``pa_mpvpe_mm``, ``f5`` / ``f15`` (unaligned mesh),
    ``pa_f5`` / ``pa_f15`` (aligned), ``epe2d_px``, ``auc2d_0_30px``, ``n_3d``, ``n_verts``,
    ``n_2d``; a key is absent when nothing fed it. Means follow the FreiHAND averaging (per
    keypoint, then over keypoints); ``mpjpe_pooled_mm`` is the plain mean over every visible joint
    of every sample (the same when all joints are visible).
    """

    def __init__(self, *, steps: int = 100, reflection: bool = True,
                 auc2d_px: tuple[float, float, int] = (0.0, 30.0, 20)):
        self.steps = steps
        self.reflection = reflection
        self.auc2d_px = auc2d_px
        self._e = {k: [] for k in ("abs", "rr", "pa", "vis", "v_abs", "v_pa", "f5", "f15",
                                   "pa_f5", "pa_f15", "e2d", "vis2d")}

    def update(self, pred_joints=None, gt_joints=None, visible=None, *, pred_verts=None,
               gt_verts=None, pred_2d=None, gt_2d=None) -> None:
        if pred_joints is not None and gt_joints is not None:
            p, g = _check_pair(pred_joints, gt_joints)
            ok = torch.isfinite(g.flatten(1)).all(1) & torch.isfinite(p.flatten(1)).all(1)
            vis = _vis(visible, p.shape[:2])[ok]
            p, g = p[ok], g[ok]
            if len(p):
                self._e["abs"].append(torch.linalg.norm(p - g, dim=-1))
                pr, gr = p - p[:, :1], g - g[:, :1]
                self._e["rr"].append(torch.linalg.norm(pr - gr, dim=-1))
                al = procrustes_align(p, g, vis, reflection=self.reflection)
                self._e["pa"].append(torch.linalg.norm(al - g, dim=-1))
                self._e["vis"].append(vis)
        if pred_verts is not None and gt_verts is not None:
            pv, gv = _check_pair(pred_verts, gt_verts)
            ok = torch.isfinite(gv.flatten(1)).all(1) & torch.isfinite(pv.flatten(1)).all(1)
            pv, gv = pv[ok], gv[ok]
            if len(pv):
                self._e["v_abs"].append(torch.linalg.norm(pv - gv, dim=-1))
                al = procrustes_align(pv, gv, reflection=self.reflection)
                self._e["v_pa"].append(torch.linalg.norm(al - gv, dim=-1))
                for prefix, points in (("", pv), ("pa_", al)):
                    f = f_scores(points, gv, (0.005, 0.015))
                    self._e[prefix + "f5"].append(f[:, 0])
                    self._e[prefix + "f15"].append(f[:, 1])
        if pred_2d is not None and gt_2d is not None:
            p2, g2 = _check_pair(pred_2d, gt_2d, (2,))
            self._e["e2d"].append(torch.linalg.norm(p2 - g2, dim=-1))
            self._e["vis2d"].append(_vis(visible, p2.shape[:2]))

    def merge(self, other: "HandMetrics") -> "HandMetrics":
        """Add another accumulator's samples (e.g. gathered from other ranks); returns self."""
        for key, parts in other._e.items():
            self._e[key].extend(parts)
        return self

    def compute(self) -> dict:
        out: dict = {}
        cat = {k: torch.cat(v) for k, v in self._e.items() if v}
        if "abs" in cat:
            vis = cat["vis"]
            out["n_3d"] = int(vis.shape[0])
            ab = pck_auc(cat["abs"], vis, 0.0, 0.05, self.steps)
            out["mpjpe_mm"] = 1000 * ab["epe_mean"]
            out["abs_auc_0_50"] = ab["auc"]
            # the other common convention: one mean over all visible joints of all samples
            out["mpjpe_pooled_mm"] = 1000 * float(cat["abs"][vis].mean()) if bool(vis.any()) else float("nan")
            rr = pck_auc(cat["rr"], vis, 0.0, 0.05, self.steps)
            out["rr_mpjpe_mm"] = 1000 * rr["epe_mean"]
            out["auc_0_50"] = rr["auc"]
            out["auc_20_50"] = pck_auc(cat["rr"], vis, 0.02, 0.05, self.steps)["auc"]
            pa = pck_auc(cat["pa"], vis, 0.0, 0.05, self.steps)
            out["pa_mpjpe_mm"] = 1000 * pa["epe_mean"]
            out["pa_auc_0_50"] = pa["auc"]
        if "v_abs" in cat:
            out["n_verts"] = int(cat["v_abs"].shape[0])
            out["mpvpe_mm"] = 1000 * pck_auc(cat["v_abs"], None, steps=self.steps)["epe_mean"]
            out["pa_mpvpe_mm"] = 1000 * pck_auc(cat["v_pa"], None, steps=self.steps)["epe_mean"]
            for key in ("f5", "f15", "pa_f5", "pa_f15"):
                out[key] = float(cat[key].mean())
        if "e2d" in cat:
            lo, hi, steps = self.auc2d_px
            r2 = pck_auc(cat["e2d"], cat["vis2d"], lo, hi, int(steps))
            out["n_2d"] = int(cat["e2d"].shape[0])
            out["epe2d_px"] = r2["epe_mean"]
            out[f"auc2d_{lo:g}_{hi:g}px"] = r2["auc"]
        return out
