"""teleop node in its own process, fed SpaceMouse HID reports through a mock hidraw node (FIFO)."""

from __future__ import annotations

import os
import struct
import time

import pytest

pytestmark = pytest.mark.ros


def test_teleop_process_twist_intervening_events_and_unplug(
    tmp_path, rclpy_context, spin_until, start_node
):
    from geometry_msgs.msg import TwistStamped
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_msgs.msg import Bool, Float32, String

    from nodes.messages import twist_array

    hidraw = tmp_path / "hidraw_mock"
    os.mkfifo(hidraw)
    writer = os.open(hidraw, os.O_RDWR)
    proc = start_node(
        "nodes.teleop",
        [
            "-p",
            "backend:=spacemouse",
            "-p",
            f"device:={hidraw}",
            "-p",
            "hold_s:=0.4",
            "-p",
            "deadzone:=0.1",
            "-p",
            "max_linear_speed:=0.2",
            "-p",
            "events.success:=1",
            "-p",
            "gripper_open_button:=-1",
            "-p",
            "reconnect_period_s:=0.2",
        ],
    )
    node = Node("teleop_listener", context=rclpy_context)
    got = {"twist": [], "intervening": [], "gripper": [], "event": []}
    node.create_subscription(
        TwistStamped, "teleop/twist", lambda m: got["twist"].append(twist_array(m)), 10
    )
    node.create_subscription(
        Bool,
        "teleop/intervening",
        lambda m: got["intervening"].append((time.monotonic(), m.data)),
        10,
    )
    node.create_subscription(Float32, "teleop/gripper", lambda m: got["gripper"].append(m.data), 10)
    node.create_subscription(
        String,
        "teleop/event",
        lambda m: got["event"].append(m.data),
        QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE),
    )
    assert spin_until(node, lambda: len(got["intervening"]) > 5, 20.0), proc.output()
    assert not any(v for _, v in got["intervening"])

    os.write(writer, bytes([1]) + struct.pack("<3h", 175, 0, 0))  # half deflection along x
    assert spin_until(node, lambda: got["intervening"] and got["intervening"][-1][1], 5.0)
    spin_until(node, lambda: False, 0.2)
    # (0.5 - 0.1) / 0.9 of 0.2 m/s
    assert got["twist"][-1][0] == pytest.approx(0.4 / 0.9 * 0.2, rel=1e-3)
    os.write(writer, bytes([1]) + struct.pack("<3h", 0, 0, 0))  # released
    released = time.monotonic()
    assert spin_until(node, lambda: not got["intervening"][-1][1], 5.0)
    dropped = next(t for t, v in got["intervening"] if t > released and not v)
    assert 0.3 <= dropped - released <= 1.0, "intervening held for hold_s after release"

    os.write(writer, bytes([3, 0b11, 0]))  # buttons 0 (gripper close) and 1 (success) pressed
    assert spin_until(node, lambda: "success" in got["event"] and got["gripper"][-1] == 1.0, 5.0)
    os.write(writer, bytes([3, 0, 0]))
    spin_until(node, lambda: False, 0.3)
    assert got["event"] == ["success"]

    os.write(writer, bytes([1]) + struct.pack("<3h", 350, 0, 0))
    assert spin_until(node, lambda: got["intervening"][-1][1], 5.0)
    os.close(writer)  # unplugged while the operator was moving
    assert spin_until(node, lambda: not got["intervening"][-1][1], 2.0)
    assert proc.proc.poll() is None, "an unplugged device is not a crash"
    spin_until(node, lambda: False, 0.5)
    assert "spacemouse unavailable" in proc.output() and "intervening off" in proc.output()


def test_bad_parameter_stops_the_node_naming_the_key(start_node):
    proc = start_node("nodes.teleop", ["-p", "deadzone:=1.5", "-p", "backend:=gamepad"])
    assert proc.proc.wait(30) == 2
    assert (
        "bad parameter" in proc.output() and "deadzone" in proc.output() and "1.5" in proc.output()
    )
