"""The offscreen renderer (moderngl on EGL) against exact geometry and a numpy reference rasteriser."""
import os

import numpy as np
import pytest
import torch

from training.synthetic.renderer import Light, Renderer, RendererError, k_to_clip, render

W, H = 160, 120
K = np.array([[200.0, 0.0, 79.5], [0.0, 210.0, 61.25], [0.0, 0.0, 1.0]])


@pytest.fixture(scope="module")
def renderer():
    r = Renderer(W, H)
    yield r
    r.release()


def _quad_at(u0, u1, v0, v1, z, K=K):
    """A fronto-parallel quad at depth z whose corners project to (u0..u1, v0..v1)."""
    corners_px = np.array([[u0, v0], [u1, v0], [u1, v1], [u0, v1]], float)
    xy = (corners_px - K[:2, 2]) / np.diag(K)[:2] * z
    verts = np.concatenate([xy, np.full((4, 1), z)], 1)
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    return verts, faces


def test_flat_quad_exact_mask_and_depth(renderer):
    # Corners on pixel borders (x.5): pixel centres 11..20 x 31..40 are inside, nothing else.
    verts, faces = _quad_at(10.5, 20.5, 30.5, 40.5, z=0.5)
    out = renderer.render(verts, faces, K)
    expected = np.zeros((H, W), np.uint8)
    expected[31:41, 11:21] = 1
    assert out.rgb.shape == (H, W, 3) and out.rgb.dtype == np.uint8
    assert out.mask.dtype == np.uint8 and out.depth_m.dtype == np.float32
    np.testing.assert_array_equal(out.mask, expected)
    np.testing.assert_allclose(out.depth_m[expected == 1], 0.5, rtol=0, atol=2e-7)
    assert np.all(out.depth_m[expected == 0] == 0)


def test_tilted_plane_depth_is_ray_intersection(renderer):
    # Plane n.x = d through a point at 0.8 m, tilted; depth at pixel = z of the ray hit.
    n = np.array([0.3, -0.2, 1.0])
    d = n @ np.array([0.0, 0.0, 0.8])
    corners_px = np.array([[4.5, 4.5], [150.5, 4.5], [150.5, 110.5], [4.5, 110.5]])
    rays = np.concatenate([(corners_px - K[:2, 2]) / np.diag(K)[:2], np.ones((4, 1))], 1)
    verts = rays * (d / (rays @ n))[:, None]
    out = renderer.render(verts, np.array([[0, 1, 2], [0, 2, 3]]), K)
    vs, us = np.nonzero(out.mask)
    assert out.mask.sum() == 146 * 106  # pixel centres 5..150 x 5..110
    ray = np.stack([(us - K[0, 2]) / K[0, 0], (vs - K[1, 2]) / K[1, 1], np.ones_like(us, float)], 1)
    z_true = d / (ray @ n)
    np.testing.assert_allclose(out.depth_m[vs, us], z_true, rtol=2e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_projected_point_lands_on_its_pixel(renderer, seed):
    """A 1-pixel square centred on the projection of a 3D point covers exactly round(u), round(v)."""
    rng = np.random.default_rng(seed)
    for _ in range(20):
        u = rng.integers(2, W - 2) + rng.choice([0.15, 0.3, 0.7, 0.85])
        v = rng.integers(2, H - 2) + rng.choice([0.2, 0.35, 0.65, 0.8])
        z = rng.uniform(0.2, 3.0)
        verts, faces = _quad_at(u - 0.499, u + 0.499, v - 0.499, v + 0.499, z)
        out = renderer.render(verts, faces, K)
        ys, xs = np.nonzero(out.mask)
        assert list(zip(ys, xs)) == [(round(v), round(u))], (u, v)


def _reference_raster(verts, faces, K, W, H):
    """Numpy z-buffer: pixel centres inside projected triangles, depth by ray-plane hit."""
    uv = verts @ K.T
    uv = uv[:, :2] / uv[:, 2:]
    depth = np.full((H, W), np.inf)
    for f in faces:
        p = uv[f]
        lo = np.maximum(np.floor(p.min(0)).astype(int), 0)
        hi = np.minimum(np.ceil(p.max(0)).astype(int), [W - 1, H - 1])
        if np.any(hi < lo):
            continue
        us, vs = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1))
        q = np.stack([us.ravel(), vs.ravel()], 1).astype(float)

        def edge(a, b):
            return (b[0] - a[0]) * (q[:, 1] - a[1]) - (b[1] - a[1]) * (q[:, 0] - a[0])

        e = np.stack([edge(p[0], p[1]), edge(p[1], p[2]), edge(p[2], p[0])], 1)
        inside = np.all(e >= 0, 1) | np.all(e <= 0, 1)
        if not inside.any():
            continue
        q = q[inside]
        a, b, c = verts[f]
        n = np.cross(b - a, c - a)
        ray = np.stack([(q[:, 0] - K[0, 2]) / K[0, 0], (q[:, 1] - K[1, 2]) / K[1, 1], np.ones(len(q))], 1)
        denom = ray @ n
        ok = np.abs(denom) > 1e-12
        z = np.where(ok, (n @ a) / np.where(ok, denom, 1), np.inf)
        qi = q.astype(int)
        cur = depth[qi[:, 1], qi[:, 0]]
        depth[qi[:, 1], qi[:, 0]] = np.minimum(cur, z)
    mask = np.isfinite(depth)
    return mask, np.where(mask, depth, 0.0)


