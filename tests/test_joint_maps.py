"""Joint-order maps: permutations, round trips, and the published tables."""
from pathlib import Path

import numpy as np
import pytest
import torch

from hand_pose_core import skeleton
from hand_pose_core.kinematics import joint_maps as jm

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "REFERENCE.md"
FMTS = ["canonical", "mano16", "rhd", "interhand", "mediapipe"]


@pytest.mark.parametrize("fmt", list(jm.TO_CANONICAL))
def test_maps_are_permutations(fmt):
    assert sorted(jm.TO_CANONICAL[fmt]) == list(range(21))
    assert sorted(jm.FROM_CANONICAL[fmt]) == list(range(21))


@pytest.mark.parametrize("src", FMTS)
@pytest.mark.parametrize("dst", FMTS)
def test_round_trip_identity_numpy(src, dst):
    x = np.random.default_rng(0).normal(size=(2, 3, 21, 3))
    y = jm.convert_joints(jm.convert_joints(x, src, dst), dst, src)
    np.testing.assert_array_equal(x, y)


def test_round_trip_torch_and_grad():
    x = torch.randn(4, 21, 2, requires_grad=True)
    y = jm.convert_joints(x, "canonical", "rhd")
    assert y.shape == x.shape and y.dtype == x.dtype
    jm.convert_joints(y, "rhd", "canonical").sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))
    back = jm.convert_joints(y.detach(), "rhd", "canonical")
    assert torch.equal(back, x.detach())


def test_scores_axis_last():
    scores = np.arange(21.0)
    out = jm.convert_joints(scores, "canonical", "interhand", axis=-1)
    assert out[20] == 0.0  # interhand keeps the wrist last
    assert out[0] == skeleton.JOINT_INDEX["thumb_tip"]


def test_semantics_named_joints():
    # Label every canonical joint by its id, convert, and check names land where each
    # convention documents them.
    canon = np.arange(21.0)[:, None].repeat(3, axis=1)
    rhd = jm.convert_joints(canon, "canonical", "rhd")
    assert rhd[1, 0] == skeleton.JOINT_INDEX["thumb_tip"]  # RHD: tip first
    assert rhd[4, 0] == skeleton.JOINT_INDEX["thumb_cmc"]
    ih = jm.convert_joints(canon, "canonical", "interhand")
    assert ih[0, 0] == skeleton.JOINT_INDEX["thumb_tip"] and ih[20, 0] == 0
    assert ih[7, 0] == skeleton.JOINT_INDEX["index_mcp"]  # index1 is the base
    mano = jm.convert_joints(canon, "canonical", "mano16")
    # MANO: wrist, index1-3, middle1-3, little1-3, ring1-3, thumb1-3, tips(th,in,mi,ri,pi)
    assert list(mano[:, 0]) == [0, 5, 6, 7, 9, 10, 11, 17, 18, 19, 13, 14, 15, 1, 2, 3,
                                4, 8, 12, 16, 20]
    np.testing.assert_array_equal(jm.convert_joints(canon, "canonical", "mediapipe"), canon)


def _reference_row(label: str) -> list[int]:
    for line in REFERENCE.read_text().splitlines():
        if line.startswith(f"| {label}"):
            return [int(c) if c.strip().isdigit() else -1 for c in line.strip("|").split("|")[1:]]
    raise AssertionError(f"row {label!r} not in {REFERENCE}")


def test_tables_match_reference_md():
    if not REFERENCE.exists():
        pytest.skip(f"{REFERENCE} not present (shared project notes)")
    assert tuple(_reference_row("RHD")) == jm.TO_CANONICAL["rhd"]
    mano = _reference_row("MANO 16")
    for i, m in enumerate(mano):
        if m >= 0:
            assert jm.TO_CANONICAL["mano16"][i] == m
        else:  # 'tip' columns: fingertips appended after the 16 joints
            assert jm.TO_CANONICAL["mano16"][i] >= 16


def test_append_mano_tips():
    j16, tips = torch.randn(2, 16, 3), torch.randn(2, 5, 3)
    full = jm.append_mano_tips(j16, tips)
    canon = jm.convert_joints(full, "mano16", "canonical")
    assert torch.equal(canon[:, skeleton.FINGERTIPS], tips)
    assert torch.equal(canon[:, 0], j16[:, 0])


def test_bad_input_raises():
    with pytest.raises(ValueError, match="unknown joint format"):
        jm.convert_joints(np.zeros((21, 3)), "canonical", "coco")
    with pytest.raises(ValueError, match="append_mano_tips"):
        jm.convert_joints(np.zeros((16, 3)), "mano16", "canonical")
    with pytest.raises(ValueError, match="expected 21 joints"):
        jm.convert_joints(np.zeros((3, 21)), "rhd", "canonical")
    with pytest.raises(TypeError):
        jm.convert_joints([[0.0] * 3] * 21, "rhd", "canonical")
