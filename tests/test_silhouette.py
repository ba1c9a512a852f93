"""The windowed soft rasteriser (training.silhouette): its silhouettes against the offscreen
renderer's masks (moderngl on EGL) and its gradients against finite differences."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hand_pose_core.mano.layer import ManoLayer
from hand_pose_core.mano.synthetic import synthetic_mano
from training.silhouette import project_points, soft_silhouette, soft_silhouette_2d


@pytest.fixture(scope="module")
def hands():
    """Four posed synthetic-MANO hands filling most of a 160 px crop, metres, camera frame."""
    torch.set_num_threads(1)
    layer = ManoLayer(model=synthetic_mano("right"), use_pca=False, flat_hand_mean=False)
    g = torch.Generator().manual_seed(0)
    pose = torch.randn(4, 48, generator=g, dtype=torch.float64) * 0.35
    verts, _ = layer(pose.float())
    v = verts.double() / 1000.0
    v = v - v.mean(1, keepdim=True) + torch.tensor([0.01, -0.005, 0.45], dtype=torch.float64)
    S = 160
    K = torch.tensor([[480.0, 0, 79.3], [0, 470.0, 80.6], [0, 0, 1]], dtype=torch.float64).expand(4, 3, 3).clone()
    return v, layer.faces, K, S


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_silhouettes_match_the_offscreen_renderer(hands):
    pytest.importorskip("moderngl")
    from training.synthetic.renderer import Renderer, RendererError

    v, faces, K, S = hands
    sil = soft_silhouette(v, faces, K, (S, S), sigma_px=0.25)
    try:
        r = Renderer(S, S)
        masks = [r.render(v[i].numpy().astype(np.float32), faces.numpy(), K[i].numpy()).mask for i in range(len(v))]
    except RendererError as err:  # no EGL on this machine
        pytest.skip(f"offscreen renderer unavailable: {err}")
    for i, m in enumerate(masks):
        assert m.sum() > 2000  # the hand is really in the picture
        assert _iou(sil[i].numpy() > 0.5, m > 0) >= 0.95, i
    # a mesh moved by 3 px no longer matches: the test can fail
    shifted = soft_silhouette(v + torch.tensor([3 * 0.45 / 480.0, 0, 0], dtype=v.dtype), faces, K, (S, S))
    assert _iou(shifted[0].numpy() > 0.5, masks[0] > 0) < 0.95


def test_silhouette_of_one_triangle_is_exact_away_from_its_edges():
    tri = torch.tensor([[[10.3, 8.7], [40.2, 12.1], [18.6, 37.9]]], dtype=torch.float64)
    sil = soft_silhouette_2d(tri, torch.tensor([[0, 1, 2]]), (48, 48), sigma_px=0.25)[0]
    assert abs(float(sil[20, 20]) - 1.0) < 1e-6  # inside, > 1 px from the edges
    assert float(sil[40, 40]) < 1e-6 and float(sil[2, 2]) < 1e-6  # far outside
    area = 0.5 * abs((40.2 - 10.3) * (37.9 - 8.7) - (18.6 - 10.3) * (12.1 - 8.7))
    assert abs(float(sil.sum()) - area) / area < 0.02  # soft coverage integrates to the area


def test_gradients_match_finite_differences(hands):
    v, faces, K, S = hands
    v = v[:1].clone()
    target = (soft_silhouette(v + 0.002, faces, K[:1], (S, S), sigma_px=0.5) > 0.5).double()

    def loss(x):
        return (soft_silhouette(x, faces, K[:1], (S, S), sigma_px=0.5) - target).abs().mean()

    x = v.clone().requires_grad_(True)
    loss(x).backward()
    g = x.grad
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):  # directional derivatives along random vertex displacements
        d = torch.randn(v.shape, generator=gen, dtype=v.dtype) * 1e-3
        h = 1e-4
        fd = (float(loss(v + h * d)) - float(loss(v - h * d))) / (2 * h)
        an = float((g * d).sum())
        assert abs(fd - an) <= 2e-3 * abs(fd) + 1e-9, (fd, an)
    # and per vertex for the vertices with the largest gradients
    for k in torch.topk(g.norm(dim=-1)[0], 3).indices.tolist():
        for c in range(3):
            e = torch.zeros_like(v)
            e[0, k, c] = 1e-6
            fd = (float(loss(v + e)) - float(loss(v - e))) / 2e-6
            assert abs(fd - float(g[0, k, c])) <= 1e-2 * abs(float(g[0, k, c])) + 1e-6, (k, c, fd, float(g[0, k, c]))


def test_behind_the_camera_and_offscreen_faces_are_dropped(hands):
    v, faces, K, S = hands
    behind = v[:1].clone()
    behind[..., 2] *= -1
    assert float(soft_silhouette(behind, faces, K[:1], (S, S)).max()) == 0.0
    far_left = v[:1] - torch.tensor([1.0, 0, 0], dtype=v.dtype)
    assert float(soft_silhouette(far_left, faces, K[:1], (S, S)).max()) == 0.0
    uv, _ = project_points(v[:1], K[:1])
    assert uv.shape == (1, 778, 2)
    with pytest.raises(ValueError, match="faces"):
        soft_silhouette(v[:1], faces[:, :2], K[:1], (S, S))