def _hand(distance=0.45):
    from hand_pose_core.mano import ManoLayer, synthetic_mano

    layer = ManoLayer(model=synthetic_mano("right"), use_pca=False, flat_hand_mean=False)
    pose = torch.zeros(1, 48)
    pose[0, :3] = torch.tensor([0.4, -0.9, 1.7])
    pose[0, 3:] = 0.25
    v, j = layer(pose)
    v = v[0].double().numpy() / 1000.0
    v = v - v.mean(0) + np.array([0.01, -0.02, distance])
    return v, layer.faces_np


def test_hand_mask_and_depth_match_reference_rasteriser(renderer):
    verts, faces = _hand()
    out = renderer.render(verts, faces, K)
    ref_mask, ref_depth = _reference_raster(verts, faces, K, W, H)
    assert ref_mask.sum() > 500
    # Only pixel centres that lie exactly on a shared edge may differ (GL tie rules).
    diff = np.logical_xor(out.mask > 0, ref_mask)
    assert diff.sum() <= 0.01 * ref_mask.sum(), diff.sum()
    vs, us = np.nonzero(out.mask)
    cy, cx = vs.mean(), us.mean()
    rv, ru = np.nonzero(ref_mask)
    assert abs(cy - rv.mean()) < 0.1 and abs(cx - ru.mean()) < 0.1
    both = (out.mask > 0) & ref_mask
    err = np.abs(out.depth_m[both] - ref_depth[both])
    assert np.percentile(err, 99) < 1e-4, np.percentile(err, 99)
    # Mask extent equals the extent of the projected vertices (to the pixel).
    uv = verts @ K.T
    uv = uv[:, :2] / uv[:, 2:]
    assert abs(us.min() - uv[:, 0].min()) <= 1.0 and abs(us.max() - uv[:, 0].max()) <= 1.0
    assert abs(vs.min() - uv[:, 1].min()) <= 1.0 and abs(vs.max() - uv[:, 1].max()) <= 1.0


def test_shading_follows_light_and_colour(renderer):
    verts, faces = _quad_at(20.5, 60.5, 20.5, 60.5, z=1.0)
    colour = (0.8, 0.4, 0.2)
    head_on = renderer.render(verts, faces, K, vertex_colors=colour,
                              light=Light(direction_cam=(0, 0, -1), ambient=0.3, diffuse=0.5, specular=0.0))
    expected = np.round(np.array(colour) * 0.8 * 255)
    np.testing.assert_allclose(head_on.rgb[40, 40], expected, atol=1.5)
    grazing = renderer.render(verts, faces, K, vertex_colors=colour, background=(0, 255, 0),
                              light=Light(direction_cam=(1, 0, 0), ambient=0.3, diffuse=0.5, specular=0.0))
    np.testing.assert_allclose(grazing.rgb[40, 40], np.round(np.array(colour) * 0.3 * 255), atol=1.5)
    assert tuple(grazing.rgb[5, 5]) == (0, 255, 0)
    # Per-vertex colours (uint8) are interpolated.
    vc = np.array([[255, 0, 0], [255, 0, 0], [0, 0, 255], [0, 0, 255]], np.uint8)
    out = renderer.render(verts, faces, K, vertex_colors=vc,
                          light=Light(direction_cam=(0, 0, -1), ambient=1.0, diffuse=0.0, specular=0.0))
    assert out.rgb[22, 40, 0] > 200 and out.rgb[58, 40, 2] > 200


def test_one_call_render_and_k_to_clip():
    verts, faces = _quad_at(10.5, 20.5, 30.5, 40.5, z=2.0)
    out = render(verts, faces, K, W, H)
    assert out.mask.sum() == 100
    # The matrix maps a point's pixel centre to the GL window coordinate u + 0.5.
    P = k_to_clip(K, W, H)
    p = P @ np.array([0.1, -0.05, 0.7, 1.0])
    u_win = (p[0] / p[3] + 1) / 2 * W
    u = K[0, 0] * 0.1 / 0.7 + K[0, 2]
    assert abs(u_win - (u + 0.5)) < 1e-9


def test_bad_input_is_named(renderer):
    verts, faces = _quad_at(10.5, 20.5, 30.5, 40.5, z=2.0)
    with pytest.raises(RendererError, match="faces index"):
        renderer.render(verts, faces + 10, K)
    with pytest.raises(RendererError, match="NaN"):
        renderer.render(verts * np.nan, faces, K)
    with pytest.raises(RendererError, match="K must be"):
        renderer.render(verts, faces, np.eye(2))


