"""Forward/inverse kinematics over the 21-joint skeleton."""
import numpy as np
import pytest
import torch

from hand_pose_core.kinematics.forward_kinematics import (
    TEMPLATE_JOINTS_M,
    ForwardKinematics21,
    bone_lengths,
    inverse_kinematics,
)
from hand_pose_core.kinematics.rotations import axis_angle_to_matrix, matrix_to_rot6d
from hand_pose_core.skeleton import BONES, PARENTS_21


def _random_hands(n, dtype=torch.float64, seed=0, max_angle=1.2):
    """Plausible-ish hands: template lengths scaled, random joint rotations, random root."""
    g = torch.Generator().manual_seed(seed)
    fk = ForwardKinematics21()
    lengths = torch.as_tensor(bone_lengths(TEMPLATE_JOINTS_M), dtype=dtype)
    lengths = lengths * (0.8 + 0.4 * torch.rand(n, 1, generator=g, dtype=dtype))
    aa = (torch.rand(n, 21, 3, generator=g, dtype=dtype) - 0.5) * 2 * max_angle
    aa[:, 0] *= 3.0  # any global orientation
    root = torch.randn(n, 3, generator=g, dtype=dtype)
    return fk(lengths, axis_angle_to_matrix(aa), root)


def test_rest_pose_is_template():
    fk = ForwardKinematics21()
    L = torch.as_tensor(bone_lengths(TEMPLATE_JOINTS_M))
    np.testing.assert_allclose(fk.rest_pose(L).numpy(), TEMPLATE_JOINTS_M, atol=1e-15)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 2e-6)])
def test_fk_ik_round_trip_plausible_hands(dtype, tol):
    fk = ForwardKinematics21()
    joints = _random_hands(64, dtype=dtype)
    L, R, root = fk.inverse_kinematics(joints)
    assert L.shape == (64, 20) and R.shape == (64, 21, 3, 3) and root.shape == (64, 3)
    # IK returns proper rotations
    eye = torch.eye(3, dtype=dtype)
    assert torch.allclose(R.transpose(-1, -2) @ R, eye.expand_as(R), atol=10 * tol)
    assert torch.allclose(torch.det(R), torch.ones(64, 21, dtype=dtype), atol=10 * tol)
    assert (fk(L, R, root) - joints).abs().max() < tol


def test_fk_ik_round_trip_arbitrary_point_clouds():
    # Not hand-like at all (bones pointing backwards, etc.): still exact.
    g = torch.Generator().manual_seed(3)
    joints = torch.randn(128, 21, 3, dtype=torch.float64, generator=g)
    fk = ForwardKinematics21()
    assert (fk(*fk.inverse_kinematics(joints)) - joints).abs().max() < 1e-12


def test_ik_of_swing_only_params_is_identity():
    fk = ForwardKinematics21()
    joints = _random_hands(16)
    params = fk.inverse_kinematics(joints)
    params2 = fk.inverse_kinematics(fk(*params))
    for a, b in zip(params, params2):
        assert torch.allclose(a, b, atol=1e-10)


def test_ik_is_rotation_equivariant():
    fk = ForwardKinematics21()
    joints = _random_hands(8)
    Rg = axis_angle_to_matrix(torch.tensor([0.3, -1.1, 0.7], dtype=torch.float64))
    t = torch.tensor([0.1, 0.2, 0.5], dtype=torch.float64)
    moved = joints @ Rg.T + t
    L0, R0, _ = fk.inverse_kinematics(joints)
    L1, R1, root1 = fk.inverse_kinematics(moved)
    assert torch.allclose(L0, L1, atol=1e-12)
    assert torch.allclose(R1[:, 0], Rg @ R0[:, 0], atol=1e-10)  # only the root changes
    assert torch.allclose(R1[:, 1:], R0[:, 1:], atol=1e-10)
    assert torch.allclose(root1, moved[:, 0])


def test_bone_lengths_preserved_for_any_rotation():
    g = torch.Generator().manual_seed(1)
    fk = ForwardKinematics21()
    L = 0.01 + 0.05 * torch.rand(32, 20, generator=g, dtype=torch.float64)
    R = axis_angle_to_matrix(torch.randn(32, 21, 3, generator=g, dtype=torch.float64) * 2.0)
    joints = fk(L, R, torch.randn(32, 3, generator=g, dtype=torch.float64))
    assert torch.allclose(bone_lengths(joints), L, atol=1e-12)
    # 6D input: arbitrary (non-orthonormal) 6-vectors are projected to rotations first
    x6 = torch.randn(32, 21, 6, generator=g, dtype=torch.float64)
    assert torch.allclose(bone_lengths(fk(L, x6)), L, atol=1e-12)


