"""Batched, differentiable rotation conversions (torch).

All functions take tensors with arbitrary leading batch dimensions, keep the input dtype
(float32 or float64) and device, and are safe to differentiate at zero rotation angle
(no ``sqrt(0)`` or ``0/0`` inside the autograd graph).

Conventions:
    * axis-angle ``aa[..., 3]``: unit axis times angle in radians (right-handed).
    * rotation matrices ``R[..., 3, 3]`` act on column vectors: ``x' = R @ x``.
    * quaternions ``q[..., 4]`` are ``(w, x, y, z)`` with ``w >= 0`` on output.
    * 6D representation (Zhou et al., "On the Continuity of Rotation Representations in Neural
      Networks", CVPR 2019): the first two *columns* of ``R`` concatenated,
      ``x = [R[:, 0], R[:, 1]]``; :func:`rot6d_to_matrix` rebuilds ``R`` by Gram-Schmidt.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "skew",
    "axis_angle_to_matrix",
    "matrix_to_axis_angle",
    "rot6d_to_matrix",
    "matrix_to_rot6d",
    "quaternion_to_matrix",
    "matrix_to_quaternion",
    "axis_angle_to_quaternion",
    "quaternion_to_axis_angle",
    "quaternion_multiply",
    "rotation_between_vectors",
    "project_to_so3",
]

# Below this squared angle (rad^2) the Taylor series replace sin(t)/t etc.; the truncation
# error (t^6 terms) is far below float64 resolution there.
_SMALL_ANGLE_SQ = 1e-6


def _check_last(x: torch.Tensor, n: int, name: str) -> None:
    if not torch.is_tensor(x):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.shape[-1:] != (n,):
        raise ValueError(f"{name} must have shape [..., {n}], got {tuple(x.shape)}")


def _check_mat(R: torch.Tensor, name: str = "R") -> None:
    if not torch.is_tensor(R):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(R).__name__}")
    if R.shape[-2:] != (3, 3):
        raise ValueError(f"{name} must have shape [..., 3, 3], got {tuple(R.shape)}")


def skew(v: torch.Tensor) -> torch.Tensor:
    """Cross-product matrix ``[v]_x`` of ``v[..., 3]`` -> ``[..., 3, 3]``."""
    _check_last(v, 3, "v")
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(v.shape[:-1] + (3, 3))


def _sinc_and_versine(theta_sq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``sin(t)/t`` and ``(1-cos t)/t^2`` from ``t^2``, stable and smooth at 0."""
    small = theta_sq < _SMALL_ANGLE_SQ
    safe_sq = torch.where(small, torch.ones_like(theta_sq), theta_sq)
    t = torch.sqrt(safe_sq)
    half = 0.5 * t
    a_big = torch.sin(t) / t
    # 1 - cos t = 2 sin^2(t/2): no cancellation in float32 for small t.
    b_big = 0.5 * (torch.sin(half) / half) ** 2
    a_small = 1.0 - theta_sq / 6.0 + theta_sq * theta_sq / 120.0
    b_small = 0.5 - theta_sq / 24.0 + theta_sq * theta_sq / 720.0
    return torch.where(small, a_small, a_big), torch.where(small, b_small, b_big)


def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula: axis-angle ``[..., 3]`` (rad) -> rotation matrix ``[..., 3, 3]``.

    ``R = I + sinc(t) K + (1-cos t)/t^2 K^2`` with ``K = [aa]_x`` (not normalised), which is
    smooth in ``aa`` everywhere including ``aa = 0``.
    """
    _check_last(aa, 3, "aa")
    theta_sq = (aa * aa).sum(-1)
    a, b = _sinc_and_versine(theta_sq)
    K = skew(aa)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand(K.shape)
    return eye + a[..., None, None] * K + b[..., None, None] * (K @ K)


def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Quaternion ``(w, x, y, z)[..., 4]`` (normalised internally) -> ``[..., 3, 3]``."""
    _check_last(q, 4, "q")
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(q.dtype).tiny ** 0.5)
    w, x, y, z = q.unbind(-1)
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz = x * y, x * z, y * z
    wx, wy, wz = w * x, w * y, w * z
    m = torch.stack(
        [
            1 - 2 * (yy + zz), 2 * (xy - wz), 2 * (xz + wy),
            2 * (xy + wz), 1 - 2 * (xx + zz), 2 * (yz - wx),
            2 * (xz - wy), 2 * (yz + wx), 1 - 2 * (xx + yy),
        ],
        dim=-1,
    )
    return m.reshape(q.shape[:-1] + (3, 3))


