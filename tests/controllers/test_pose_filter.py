"""PoseFilter: first-order SE(3) low-pass (position lerp, orientation slerp)."""

import numpy as np
import pytest

from controllers.config import ConfigError
from controllers.filters import PoseFilter
from controllers.se3 import orientation_error, quat_mul, rotvec_to_quat

START = np.array([0.0, 1.0, 0.0, 0.0])


def test_converges_geometrically_along_the_geodesic():
    pose_filter = PoseFilter(alpha=0.2)
    pose_filter.reset([0.0, 0.0, 0.0], START)
    goal_quat = quat_mul(rotvec_to_quat(np.array([0.0, 0.6, 0.0])), START)
    for k in range(1, 6):
        pos, quat = pose_filter.update([1.0, -2.0, 0.5], goal_quat)
        remaining = 0.8**k
        np.testing.assert_allclose(pos, np.array([1.0, -2.0, 0.5]) * (1 - remaining), atol=1e-12)
        np.testing.assert_allclose(
            orientation_error(goal_quat, quat), [0, 0.6 * remaining, 0], atol=1e-9
        )


def test_alpha_one_passes_through_and_normalizes():
    pose_filter = PoseFilter(alpha=1.0)
    pose_filter.reset([0.0, 0.0, 0.0], START)
    pos, quat = pose_filter.update([0.3, 0.2, 0.1], [0.0, 2.0, 0.0, 0.0])
    np.testing.assert_allclose(pos, [0.3, 0.2, 0.1])
    np.testing.assert_allclose(quat, START)


@pytest.mark.parametrize("alpha", [0.0, -0.1, 1.5, float("nan")])
def test_alpha_outside_unit_interval_is_rejected(alpha):
    with pytest.raises(ConfigError, match="alpha"):
        PoseFilter(alpha)


def test_bad_input_is_rejected_with_the_name():
    pose_filter = PoseFilter(alpha=0.5)
    with pytest.raises(RuntimeError, match="before reset"):
        pose_filter.update([0, 0, 0], START)
    pose_filter.reset([0, 0, 0], START)
    with pytest.raises(ValueError, match="pos must be 3 finite numbers"):
        pose_filter.update([0, np.nan, 0], START)
    with pytest.raises(ValueError, match="zero or non-finite norm"):
        pose_filter.update([0, 0, 0], [0, 0, 0, 0])