def test_6d_matches_matrix_input():
    fk = ForwardKinematics21()
    R = axis_angle_to_matrix(torch.randn(4, 21, 3, dtype=torch.float64))
    L = torch.rand(4, 20, dtype=torch.float64)
    assert torch.allclose(fk(L, R), fk(L, matrix_to_rot6d(R)), atol=1e-12)


def test_gradients_finite_and_correct():
    fk = ForwardKinematics21()
    L = (0.02 + 0.03 * torch.rand(2, 20, dtype=torch.float64)).requires_grad_()
    x6 = matrix_to_rot6d(torch.eye(3, dtype=torch.float64).expand(2, 21, 3, 3)).clone()
    x6 = (x6 + 0.1 * torch.randn_like(x6)).requires_grad_()
    root = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fk, (L, x6, root), eps=1e-6, atol=1e-6)
    # identity rotations in float32, the usual training start
    L32 = torch.full((3, 20), 0.03, requires_grad=True)
    R6 = matrix_to_rot6d(torch.eye(3).expand(3, 21, 3, 3)).clone().requires_grad_()
    fk(L32, R6).square().sum().backward()
    assert torch.isfinite(L32.grad).all() and torch.isfinite(R6.grad).all()
    assert L32.grad.abs().sum() > 0 and R6.grad.abs().sum() > 0


def test_ik_gradients_finite():
    joints = _random_hands(4).requires_grad_()
    fk = ForwardKinematics21()
    L, R, root = fk.inverse_kinematics(joints)
    (R.sum() + L.sum()).backward()
    assert torch.isfinite(joints.grad).all()


def test_batch_dims_and_broadcast():
    fk = ForwardKinematics21()
    L = torch.rand(20)  # shared lengths
    R = axis_angle_to_matrix(torch.randn(2, 3, 21, 3))
    root = torch.randn(3, 3)  # one root per column, broadcast over the first dim
    out = fk(L, R, root)
    assert out.shape == (2, 3, 21, 3)
    assert torch.allclose(out[1, :, 0], root)
    flat = fk(L.expand(6, 20), R.reshape(6, 21, 3, 3), root.repeat(2, 1))
    assert torch.allclose(out.reshape(6, 21, 3), flat, atol=1e-6)
    # IK on batch dims
    Lb, Rb, rb = fk.inverse_kinematics(out)
    assert Lb.shape == (2, 3, 20) and Rb.shape == (2, 3, 21, 3, 3) and rb.shape == (2, 3, 3)


def test_custom_template_and_numpy_io():
    template = TEMPLATE_JOINTS_M * np.array([1.0, -1.0, 1.0]) + 0.01  # fingers along -y
    fk = ForwardKinematics21(template)
    L = torch.as_tensor(bone_lengths(template))
    np.testing.assert_allclose(fk.rest_pose(L).numpy(), template - template[0], atol=1e-15)
    joints = _random_hands(3).numpy()
    L_np, R_np, root_np = inverse_kinematics(joints, template)
    assert isinstance(L_np, np.ndarray) and isinstance(R_np, np.ndarray)
    out = fk(torch.from_numpy(L_np), torch.from_numpy(R_np), torch.from_numpy(root_np))
    np.testing.assert_allclose(out.numpy(), joints, atol=1e-12)
    # bone k ends at joint k+1
    assert bone_lengths(joints).shape == (3, 20)
    p, c = BONES[7]
    assert np.isclose(bone_lengths(joints)[0, 7], np.linalg.norm(joints[0, c] - joints[0, p]))
    assert PARENTS_21[c] == p


def test_bad_inputs_raise():
    fk = ForwardKinematics21()
    with pytest.raises(ValueError, match="local_rot"):
        fk(torch.rand(20), torch.rand(20, 3, 3))
    with pytest.raises(ValueError, match="bone_lengths"):
        fk(torch.rand(21), torch.rand(21, 6))
    with pytest.raises(ValueError, match="NaN"):
        fk.inverse_kinematics(torch.full((21, 3), float("nan")))
    with pytest.raises(ValueError, match=r"\[..., 21, 3\]"):
        fk.inverse_kinematics(torch.zeros(16, 3))
    with pytest.raises(ValueError, match="zero-length"):
        ForwardKinematics21(np.zeros((21, 3)))