def matrix_to_quaternion(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrix ``[..., 3, 3]`` -> unit quaternion ``(w, x, y, z)``, ``w >= 0``.

    Shepperd's method: of the four algebraically equivalent formulas, each element uses the
    one whose pivot (``|w|``, ``|x|``, ``|y|`` or ``|z|``) is largest, which is well conditioned
    for every rotation including 180 degrees.
    """
    _check_mat(R)
    r00, r01, r02 = R[..., 0, 0], R[..., 0, 1], R[..., 0, 2]
    r10, r11, r12 = R[..., 1, 0], R[..., 1, 1], R[..., 1, 2]
    r20, r21, r22 = R[..., 2, 0], R[..., 2, 1], R[..., 2, 2]
    # 4*q_i^2 for each component; clamp keeps sqrt's gradient finite at 0.
    four_sq = torch.stack(
        [1 + r00 + r11 + r22, 1 + r00 - r11 - r22, 1 - r00 + r11 - r22, 1 - r00 - r11 + r22], -1
    )
    two_abs = torch.sqrt(four_sq.clamp_min(1e-12))  # 2|q_i|
    # Row i: quaternion computed with pivot i (scaled by 2|q_i|*2 in the off-pivot terms).
    cands = torch.stack(
        [
            torch.stack([four_sq[..., 0], r21 - r12, r02 - r20, r10 - r01], -1),
            torch.stack([r21 - r12, four_sq[..., 1], r10 + r01, r02 + r20], -1),
            torch.stack([r02 - r20, r10 + r01, four_sq[..., 2], r12 + r21], -1),
            torch.stack([r10 - r01, r20 + r02, r21 + r12, four_sq[..., 3]], -1),
        ],
        dim=-2,
    )
    # Each candidate row i equals 4 q_i * q; divide by 2 * (2|q_i|) with a floor so unused
    # (ill-conditioned) rows cannot produce inf/NaN gradients.
    cands = cands / (2.0 * two_abs.clamp_min(0.1))[..., None]
    best = four_sq.argmax(dim=-1)
    onehot = F.one_hot(best, 4).to(R.dtype)
    q = (cands * onehot[..., None]).sum(-2)
    q = q * torch.where(q[..., :1] < 0, -1.0, 1.0).to(q.dtype)
    return q / q.norm(dim=-1, keepdim=True)


def axis_angle_to_quaternion(aa: torch.Tensor) -> torch.Tensor:
    """Axis-angle ``[..., 3]`` -> quaternion ``(w, x, y, z)``; smooth at zero angle."""
    _check_last(aa, 3, "aa")
    theta_sq = (aa * aa).sum(-1)
    small = theta_sq < _SMALL_ANGLE_SQ
    safe_sq = torch.where(small, torch.ones_like(theta_sq), theta_sq)
    t = torch.sqrt(safe_sq)
    # sin(t/2)/t, with series 1/2 - t^2/48 near 0.
    s = torch.where(small, 0.5 - theta_sq / 48.0, torch.sin(0.5 * t) / t)
    w = torch.where(small, 1.0 - theta_sq / 8.0, torch.cos(0.5 * t))
    return torch.cat([w[..., None], aa * s[..., None]], dim=-1)


def quaternion_to_axis_angle(q: torch.Tensor) -> torch.Tensor:
    """Quaternion ``(w, x, y, z)[..., 4]`` -> axis-angle with angle in ``[0, pi]``."""
    _check_last(q, 4, "q")
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(q.dtype).tiny ** 0.5)
    q = q * torch.where(q[..., :1] < 0, -1.0, 1.0).to(q.dtype)  # shortest rotation
    w, v = q[..., 0], q[..., 1:]
    n_sq = (v * v).sum(-1)
    small = n_sq < _SMALL_ANGLE_SQ
    safe_sq = torch.where(small, torch.ones_like(n_sq), n_sq)
    n = torch.sqrt(safe_sq)
    big = 2.0 * torch.atan2(n, w) / n
    # atan(n/w)/n = (1/w)(1 - n^2/(3 w^2) + ...), w ~ 1 here.
    w_safe = torch.where(small, w, torch.ones_like(w))
    small_f = 2.0 / w_safe * (1.0 - n_sq / (3.0 * w_safe * w_safe))
    return v * torch.where(small, small_f, big)[..., None]


def matrix_to_axis_angle(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrix ``[..., 3, 3]`` -> axis-angle ``[..., 3]`` with angle in ``[0, pi]``."""
    return quaternion_to_axis_angle(matrix_to_quaternion(R))


def quaternion_multiply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product ``a * b`` of ``(w, x, y, z)`` quaternions (rotation b, then a)."""
    _check_last(a, 4, "a")
    _check_last(b, 4, "b")
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        dim=-1,
    )


def rot6d_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """6D rotation ``[..., 6]`` -> ``[..., 3, 3]`` by Gram-Schmidt (Zhou et al. 2019).

    ``x[..., :3]`` and ``x[..., 3:]`` are the (unnormalised) first and second columns.
    """
    _check_last(x, 6, "x")
    eps = torch.finfo(x.dtype).eps
    a1, a2 = x[..., :3], x[..., 3:]
    b1 = a1 / a1.norm(dim=-1, keepdim=True).clamp_min(eps)
    u2 = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    b2 = u2 / u2.norm(dim=-1, keepdim=True).clamp_min(eps)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rot6d(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrix ``[..., 3, 3]`` -> 6D ``[R[:, 0], R[:, 1]]`` ``[..., 6]``."""
    _check_mat(R)
    return torch.cat([R[..., :, 0], R[..., :, 1]], dim=-1)


def rotation_between_vectors(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Smallest rotation ``R[..., 3, 3]`` with ``R @ a_hat = b_hat`` for ``a, b [..., 3]``.

    For (nearly) opposite vectors the rotation is 180 degrees about an axis perpendicular to
    ``a``. Inputs need not be normalised; zero vectors give the identity.
    """
    _check_last(a, 3, "a")
    _check_last(b, 3, "b")
    eps = torch.finfo(a.dtype).eps
    a = a / a.norm(dim=-1, keepdim=True).clamp_min(eps)
    b = b / b.norm(dim=-1, keepdim=True).clamp_min(eps)
    c = (a * b).sum(-1)
    v = torch.linalg.cross(a, b, dim=-1)
    # Quaternion of the half-way rotation: (1 + c, a x b), normalised. Degenerate at c = -1.
    q = torch.cat([(1.0 + c)[..., None], v], -1)
    # Fallback axis for opposite vectors: a x e, with e the basis axis least aligned with a.
    e = F.one_hot(a.abs().argmin(-1), 3).to(a.dtype)
    perp = torch.linalg.cross(a, e, dim=-1)
    perp = perp / perp.norm(dim=-1, keepdim=True).clamp_min(eps)
    q_flip = torch.cat([torch.zeros_like(c)[..., None], perp], -1)
    opposite = (q.norm(dim=-1) < 1e-6)[..., None]
    q = torch.where(opposite, q_flip, q)
    return quaternion_to_matrix(q)


def project_to_so3(M: torch.Tensor) -> torch.Tensor:
    """Nearest rotation (Frobenius norm) to ``M[..., 3, 3]`` via SVD, with det = +1."""
    _check_mat(M, "M")
    U, _, Vh = torch.linalg.svd(M)
    d = torch.det(U @ Vh)
    D = torch.ones(M.shape[:-1], dtype=M.dtype, device=M.device)
    D = torch.cat([D[..., :2], d[..., None]], -1)
    return U @ torch.diag_embed(D) @ Vh
