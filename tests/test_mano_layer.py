"""ManoLayer checked against an independent numpy LBS written here (loops, no shared code)."""
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from hand_pose_core.mano import (
    TIP_VERTEX_PRESETS,
    ManoLayer,
    mirror_pose_aa,
    synthetic_mano,
)

PARENTS = [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14]
# canonical joint -> MANO joint id, or ('tip', finger) for fingertip vertices
CANON = [0, 13, 14, 15, "t0", 1, 2, 3, "t1", 4, 5, 6, "t2", 10, 11, 12, "t3", 7, 8, 9, "t4"]


def reference_lbs(model, pose48, betas, tips):
    """Straightforward MANO forward (metres) from the papers: loops over joints and vertices."""
    v = model["v_template"] + np.tensordot(model["shapedirs"], betas, axes=([2], [0]))
    J = model["J_regressor"] @ v
    rots = [Rotation.from_rotvec(pose48[3 * k : 3 * k + 3]).as_matrix() for k in range(16)]
    feat = np.concatenate([(rots[k] - np.eye(3)).ravel() for k in range(1, 16)])
    v_posed = v + np.tensordot(model["posedirs"], feat, axes=([2], [0]))
    world = []
    for k in range(16):
        local = np.eye(4)
        local[:3, :3] = rots[k]
        local[:3, 3] = J[k] if PARENTS[k] < 0 else J[k] - J[PARENTS[k]]
        world.append(local if PARENTS[k] < 0 else world[PARENTS[k]] @ local)
    out = np.zeros_like(v)
    for i in range(v.shape[0]):
        acc = np.zeros(3)
        for k in range(16):
            w = model["weights"][i, k]
            if w == 0:
                continue
            p = world[k][:3, :3] @ (v_posed[i] - J[k]) + world[k][:3, 3]
            acc += w * p
        out[i] = acc
    joints = []
    for c in CANON:
        joints.append(out[tips[int(c[1])]] if isinstance(c, str) else world[c][:3, 3])
    return out, np.array(joints)


@pytest.fixture(scope="module")
def right():
    return synthetic_mano("right")


@pytest.fixture(scope="module")
def left():
    return synthetic_mano("left")


def test_zero_pose_gives_template(right):
    layer = ManoLayer(model=right, use_pca=False, flat_hand_mean=True)
    verts, joints = layer(torch.zeros(2, 48))
    assert verts.shape == (2, 778, 3) and joints.shape == (2, 21, 3)
    np.testing.assert_allclose(verts[0].numpy() / 1000, right["v_template"], atol=1e-6)
    J = right["J_regressor"] @ right["v_template"]
    np.testing.assert_allclose(joints[1, 0].numpy() / 1000, J[0], atol=1e-6)
    np.testing.assert_allclose(joints[1, 4].numpy() / 1000, right["v_template"][745], atol=1e-6)


def test_matches_independent_lbs_float64(right):
    rng = np.random.default_rng(0)
    layer = ManoLayer(model=right, use_pca=False, flat_hand_mean=True, dtype=torch.float64)
    for _ in range(2):
        pose = rng.normal(scale=0.5, size=48)
        betas = rng.normal(size=10)
        ref_v, ref_j = reference_lbs(right, pose, betas, TIP_VERTEX_PRESETS["manopth"]["right"])
        v, j = layer(torch.from_numpy(pose)[None], torch.from_numpy(betas)[None])
        assert v.dtype == torch.float64
        np.testing.assert_allclose(v[0].numpy(), ref_v * 1000, atol=1e-9)
        np.testing.assert_allclose(j[0].numpy(), ref_j * 1000, atol=1e-9)