def test_forked_child_refuses_the_parents_context(renderer):
    verts, faces = _quad_at(10.5, 20.5, 30.5, 40.5, z=2.0)
    renderer.render(verts, faces, K)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: must raise our error instead of touching the inherited EGL context
        try:
            renderer.render(verts, faces, K)
            msg = b"rendered"
        except RendererError as err:
            msg = b"refused" if b"another process" in str(err).encode() else b"other"
        os.write(w, msg)
        os._exit(0)
    os.close(w)
    got = os.read(r, 100)
    os.waitpid(pid, 0)
    assert got == b"refused"


def test_render_batch_equals_single_renders(renderer):
    verts, faces = _hand()
    batch = np.stack([verts, verts + [0.02, 0.0, 0.1]])
    Ks = np.stack([K, K * [[1.1], [1.1], [1]]])
    out = renderer.render_batch(batch, faces, Ks)
    assert out.rgb.shape == (2, H, W, 3) and out.mask.shape == (2, H, W) and out.depth_m.shape == (2, H, W)
    for b in range(2):
        one = renderer.render(batch[b], faces, Ks[b])
        np.testing.assert_array_equal(out.mask[b], one.mask)
        np.testing.assert_array_equal(out.depth_m[b], one.depth_m)
    assert out.mask[0].sum() > 500 and out.mask[0].sum() != out.mask[1].sum()
    with pytest.raises(RendererError, match="K must be"):
        renderer.render_batch(batch, faces, np.stack([K] * 3))


def test_two_renderers_in_one_process_do_not_mix(renderer):
    """Each render makes its own context current (a second context must not steal the draws)."""
    verts, faces = _hand()
    first = renderer.render(verts, faces, K)
    other = Renderer(64, 48)
    small = other.render(verts, faces, K * [[0.4], [0.4], [1]])
    again = renderer.render(verts, faces, K)  # the fixture's context, after another was created
    np.testing.assert_array_equal(again.mask, first.mask)
    np.testing.assert_array_equal(again.depth_m, first.depth_m)
    assert small.mask.shape == (48, 64) and small.mask.sum() > 50
    np.testing.assert_array_equal(other.render(verts, faces, K * [[0.4], [0.4], [1]]).mask, small.mask)
    other.release()
    np.testing.assert_array_equal(renderer.render(verts, faces, K).mask, first.mask)


def test_threads_share_one_renderer(renderer):
    from concurrent.futures import ThreadPoolExecutor

    verts, faces = _hand()
    expected = renderer.render(verts, faces, K).mask
    with ThreadPoolExecutor(3) as pool:
        masks = list(pool.map(lambda _: renderer.render(verts, faces, K).mask, range(6)))
    for m in masks:
        np.testing.assert_array_equal(m, expected)


def _child_renders(conn):
    verts, faces = _quad_at(10.5, 20.5, 30.5, 40.5, z=2.0)
    conn.send(int(Renderer(W, H).render(verts, faces, K).mask.sum()))
    conn.close()


def test_fork_after_rendering_works_without_llvmpipe_threads(renderer):
    """The parent has rendered (a context exists); forked children make their own renderer."""
    import multiprocessing as mp

    assert os.environ.get("LP_NUM_THREADS") == "0"  # set by the renderer before its context
    verts, faces = _quad_at(10.5, 20.5, 30.5, 40.5, z=2.0)
    assert renderer.render(verts, faces, K).mask.sum() == 100
    ctx = mp.get_context("fork")
    for _ in range(2):
        parent, child = ctx.Pipe()
        p = ctx.Process(target=_child_renders, args=(child,))
        p.start()
        p.join(timeout=60)
        if p.is_alive():  # a hang is a failure, not a stuck test run
            p.kill()
            pytest.fail("forked child hung while rendering")
        assert p.exitcode == 0 and parent.recv() == 100


def test_torchvision_imports_after_a_render_in_the_same_process():
    """Rendering first and importing torchvision (torch._dynamo -> triton) afterwards must not
    crash: `import triton` after a Mesa EGL context segfaulted (exit -11) before the renderer
    imported triton ahead of its context."""
    import subprocess
    import sys

    code = (
        "import numpy as np\n"
        "from training.synthetic.renderer import Renderer\n"
        "verts = np.array([[-0.1, -0.1, 1.0], [0.1, -0.1, 1.0], [0.0, 0.1, 1.0]], np.float32)\n"
        "K = np.array([[60.0, 0, 31.5], [0, 60.0, 31.5], [0, 0, 1]])\n"
        "out = Renderer(64, 64).render(verts, np.array([[0, 1, 2]]), K)\n"
        "assert out.mask.sum() > 0\n"
        "import torch._dynamo, torchvision\n"
        "print('imported after render')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    assert "imported after render" in proc.stdout
