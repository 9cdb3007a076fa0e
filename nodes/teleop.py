"""`teleop` node: SpaceMouse, gamepad or keyboard -> `teleop/twist`, `teleop/intervening`,
`teleop/gripper`, `teleop/event`.

- twist (TwistStamped, m/s and rad/s in `frame_id`): device axes through the axis map, a deadzone
  (rescaled so motion starts at zero) and the speed limits;
- intervening (Bool): true while the device moves or a button other than the event buttons is held
  (e.g. the intervene button), and for `hold_s` after release so a pause in the operator's motion
  does not hand control back mid-correction;
- gripper (Float32): the operator's last gripper command, +1 close / -1 open / 0 none yet;
- event (String, reliable): success, failure, reset, pause, once per button press.
An unplugged device publishes intervening = false, is reported once, and is reopened every
`reconnect_period_s`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from geometry_msgs.msg import TwistStamped
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Bool, Float32, String

from controllers.config import ConfigError
from nodes.drivers.teleop_devices import DeviceLost, DeviceState, make_device
from nodes.messages import twist_msg
from nodes.params import declare_config

EVENTS = ("success", "failure", "reset", "pause")


@dataclass
class EventButtons:
    """Device button index for each operator event; -1 = not mapped."""

    success: int = -1
    failure: int = -1
    reset: int = -1
    pause: int = -1


@dataclass
class TeleopConfig:
    backend: Literal["spacemouse", "gamepad", "keyboard"] = "spacemouse"
    device: str = ""  # "" = first SpaceMouse / /dev/input/js0 / this terminal
    rate_hz: float = 50.0
    deadzone: float = 0.1  # fraction of full deflection ignored around zero
    max_linear_speed: float = 0.1  # m/s at full deflection
    max_angular_speed: float = 0.5  # rad/s at full deflection
    axis_map: list[int] = field(
        default_factory=lambda: [0, 1, 2, 3, 4, 5]
    )  # device axis for x y z rx ry rz
    axis_sign: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    hold_s: float = 0.5
    gripper_close_button: int = 0
    gripper_open_button: int = 1
    intervene_button: int = -1  # held = intervening without moving (e.g. to hold the robot still)
    events: EventButtons = field(default_factory=EventButtons)
    frame_id: str = "world"
    reconnect_period_s: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.deadzone < 1.0:
            raise ConfigError(f"deadzone: must be in [0, 1), got {self.deadzone}")
        for key in ("rate_hz", "max_linear_speed", "max_angular_speed", "reconnect_period_s"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"{key}: must be > 0, got {getattr(self, key)}")
        if self.hold_s < 0:
            raise ConfigError(f"hold_s: must be >= 0, got {self.hold_s}")
        if len(self.axis_map) != 6 or any(a < -1 for a in self.axis_map):
            raise ConfigError(
                f"axis_map: expected 6 device axis indices (-1 = unused), got {self.axis_map}"
            )
        if len(self.axis_sign) != 6:
            raise ConfigError(f"axis_sign: expected 6 values, got {self.axis_sign}")


PARAMETERS = TeleopConfig  # the node's ROS parameters are this dataclass's (flattened) fields


class TeleopMapper:
    """Device state -> (twist, intervening, gripper, new events); pure, clocked by the caller."""

    def __init__(self, config: TeleopConfig):
        self.config = config
        self.last_active = -np.inf
        self.gripper = 0.0
        self._was_pressed: set[int] = set()

    def update(self, state: DeviceState, now: float) -> tuple[np.ndarray, bool, float, list[str]]:
        cfg = self.config
        raw = np.array([state.axes[a] if 0 <= a < len(state.axes) else 0.0 for a in cfg.axis_map])
        raw = np.clip(raw * np.asarray(cfg.axis_sign), -1.0, 1.0)
        # deadzone rescaled so the command grows continuously from zero at its edge
        scaled = np.sign(raw) * np.maximum(np.abs(raw) - cfg.deadzone, 0.0) / (1.0 - cfg.deadzone)
        twist = scaled * np.repeat([cfg.max_linear_speed, cfg.max_angular_speed], 3)
        pressed = {i for i, down in enumerate(state.buttons) if down}
        new = pressed - self._was_pressed
        self._was_pressed = pressed
        if cfg.gripper_close_button in new:
            self.gripper = 1.0
        elif cfg.gripper_open_button in new:
            self.gripper = -1.0
        events = [name for name in EVENTS if getattr(cfg.events, name) in new]
        # any held button but the event buttons means the operator is acting (gripper, intervene)
        acting = pressed - {getattr(cfg.events, name) for name in EVENTS}
        if np.any(scaled != 0.0) or acting:
            self.last_active = now
        intervening = now - self.last_active <= cfg.hold_s
        return twist, bool(intervening), self.gripper, events

    def release(self) -> None:
        """The device is gone: nothing held, intervention over."""
        self.last_active = -np.inf
        self._was_pressed = set()


class TeleopNode(Node):
    def __init__(self, device_factory: Callable[[str, str], object] = make_device, **kwargs):
        super().__init__("teleop", **kwargs)
        self.config = cfg = declare_config(self, TeleopConfig)
        self.device = device_factory(cfg.backend, cfg.device)
        self.mapper = TeleopMapper(cfg)
        self.twist_pub = self.create_publisher(TwistStamped, "teleop/twist", 10)
        self.intervening_pub = self.create_publisher(Bool, "teleop/intervening", 10)
        self.gripper_pub = self.create_publisher(Float32, "teleop/gripper", 10)
        reliable = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
        self.event_pub = self.create_publisher(String, "teleop/event", reliable)
        self.connected = False
        self._reported = False  # the current outage has been logged
        self._next_try = 0.0
        self.create_timer(1.0 / cfg.rate_hz, self._tick)

    def _tick(self) -> None:
        now = time.monotonic()
        if not self.connected and now >= self._next_try:
            try:
                self.device.open()
                self.connected, self._reported = True, False
                self.get_logger().info(f"{self.config.backend} connected ({self.device.path})")
            except DeviceLost as exc:
                self._lost(exc, now, was_connected=False)
        state = None
        if self.connected:
            try:
                state = self.device.poll(now)
            except DeviceLost as exc:
                self._lost(exc, now, was_connected=True)
        if state is None:
            self.intervening_pub.publish(Bool(data=False))
            return
        twist, intervening, gripper, events = self.mapper.update(state, now)
        self.twist_pub.publish(twist_msg(twist, time.time(), self.config.frame_id))
        self.intervening_pub.publish(Bool(data=intervening))
        self.gripper_pub.publish(Float32(data=gripper))
        for name in events:
            self.get_logger().info(f"operator event: {name}")
            self.event_pub.publish(String(data=name))

    def _lost(self, exc: Exception, now: float, was_connected: bool) -> None:
        self.device.close()
        self.mapper.release()
        self.connected = False
        self._next_try = now + self.config.reconnect_period_s
        if was_connected or not self._reported:
            self.get_logger().warning(
                f"{self.config.backend} unavailable: {exc}; intervening off, "
                f"retrying every {self.config.reconnect_period_s:.1f} s"
            )
        self._reported = True

    def close(self) -> None:
        self.device.close()


def main(argv: list[str] | None = None) -> int:
    from nodes.spin import run_node

    return run_node(TeleopNode, argv)


if __name__ == "__main__":
    raise SystemExit(main())