def test_float32_close_to_float64(right):
    pose = torch.randn(3, 48, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    l32 = ManoLayer(model=right, use_pca=False)
    l64 = ManoLayer(model=right, use_pca=False).double()
    v32, j32 = l32(pose.float())
    v64, j64 = l64(pose)
    assert v32.dtype == torch.float32
    assert (v32.double() - v64).abs().max() < 1e-2  # mm
    # float64 input to a float32 module follows the input dtype
    v, _ = l32(pose)
    assert v.dtype == torch.float64
    torch.testing.assert_close(v, v64, atol=1e-3, rtol=0)


def test_pca_and_full_pose_agree_and_hands_mean(right):
    g = torch.Generator().manual_seed(2)
    ncomps = 12
    coeffs = torch.randn(4, 3 + ncomps, generator=g, dtype=torch.float64)
    comps = torch.from_numpy(right["hands_components"][:ncomps])
    mean = torch.from_numpy(right["hands_mean"])
    full = torch.cat([coeffs[:, :3], coeffs[:, 3:] @ comps], 1)
    for flat in (True, False):
        pca_layer = ManoLayer(model=right, use_pca=True, ncomps=ncomps, flat_hand_mean=flat,
                              dtype=torch.float64)
        full_layer = ManoLayer(model=right, use_pca=False, flat_hand_mean=True, dtype=torch.float64)
        full_in = full if flat else torch.cat([full[:, :3], full[:, 3:] + mean], 1)
        v1, j1 = pca_layer(coeffs)
        v2, j2 = full_layer(full_in)
        torch.testing.assert_close(v1, v2)
        torch.testing.assert_close(j1, j2)
    # flat_hand_mean=False with zero input is the mean pose, not the template
    v, _ = ManoLayer(model=right, use_pca=False, flat_hand_mean=False)(torch.zeros(1, 48))
    assert (v[0].numpy() / 1000 - right["v_template"]).__abs__().max() > 1e-3


def test_rotmat_and_rot6d_modes_agree(right):
    from hand_pose_core.kinematics.rotations import axis_angle_to_matrix, matrix_to_rot6d

    pose = torch.randn(2, 48, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    R = axis_angle_to_matrix(pose.reshape(2, 16, 3))
    ref_v, ref_j = ManoLayer(model=right, use_pca=False, dtype=torch.float64)(pose)
    rm = ManoLayer(model=right, use_pca=False, root_rot_mode="rotmat",
                   joint_rot_mode="rotmat", dtype=torch.float64)
    torch.testing.assert_close(rm(R)[0], ref_v)
    torch.testing.assert_close(rm(R.reshape(2, 144))[1], ref_j)
    r6 = ManoLayer(model=right, use_pca=False, root_rot_mode="rot6d", dtype=torch.float64)
    torch.testing.assert_close(r6(torch.cat([matrix_to_rot6d(R[:, 0]), pose[:, 3:]], 1))[0], ref_v)
    # robust_rot projects slightly non-orthonormal input back onto SO(3)
    noisy = R + 1e-4 * torch.randn(2, 16, 3, 3, dtype=torch.float64)
    rr = ManoLayer(model=right, use_pca=False, root_rot_mode="rotmat", joint_rot_mode="rotmat",
                   robust_rot=True, dtype=torch.float64)
    assert (rr(noisy)[0] - ref_v).abs().max() < 0.1


def test_left_is_mirror_of_right(right, left):
    rng = np.random.default_rng(4)
    pose_r = rng.normal(scale=0.4, size=(3, 48))
    betas = rng.normal(size=(3, 10))
    pose_l = mirror_pose_aa(pose_r)
    for use_pca in (False, True):
        lr = ManoLayer(model=right, side="right", use_pca=use_pca, ncomps=45,
                       flat_hand_mean=False, dtype=torch.float64)
        ll = ManoLayer(model=left, side="left", use_pca=use_pca, ncomps=45,
                       flat_hand_mean=False, dtype=torch.float64)
        if use_pca:  # same PCA coefficients, mirrored global rotation
            cr = np.concatenate([pose_r[:, :3], rng.normal(size=(3, 45))], 1)
            cl = np.concatenate([pose_l[:, :3], cr[:, 3:]], 1)
        else:
            cr, cl = pose_r, pose_l
        vr, jr = lr(torch.from_numpy(cr), torch.from_numpy(betas))
        vl, jl = ll(torch.from_numpy(cl), torch.from_numpy(betas))
        flip = torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
        torch.testing.assert_close(vl, vr * flip)
        # joints differ only by the middle fingertip vertex preset (445 vs 444)
        keep = [i for i in range(21) if i != 12]
        torch.testing.assert_close(jl[:, keep], (jr * flip)[:, keep])


def test_gradients_finite_including_zero_pose(right):
    layer = ManoLayer(model=right, use_pca=True, ncomps=6)
    pose = torch.zeros(2, 9, requires_grad=True)
    betas = torch.zeros(2, 10, requires_grad=True)
    trans = torch.zeros(2, 3, requires_grad=True)
    v, j = layer(pose, betas, trans)
    (v.square().mean() + j.square().mean()).backward()
    for t in (pose, betas, trans):
        assert t.grad is not None and torch.isfinite(t.grad).all()
    assert pose.grad.abs().sum() > 0 and betas.grad.abs().sum() > 0


def test_gradcheck_small_batch(right):
    layer = ManoLayer(model=right, use_pca=True, ncomps=3, dtype=torch.float64)
    pose = (0.3 * torch.randn(1, 6, dtype=torch.float64)).requires_grad_(True)
    betas = torch.randn(1, 10, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p, b: layer.forward_joints(p, b), (pose, betas))


def test_center_idx_and_trans(right):
    """trans (metres) replaces the centring; the millimetre convenience keeps the old rule."""
    pose = 0.3 * torch.randn(2, 48, generator=torch.Generator().manual_seed(5))
    trans_m = torch.tensor([[0.01, -0.02, 0.5], [0.0, 0.3, 0.0]])
    base_v, base_j = ManoLayer(model=right, use_pca=False)(pose)
    v, j = ManoLayer(model=right, use_pca=False)(pose, trans=trans_m)
    torch.testing.assert_close(v, base_v + 1000 * trans_m[:, None])
    torch.testing.assert_close(j, base_j + 1000 * trans_m[:, None])
    centred = ManoLayer(model=right, use_pca=False, center_idx=9)
    cv, cj = centred(pose, trans=trans_m)  # trans given: no centring (manopth)
    torch.testing.assert_close(cv, base_v + 1000 * trans_m[:, None])
    torch.testing.assert_close(cj, base_j + 1000 * trans_m[:, None])
    for no_trans in (None, torch.zeros(2, 3)):  # all-zero trans counts as not given
        cv, cj = centred(pose, trans=no_trans)
        torch.testing.assert_close(cj[:, 9], torch.zeros(2, 3))
        torch.testing.assert_close(cv, base_v - base_j[:, 9:10])
    trans_mm = 1000 * trans_m
    mv, mj = centred.forward_trans_mm(pose, trans_mm=trans_mm)
    torch.testing.assert_close(mj[:, 9], trans_mm)
    torch.testing.assert_close(mv, base_v - base_j[:, 9:10] + trans_mm[:, None])
    with pytest.raises(ValueError, match="trans_mm"):
        centred.forward_trans_mm(pose, trans_mm=torch.zeros(3, 3))


def test_manopth_style_call_with_trans_in_metres(right):
    """``ManoLayer(use_pca=True, ncomps, flat_hand_mean=False, center_idx)(pose, betas, trans)``
    with trans in metres, as manopth users write it, against the loop implementation."""
    ncomps, center = 6, 9
    layer = ManoLayer(model=right, side="right", use_pca=True, ncomps=ncomps,
                      flat_hand_mean=False, center_idx=center, dtype=torch.float64)
    g = torch.Generator().manual_seed(21)
    pose = 0.8 * torch.randn(2, 3 + ncomps, generator=g, dtype=torch.float64)
    betas = torch.randn(2, 10, generator=g, dtype=torch.float64)
    trans = torch.tensor([[0.05, -0.12, 0.45], [-0.2, 0.07, 0.9]], dtype=torch.float64)
    tips = TIP_VERTEX_PRESETS["manopth"]["right"]
    refs = []
    for b in range(2):
        p = pose[b].numpy()
        fingers = p[3:] @ right["hands_components"][:ncomps] + right["hands_mean"]
        refs.append(reference_lbs(right, np.concatenate([p[:3], fingers]), betas[b].numpy(), tips))
    verts, joints = layer(pose, betas, trans)
    joints_only = layer.forward_joints(pose, betas, trans)
    for b, (ref_v, ref_j) in enumerate(refs):
        t = trans[b].numpy()
        np.testing.assert_allclose(verts[b].numpy(), (ref_v + t) * 1000, atol=1e-8)
        np.testing.assert_allclose(joints[b].numpy(), (ref_j + t) * 1000, atol=1e-8)
        np.testing.assert_allclose(joints_only[b].numpy(), (ref_j + t) * 1000, atol=1e-8)
    # without trans the centre joint goes to the origin
    verts, joints = layer(pose, betas)
    for b, (ref_v, ref_j) in enumerate(refs):
        np.testing.assert_allclose(verts[b].numpy(), (ref_v - ref_j[center]) * 1000, atol=1e-8)
        np.testing.assert_allclose(joints[b].numpy(), (ref_j - ref_j[center]) * 1000, atol=1e-8)


def test_tip_vertex_presets(right):
    pose = torch.zeros(1, 48)
    for preset, ids in (("manopth", (745, 317, 444, 556, 673)),
                        ("smplx", (744, 320, 443, 554, 671)),
                        ("freihand", (744, 320, 443, 555, 672)),
                        ((1, 2, 3, 4, 5), (1, 2, 3, 4, 5))):
        v, j = ManoLayer(model=right, use_pca=False, tip_vertex_ids=preset)(pose)
        torch.testing.assert_close(j[0, [4, 8, 12, 16, 20]], v[0, list(ids)])
    with pytest.raises(ValueError, match="preset"):
        ManoLayer(model=right, tip_vertex_ids="bogus")
    with pytest.raises(ValueError, match="5 vertex ids"):
        ManoLayer(model=right, tip_vertex_ids=[1, 2, 3])


def test_joints_only_path_matches_full(right):
    g = torch.Generator().manual_seed(6)
    layer = ManoLayer(model=right, use_pca=True, ncomps=10, flat_hand_mean=False,
                      center_idx=0, dtype=torch.float64)
    pose = torch.randn(5, 13, generator=g, dtype=torch.float64)
    betas = torch.randn(5, 10, generator=g, dtype=torch.float64)
    trans = torch.randn(5, 3, generator=g, dtype=torch.float64)
    torch.testing.assert_close(layer.forward_joints(pose, betas, trans),
                               layer(pose, betas, trans)[1])


def test_bad_inputs_raise_clear_errors(right):
    layer = ManoLayer(model=right, use_pca=True, ncomps=6)
    with pytest.raises(ValueError, match=r"\[B, 9\]"):
        layer(torch.zeros(2, 48))
    with pytest.raises(ValueError, match="betas"):
        layer(torch.zeros(2, 9), betas=torch.zeros(2, 5))
    with pytest.raises(ValueError, match="trans"):
        layer(torch.zeros(2, 9), trans=torch.zeros(3, 3))
    with pytest.raises(TypeError):
        layer(np.zeros((2, 9)))
    with pytest.raises(ValueError, match="side"):
        ManoLayer(model=right, side="middle")
    with pytest.raises(ValueError, match="left hand"):
        ManoLayer(model=synthetic_mano("left"), side="right")
    with pytest.raises(ValueError, match="use_pca"):
        ManoLayer(model=right, joint_rot_mode="rotmat")
    with pytest.raises(FileNotFoundError, match="MANO"):
        ManoLayer(mano_root="/nonexistent/mano/models")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available on this machine")
def test_cuda_matches_cpu(right):
    layer = ManoLayer(model=right, use_pca=False)
    pose = 0.3 * torch.randn(2, 48)
    v_cpu, j_cpu = layer(pose)
    v_gpu, j_gpu = layer.cuda()(pose.cuda())
    assert v_gpu.is_cuda
    torch.testing.assert_close(v_gpu.cpu(), v_cpu, atol=1e-3, rtol=0)


def test_joint_order_agrees_with_kinematics_joint_maps(right):
    """The layer's canonical order is the project's shared MANO->canonical map."""
    jm = pytest.importorskip("hand_pose_core.kinematics.joint_maps")
    idx = torch.arange(21, dtype=torch.float64)[:, None].expand(21, 3)
    via_maps = jm.convert_joints(jm.append_mano_tips(idx[:16], idx[16:]), "mano16", "canonical")
    from hand_pose_core.mano import MANO_TO_CANONICAL

    assert [int(v) for v in via_maps[:, 0]] == list(MANO_TO_CANONICAL)
