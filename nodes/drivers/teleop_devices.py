"""Teleoperation input devices read from their Linux device files, without ROS.

Every back end has the same interface: `open()`, `poll(now) -> DeviceState` (drains all pending
input without blocking; raises DeviceLost when the device is gone) and `close()`:
- SpaceMouse: 3Dconnexion HID reports from a hidraw node (/dev/hidrawN),
- gamepad: the kernel joystick API (/dev/input/jsN, 8-byte js_event records),
- keyboard: key presses from a terminal (cbreak mode, so Ctrl-C still works).
"""

from __future__ import annotations

import errno
import glob
import os
import struct
import termios
import tty
from dataclasses import dataclass, field
from pathlib import Path


class DeviceLost(RuntimeError):
    """The device was unplugged, cannot be opened, or closed its stream."""


@dataclass
class DeviceState:
    axes: list[float] = field(default_factory=lambda: [0.0] * 6)  # each in [-1, 1]
    buttons: list[bool] = field(default_factory=list)


class _FileDevice:
    """A character device read in non-blocking mode."""

    def __init__(self, path: str):
        self.path = path
        self.fd: int | None = None

    def open(self) -> None:
        try:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as exc:
            raise DeviceLost(f"cannot open {self.path}: {exc.strerror}") from exc

    def _read_all(self, size: int) -> list[bytes]:
        """Every complete record of `size` bytes waiting on the device."""
        chunks = []
        while True:
            try:
                data = os.read(self.fd, size * 64)
            except BlockingIOError:
                return chunks
            except OSError as exc:  # ENODEV / EIO once the device is unplugged
                raise DeviceLost(f"{self.path}: {exc.strerror}") from exc
            if not data:
                raise DeviceLost(f"{self.path}: device closed")
            chunks.extend(data[i : i + size] for i in range(0, len(data) - size + 1, size))

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class SpaceMouse(_FileDevice):
    """3Dconnexion SpaceMouse over hidraw.

    Report 1 carries translation (x, y, z; newer models append rx, ry, rz in the same report),
    report 2 rotation, report 3 the button bit mask; axes are little-endian int16, ±350 full scale.
    """

    VENDORS = ("0000046D", "0000256F")  # Logitech-era and current 3Dconnexion USB vendor ids
    FULL_SCALE = 350.0

    def __init__(self, path: str = ""):
        super().__init__(path)
        self._auto = not path
        self.state = DeviceState(buttons=[False, False])

    @classmethod
    def find(cls) -> str | None:
        """The first hidraw node whose HID device is a 3Dconnexion SpaceMouse, or None."""
        for uevent in sorted(glob.glob("/sys/class/hidraw/hidraw*/device/uevent")):
            text = Path(uevent).read_text().upper()
            if any(v in text for v in cls.VENDORS) and (
                "3DCONNEXION" in text or "SPACEMOUSE" in text
            ):
                return f"/dev/{Path(uevent).parts[4]}"
        return None

    def open(self) -> None:
        if self._auto:
            self.path = self.find()
            if self.path is None:
                raise DeviceLost("no 3Dconnexion SpaceMouse among /sys/class/hidraw devices")
        super().open()

    def _read_reports(self) -> list[bytes]:
        reports = []
        while True:
            try:
                data = os.read(self.fd, 64)
            except BlockingIOError:
                return reports
            except OSError as exc:
                raise DeviceLost(f"{self.path}: {exc.strerror}") from exc
            if not data:
                raise DeviceLost(f"{self.path}: device closed")
            reports.append(data)

    def poll(self, now: float) -> DeviceState:
        for report in self._read_reports():
            kind, body = report[0], report[1:]
            if kind == 1 and len(body) >= 6:
                n = 6 if len(body) >= 12 else 3
                values = struct.unpack(f"<{n}h", body[: 2 * n])
                self.state.axes[:n] = [max(-1.0, min(1.0, v / self.FULL_SCALE)) for v in values]
            elif kind == 2 and len(body) >= 6:
                values = struct.unpack("<3h", body[:6])
                self.state.axes[3:] = [max(-1.0, min(1.0, v / self.FULL_SCALE)) for v in values]
            elif kind == 3 and body:
                mask = int.from_bytes(body[:4].ljust(4, b"\0"), "little")
                width = max(len(self.state.buttons), mask.bit_length())
                self.state.buttons = [bool(mask >> i & 1) for i in range(width)]
        return DeviceState(list(self.state.axes), list(self.state.buttons))


class Gamepad(_FileDevice):
    """A gamepad through the Linux joystick API.

    Each struct js_event is u32 time, s16 value, u8 type, u8 number.
    """

    EVENT = struct.Struct("<IhBB")
    BUTTON, AXIS, INIT = 0x01, 0x02, 0x80

    def __init__(self, path: str = ""):
        super().__init__(path or "/dev/input/js0")
        self.axes: list[float] = []
        self.buttons: list[bool] = []

    def poll(self, now: float) -> DeviceState:
        for record in self._read_all(self.EVENT.size):
            _, value, kind, number = self.EVENT.unpack(record)
            kind &= ~self.INIT
            if kind == self.AXIS:
                self.axes.extend([0.0] * (number + 1 - len(self.axes)))
                self.axes[number] = max(-1.0, value / 32767.0)
            elif kind == self.BUTTON:
                self.buttons.extend([False] * (number + 1 - len(self.buttons)))
                self.buttons[number] = bool(value)
        return DeviceState(list(self.axes), list(self.buttons))


class Keyboard(_FileDevice):
    """Keys in a terminal. A terminal reports presses only, so a key counts as held for `hold_s`
    after its last press (keyboard auto-repeat refreshes it while the key stays down)."""

    AXIS_KEYS = {
        "w": (0, 1),
        "s": (0, -1),
        "a": (1, 1),
        "d": (1, -1),
        "q": (2, 1),
        "e": (2, -1),
        "i": (3, 1),
        "k": (3, -1),
        "j": (4, 1),
        "l": (4, -1),
        "u": (5, 1),
        "o": (5, -1),
    }
    BUTTON_KEYS = "gh 123p"  # buttons 0..6: close, open, intervene, success, failure, reset, pause

    def __init__(self, path: str = "", hold_s: float = 0.6):
        super().__init__(path or "/dev/tty")
        self.hold_s = hold_s
        self._pressed: dict[str, float] = {}
        self._saved_mode = None

    def open(self) -> None:
        super().open()
        if os.isatty(self.fd):
            self._saved_mode = termios.tcgetattr(self.fd)
            tty.setcbreak(self.fd)  # keys arrive one by one, unechoed; Ctrl-C still interrupts

    def poll(self, now: float) -> DeviceState:
        for key in b"".join(self._read_all(1)).decode("ascii", "ignore").lower():
            self._pressed[key] = now
        held = {k for k, t in self._pressed.items() if now - t <= self.hold_s}
        axes = [0.0] * 6
        for key in held & set(self.AXIS_KEYS):
            axis, sign = self.AXIS_KEYS[key]
            axes[axis] += sign
        return DeviceState(axes, [k in held for k in self.BUTTON_KEYS])

    def close(self) -> None:
        if self.fd is not None and self._saved_mode is not None:
            try:
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved_mode)
            except termios.error as exc:
                if exc.args[0] != errno.EIO:
                    raise
            self._saved_mode = None
        super().close()


def make_device(backend: str, path: str):
    return {"spacemouse": SpaceMouse, "gamepad": Gamepad, "keyboard": Keyboard}[backend](path)
