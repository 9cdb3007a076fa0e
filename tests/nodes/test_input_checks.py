"""Plausibility checks of arriving messages (nodes.input_checks): usable values pass, impossible
ones are named."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nodes.input_checks import (
    joint_state_problem,
    pose_problem,
    probability_problem,
    quaternion_problem,
    stamp_problem,
    vector_problem,
)

LO, HI = (0.25, -0.35, 0.0), (0.75, 0.35, 0.5)
HOME = [0.5, 0.0, 0.25, 0.0, 1.0, 0.0, 0.0]


def test_a_pose_inside_the_workspace_with_a_unit_quaternion_passes():
    assert pose_problem(HOME, LO, HI, 0.1) == ""
    assert pose_problem([0.8, 0.0, 0.25, 0.0, 1.0, 0.0, 0.0], LO, HI, 0.1) == ""  # in the margin


@pytest.mark.parametrize(
    ("pose", "named"),
    [
        ([0.5, math.nan, 0.25, 0.0, 1.0, 0.0, 0.0], "non-finite position"),
        ([1e30, 0.0, 0.25, 0.0, 1.0, 0.0, 0.0], "outside the safety workspace"),
        ([0.5, 0.0, -0.2, 0.0, 1.0, 0.0, 0.0], "0.2 m outside"),
        ([0.5, 0.0, 0.25, 0.0, 0.0, 0.0, 0.0], "norm 0"),
        ([0.5, 0.0, 0.25, 0.0, 1.01, 0.0, 0.0], "norm 1.01"),
        ([0.5, 0.0, 0.25, math.inf, 1.0, 0.0, 0.0], "non-finite quaternion"),
        ([0.5, 0.0, 0.25], "3 values"),
    ],
)
def test_impossible_poses_are_named(pose, named):
    assert named in pose_problem(pose, LO, HI, 0.1)


def test_without_a_workspace_only_finiteness_and_the_quaternion_count():
    assert pose_problem([5.0, 5.0, 5.0, 1.0, 0.0, 0.0, 0.0]) == ""
    assert quaternion_problem([1.0005, 0.0, 0.0, 0.0]) == ""  # within the tolerance
    assert "norm" in quaternion_problem([1e-20] * 4)


def test_stamps_far_from_the_clock_are_refused_both_ways():
    now = 1.7e9
    assert stamp_problem(now - 0.2, now, 1.0) == ""
    assert stamp_problem(now + 0.9, now, 1.0) == ""
    assert "from this PC's clock" in stamp_problem(4.0e9, now, 1.0)
    assert "from this PC's clock" in stamp_problem(0.0, now, 1.0)
    assert "from this PC's clock" in stamp_problem(math.nan, now, 1.0)


def test_vectors_and_probabilities():
    assert vector_problem("wrench", np.zeros(6), 6, 1e4) == ""
    assert "non-finite wrench" in vector_problem("wrench", [0, 0, math.nan, 0, 0, 0], 6)
    assert "exceeds" in vector_problem("twist", [0, 0, 1e30, 0, 0, 0], 6, 10.0)
    assert "5 values" in vector_problem("twist", np.zeros(5), 6)
    assert probability_problem(0.0) == probability_problem(1.0) == ""
    for value in (math.nan, -0.1, 1.5, math.inf):
        assert "not in [0, 1]" in probability_problem(value)


def test_joint_states_are_checked_name_by_name():
    names = ["a", "b", "c"]
    assert joint_state_problem(names, [0.1, 0.2, 0.3], []) == ""  # velocities may be left out
    assert joint_state_problem(names, [0.1, 0.2, 0.3], [0.0] * 3) == ""
    assert "['a'] more than once" in joint_state_problem(["a", "b", "a"], [0.0] * 3, [])
    assert "3 names but 2 positions" in joint_state_problem(names, [0.0] * 2, [])
    assert "3 names but 1 velocities" in joint_state_problem(names, [0.0] * 3, [0.0])
    assert "names no joint" in joint_state_problem([], [], [])
    assert "impossible positions" in joint_state_problem(names, [0.0, math.nan, 0.0], [])
    assert "impossible positions" in joint_state_problem(names, [0.0, 1e30, 0.0], [])
    assert "impossible velocities" in joint_state_problem(names, [0.0] * 3, [0.0, 0.0, -1e30])
