"""Teleop mapping and device back ends (no ROS): real device-file formats via FIFOs and a pty."""

from __future__ import annotations

import os
import pty
import struct

import numpy as np
import pytest

from controllers.config import ConfigError, from_dict
from nodes.drivers.teleop_devices import DeviceLost, DeviceState, Gamepad, Keyboard, SpaceMouse
from nodes.teleop import TeleopConfig, TeleopMapper


def _state(axes=(0, 0, 0, 0, 0, 0), buttons=()):
    return DeviceState(list(map(float, axes)), [bool(b) for b in buttons])


def test_deadzone_scaling_axis_map_and_sign():
    cfg = TeleopConfig(
        deadzone=0.2,
        max_linear_speed=0.1,
        max_angular_speed=0.5,
        axis_map=[1, 0, 2, -1, 4, 5],
        axis_sign=[1, -1, 1, 1, 1, -1],
    )
    mapper = TeleopMapper(cfg)
    twist, intervening, _, _ = mapper.update(_state([0.6, 1.0, 0.15, 0.9, -1.0, 0.6]), now=0.0)
    # x <- axis 1 (full), y <- -axis 0 (0.6 -> (0.6-0.2)/0.8 = 0.5), z in the deadzone, rx unused
    np.testing.assert_allclose(twist, [0.1, -0.05, 0.0, 0.0, -0.5, -0.25])
    assert intervening


def test_inside_deadzone_is_no_motion_and_no_intervention():
    mapper = TeleopMapper(TeleopConfig(deadzone=0.1))
    twist, intervening, gripper, events = mapper.update(
        _state([0.05, -0.09, 0, 0, 0, 0.1]), now=0.0
    )
    assert not twist.any() and not intervening and gripper == 0.0 and events == []


def test_intervening_holds_after_release_then_drops():
    mapper = TeleopMapper(TeleopConfig(hold_s=0.5))
    assert mapper.update(_state([1, 0, 0, 0, 0, 0]), now=10.0)[1]
    assert mapper.update(_state(), now=10.4)[1]
    assert mapper.update(_state(), now=10.5)[1]
    assert not mapper.update(_state(), now=10.51)[1]


def test_intervene_button_gripper_latch_and_events_once_per_press():
    cfg = from_dict(
        TeleopConfig,
        {
            "intervene_button": 2,
            "gripper_close_button": 0,
            "gripper_open_button": 1,
            "hold_s": 0.0,
            "events": {"success": 3, "reset": 4},
        },
    )
    mapper = TeleopMapper(cfg)
    assert mapper.update(_state(buttons=[0, 0, 1]), now=0.0)[1]  # held still, but intervening
    _, _, gripper, events = mapper.update(_state(buttons=[1, 0, 0, 1]), now=1.0)
    assert gripper == 1.0 and events == ["success"]
    _, _, gripper, events = mapper.update(_state(buttons=[1, 0, 0, 1]), now=1.1)
    assert gripper == 1.0 and events == []  # still held: no second event
    _, _, gripper, events = mapper.update(_state(buttons=[0, 1, 0, 0, 1]), now=1.2)
    assert gripper == -1.0 and events == ["reset"]
    assert mapper.update(_state(buttons=[0, 1]), now=5.0)[
        1
    ]  # a held gripper button is the operator acting
    assert not mapper.update(_state(buttons=[0, 0, 0, 1]), now=9.0)[
        1
    ]  # an event button alone is not


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="deadzone"):
        TeleopConfig(deadzone=1.5)
    with pytest.raises(ConfigError, match="axis_map"):
        TeleopConfig(axis_map=[0, 1, 2])
    with pytest.raises(ConfigError, match="events.*unknown.*'crash'"):
        from_dict(TeleopConfig, {"events": {"crash": 1}})


@pytest.fixture
def fifo(tmp_path):
    """A FIFO standing in for a device node; the test holds the writing end."""
    path = tmp_path / "device"
    os.mkfifo(path)
    writer = os.open(path, os.O_RDWR)  # O_RDWR: never blocks waiting for a reader
    yield str(path), writer
    try:
        os.close(writer)
    except OSError:
        pass


def test_gamepad_reads_js_events_and_reports_unplug(fifo):
    path, writer = fifo
    pad = Gamepad(path)
    pad.open()
    js = struct.Struct("<IhBB")
    os.write(
        writer,
        js.pack(0, 0, 0x82, 0)
        + js.pack(1, 16384, 0x02, 1)
        + js.pack(2, -32767, 0x02, 3)
        + js.pack(3, 1, 0x01, 2),
    )
    state = pad.poll(0.0)
    assert state.axes[1] == pytest.approx(0.5, abs=1e-4) and state.axes[3] == -1.0
    assert state.buttons == [False, False, True]
    os.write(writer, js.pack(4, 0, 0x01, 2))
    assert pad.poll(0.1).buttons == [False, False, False]
    os.close(writer)  # unplugged: the stream ends
    with pytest.raises(DeviceLost, match="device closed"):
        pad.poll(0.2)
    pad.close()


def test_spacemouse_hid_reports_translation_rotation_buttons(fifo):
    path, writer = fifo
    mouse = SpaceMouse(path)
    mouse.open()
    # hidraw hands over one report per read; a FIFO would merge writes, so poll after each one
    for report in (
        bytes([1]) + struct.pack("<3h", 350, -175, 0),
        bytes([2]) + struct.pack("<3h", 0, 0, 700),
        bytes([3, 0b10, 0]),
    ):
        os.write(writer, report)
        state = mouse.poll(0.0)
    np.testing.assert_allclose(state.axes, [1.0, -0.5, 0.0, 0.0, 0.0, 1.0])
    assert state.buttons == [False, True]
    os.write(
        writer, bytes([1]) + struct.pack("<6h", 0, 35, 0, 70, 0, 0)
    )  # one 6-axis report (newer models)
    np.testing.assert_allclose(mouse.poll(0.1).axes, [0.0, 0.1, 0.0, 0.2, 0.0, 0.0])
    mouse.close()


def test_spacemouse_missing_is_reported_not_a_crash():
    with pytest.raises(DeviceLost, match="cannot open /nonexistent/hidraw9"):
        SpaceMouse("/nonexistent/hidraw9").open()


def test_keyboard_in_a_terminal():
    leader, follower = pty.openpty()
    keyboard = Keyboard(os.ttyname(follower), hold_s=0.5)
    keyboard.open()
    try:
        os.write(leader, b"wJ1")
        state = keyboard.poll(now=0.0)
        assert state.axes == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        assert state.buttons == [
            False,
            False,
            False,
            True,
            False,
            False,
            False,
        ]  # '1' = success button
        assert (
            keyboard.poll(now=0.4).axes[0] == 1.0
        )  # held until auto-repeat would have refreshed it
        assert keyboard.poll(now=0.6).axes == [0.0] * 6
    finally:
        keyboard.close()
        os.close(leader)
        os.close(follower)
