"""Tests for hand_pose_core.kinematics.rotations (checked against scipy.spatial.transform)."""
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from hand_pose_core.kinematics import rotations as rot


def _random_aa(n, dtype=torch.float64, seed=0, max_angle=np.pi * 0.999):
    g = torch.Generator().manual_seed(seed)
    axis = torch.randn(n, 3, generator=g, dtype=dtype)
    axis = axis / axis.norm(dim=-1, keepdim=True)
    angle = torch.rand(n, 1, generator=g, dtype=dtype) * max_angle
    return axis * angle


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_axis_angle_to_matrix_matches_scipy(dtype):
    aa = _random_aa(200, dtype)
    R = rot.axis_angle_to_matrix(aa)
    assert R.dtype == dtype and R.shape == (200, 3, 3)
    ref = Rotation.from_rotvec(aa.double().numpy()).as_matrix()
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    np.testing.assert_allclose(R.double().numpy(), ref, atol=tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matrix_axis_angle_round_trip_including_edge_angles(dtype):
    aa = _random_aa(300, dtype, seed=1)
    # Near 0 and near pi are where naive formulas break.
    extra = torch.tensor(
        [[0, 0, 0], [1e-9, 0, 0], [0, 1e-4, -1e-4], [np.pi - 1e-4, 0, 0], [0, 0, np.pi]],
        dtype=dtype,
    )
    aa = torch.cat([aa, extra])
    R = rot.axis_angle_to_matrix(aa)
    back = rot.matrix_to_axis_angle(R)
    # Compare as matrices (axis-angle at exactly pi is ambiguous in sign).
    tol = 2e-5 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(rot.axis_angle_to_matrix(back), R, atol=tol, rtol=0)
    # Away from pi the vector itself must come back.
    ok = aa.norm(dim=-1) < 3.0
    torch.testing.assert_close(back[ok], aa[ok], atol=tol * 10, rtol=0)


def test_matrix_to_quaternion_matches_scipy():
    R = Rotation.random(500, random_state=3)
    q = rot.matrix_to_quaternion(torch.from_numpy(R.as_matrix()))
    ref = R.as_quat()[:, [3, 0, 1, 2]]  # scipy is (x, y, z, w)
    ref = ref * np.where(ref[:, :1] < 0, -1, 1)
    np.testing.assert_allclose(q.numpy(), ref, atol=1e-12)


def test_quaternion_helpers_consistent():
    aa = _random_aa(100, seed=4)
    q = rot.axis_angle_to_quaternion(aa)
    torch.testing.assert_close(rot.quaternion_to_matrix(q), rot.axis_angle_to_matrix(aa))
    torch.testing.assert_close(rot.quaternion_to_axis_angle(q), aa)
    # Hamilton product composes rotations like matrix products.
    q2 = rot.axis_angle_to_quaternion(_random_aa(100, seed=5))
    torch.testing.assert_close(
        rot.quaternion_to_matrix(rot.quaternion_multiply(q, q2)),
        rot.quaternion_to_matrix(q) @ rot.quaternion_to_matrix(q2),
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rot6d_round_trip_and_orthonormal(dtype):
    R = torch.from_numpy(Rotation.random(100, random_state=6).as_matrix()).to(dtype)
    x = rot.matrix_to_rot6d(R)
    assert x.shape == (100, 6)
    torch.testing.assert_close(rot.rot6d_to_matrix(x), R)
    # Arbitrary (non-orthonormal) 6D input still gives a proper rotation.
    g = torch.Generator().manual_seed(7)
    Rn = rot.rot6d_to_matrix(torch.randn(50, 4, 6, generator=g, dtype=dtype))
    eye = torch.eye(3, dtype=dtype).expand_as(Rn)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(Rn @ Rn.transpose(-1, -2), eye, atol=tol, rtol=0)
    torch.testing.assert_close(torch.det(Rn), torch.ones(50, 4, dtype=dtype), atol=tol, rtol=0)
    # Gram-Schmidt keeps the direction of the first column.
    x = torch.randn(10, 6, generator=g, dtype=dtype)
    c0 = x[:, :3] / x[:, :3].norm(dim=-1, keepdim=True)
    torch.testing.assert_close(rot.rot6d_to_matrix(x)[:, :, 0], c0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradients_finite_at_zero_angle(dtype):
    aa = torch.zeros(4, 3, dtype=dtype, requires_grad=True)
    R = rot.axis_angle_to_matrix(aa)
    (R * torch.arange(9, dtype=dtype).reshape(3, 3)).sum().backward()
    assert torch.isfinite(aa.grad).all()
    # d R / d aa at 0 is the skew generator: dR[2,1]/d aa_x = 1.
    aa2 = torch.zeros(3, dtype=dtype, requires_grad=True)
    rot.axis_angle_to_matrix(aa2)[2, 1].backward()
    torch.testing.assert_close(aa2.grad, torch.tensor([1.0, 0, 0], dtype=dtype))

    R0 = torch.eye(3, dtype=dtype).repeat(2, 1, 1).requires_grad_(True)
    rot.matrix_to_axis_angle(R0).sum().backward()
    assert torch.isfinite(R0.grad).all()

    q = torch.tensor([[1.0, 0, 0, 0]], dtype=dtype, requires_grad=True)
    rot.quaternion_to_axis_angle(q).sum().backward()
    assert torch.isfinite(q.grad).all()


def test_gradcheck_axis_angle_and_back():
    aa = (_random_aa(3, seed=8) * 0.9).requires_grad_(True)
    assert torch.autograd.gradcheck(rot.axis_angle_to_matrix, (aa,))
    small = (torch.tensor([[1e-5, -2e-5, 3e-5]], dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(rot.axis_angle_to_matrix, (small,))
    R = rot.axis_angle_to_matrix(_random_aa(3, seed=9) * 0.9).requires_grad_(True)
    assert torch.autograd.gradcheck(rot.matrix_to_axis_angle, (R,))
    x = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(rot.rot6d_to_matrix, (x,))


def test_rotation_between_vectors():
    g = torch.Generator().manual_seed(10)
    a = torch.randn(100, 3, generator=g, dtype=torch.float64)
    b = torch.randn(100, 3, generator=g, dtype=torch.float64)
    b[0] = -a[0] * 2.0  # opposite
    b[1] = a[1] * 3.0  # parallel
    R = rot.rotation_between_vectors(a, b)
    ah = a / a.norm(dim=-1, keepdim=True)
    bh = b / b.norm(dim=-1, keepdim=True)
    torch.testing.assert_close((R @ ah[..., None])[..., 0], bh)
    torch.testing.assert_close(torch.det(R), torch.ones(100, dtype=torch.float64))
    # Minimal rotation: its axis is perpendicular to both a and b.
    aa = rot.matrix_to_axis_angle(R[2:])
    assert (aa * ah[2:]).sum(-1).abs().max() < 1e-8


def test_project_to_so3():
    R = torch.from_numpy(Rotation.random(20, random_state=11).as_matrix())
    noisy = R + 1e-3 * torch.randn(20, 3, 3, dtype=torch.float64)
    P = rot.project_to_so3(noisy)
    eye = torch.eye(3, dtype=torch.float64).expand(20, 3, 3)
    torch.testing.assert_close(P @ P.transpose(-1, -2), eye)
    assert (P - R).abs().max() < 5e-3
    reflect = torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64))
    assert torch.det(rot.project_to_so3(reflect)) > 0


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"\[\.\.\., 3\]"):
        rot.axis_angle_to_matrix(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="3, 3"):
        rot.matrix_to_axis_angle(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="6"):
        rot.rot6d_to_matrix(torch.zeros(5))
    with pytest.raises(TypeError):
        rot.axis_angle_to_matrix(np.zeros(3))
