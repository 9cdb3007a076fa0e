"""Bad controller / safety configs fail at the edge with errors naming the key and value."""

import math

import pytest

from controllers.config import ConfigError, from_dict
from controllers.impedance import CartesianImpedanceController, ImpedanceConfig
from controllers.safety import SafetyConfig


@pytest.mark.parametrize(
    "data, message",
    [
        (
            {"stiffness": [1000, 1000, 0, 100, 100, 100]},
            r"stiffness\[2\]: 0.0 must be a finite number > 0",
        ),
        ({"stiffness": [1000, 1000, -5, 100, 100, 100]}, r"stiffness\[2\]: -5"),
        ({"stiffness": [1000, 1000, 1000]}, r"stiffness: expected 6 values, got 3"),
        ({"damping_ratio": 0}, r"damping_ratio: 0.0 must be a finite number > 0"),
        ({"nullspace_stiffness": -1}, r"nullspace_stiffness: -1.0"),
        ({"error_clip": [0.01, 0.01, 0.0, 0.05, 0.05, 0.05]}, r"error_clip\[2\]: 0.0 must be > 0"),
        ({"torque_limit": [87, 87, -1]}, r"torque_limit\[2\]: -1.0 must be > 0"),
        ({"torque_rate_limit": 0}, r"torque_rate_limit: 0.0 must be > 0"),
        ({"target_filter_alpha": 1.5}, r"target_filter_alpha: 1.5 must be in \(0, 1\]"),
        ({"target_filter_alpha": 0}, r"target_filter_alpha: 0.0"),
        ({"singular_damping": -1e-3}, r"singular_damping: -0.001"),
        ({"law": "pid"}, r"law: 'pid' is not one of"),
        ({"nullspace_projector": "magic"}, r"nullspace_projector: 'magic' is not one of"),
        ({"rest_posture": [0, 0, 0]}, r"rest_posture: 3 values but torque_limit has 7"),
        ({"stiffnes": [1] * 6}, r"unknown key\(s\) \['stiffnes'\]"),
    ],
)
def test_impedance_config_rejects_bad_values(data, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(ImpedanceConfig, data)


def test_impedance_config_accepts_defaults_and_inf_limits():
    config = from_dict(ImpedanceConfig, {"error_clip": [math.inf] * 6, "law": "opspace"})
    assert config.law == "opspace" and config.error_clip == (math.inf,) * 6


def test_controller_checks_joint_count():
    with pytest.raises(ConfigError, match="torque_limit: 7 values for 3 joints"):
        CartesianImpedanceController(ImpedanceConfig(), 3)


@pytest.mark.parametrize(
    "data, message",
    [
        (
            {"workspace_min": [0.8, -0.35, 0.0]},
            r"workspace_min\[0\] \(x\) = 0.8 must be < workspace_max\[0\] = 0.75",
        ),
        (
            {"workspace_max": [0.75, 0.35, 0.0]},
            r"workspace_min\[2\] \(z\) = 0.0 must be < workspace_max\[2\] = 0.0",
        ),
        ({"workspace_min": [0.25, float("nan"), 0.0]}, r"workspace_min\[1\]: nan must be finite"),
        ({"max_step_trans": 0}, r"max_step_trans: 0.0 must be a finite number > 0"),
        ({"max_step_rot": -0.1}, r"max_step_rot: -0.1"),
        ({"command_timeout_s": 0}, r"command_timeout_s: 0.0"),
        ({"max_orientation_dev": [0.5, 0.0, 3.2]}, r"max_orientation_dev\[1\]: 0.0 must be > 0"),
        ({"orientation_ref": [0, 2, 0, 0]}, r"orientation_ref: .* is not a unit quaternion"),
        ({"workspace_min": [0, 0]}, r"workspace_min: expected 3 values, got 2"),
    ],
)
def test_safety_config_rejects_bad_values(data, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(SafetyConfig, data)
