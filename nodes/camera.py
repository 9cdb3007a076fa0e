"""`camera` node: a RealSense (by serial, via pyrealsense2) or a V4L2 camera (OpenCV) on ROS topics.

Publishes `cameras/<name>/image_raw` (rgb8), `cameras/<name>/camera_info` and, with `align_depth`,
`cameras/<name>/depth/image_raw` (16UC1, millimetres, aligned to the colour image so the colour
`camera_info` describes it too). A camera that stops delivering frames (unplugged, USB reset, end
of a recording) is closed, reported in one log line and reopened every `restart_period_s`.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image

from controllers.config import ConfigError
from nodes.messages import camera_info_msg, image_msg
from nodes.params import declare_config


@dataclass
class CameraConfig:
    name: str = "front"
    backend: Literal["realsense", "v4l2"] = "realsense"
    serial: str = ""  # RealSense serial number; "" takes the only connected camera
    playback_file: str = ""  # a RealSense recording (.db3) played back as if it were the camera
    device: str = "/dev/video0"  # V4L2 device
    width: int = 640
    height: int = 480
    fps: int = 30
    exposure_us: float = 0.0  # 0 = auto exposure
    align_depth: bool = False  # RealSense only
    hardware_timestamps: bool = True  # stamp with the camera clock mapped onto the host clock
    frame_timeout_s: float = 1.0
    restart_period_s: float = 2.0
    frame_id: str = ""  # default "<name>_color_optical_frame"
    # V4L2 has no factory calibration: fx, fy, cx, cy from calibration/, zeros = uncalibrated
    intrinsics: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0])

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ConfigError(f"name: {self.name!r} must be a non-empty topic name part")
        for key in ("width", "height", "fps"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key}: must be > 0, got {getattr(self, key)}")
        for key in ("frame_timeout_s", "restart_period_s"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"{key}: must be > 0 seconds, got {getattr(self, key)}")
        if self.exposure_us < 0:
            raise ConfigError(f"exposure_us: must be >= 0 (0 = auto), got {self.exposure_us}")
        if len(self.intrinsics) != 4:
            raise ConfigError(f"intrinsics: expected [fx, fy, cx, cy], got {self.intrinsics}")
        if self.align_depth and self.backend != "realsense":
            raise ConfigError("align_depth: only the realsense backend has depth")


PARAMETERS = CameraConfig  # the node's ROS parameters are this dataclass's (flattened) fields


class CameraLost(RuntimeError):
    """The camera is gone or delivers no frames; the node restarts the stream."""


@dataclass
class Intrinsics:
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    distortion_model: str = "plumb_bob"
    coeffs: list[float] = field(default_factory=lambda: [0.0] * 5)


@dataclass
class Frame:
    color: np.ndarray  # (H, W, 3) uint8 RGB
    depth: np.ndarray | None  # (H, W) uint16 millimetres, aligned to color
    host_time: float  # host wall clock when the frame arrived, seconds
    device_time: float  # camera hardware clock, seconds; NaN when the camera has none
    number: int


class RealSenseSource:
    """Colour (and aligned depth) from one RealSense device through the sensor API and a syncer.

    `find_device` returns the pyrealsense2 device to open; by default it is looked up by serial
    number among connected devices, or loaded from `playback_file`.
    """

    def __init__(self, config: CameraConfig, find_device: Callable[[], object] | None = None):
        import pyrealsense2 as rs

        self.rs = rs
        self.config = config
        self._find_device = find_device or self._connected_device
        self._context = None
        self._sensors: list = []
        self._syncer = None
        self._align = None

    def _connected_device(self):
        rs = self.rs
        self._context = rs.context()
        if self.config.playback_file:
            try:
                return self._context.load_device(self.config.playback_file)
            except RuntimeError as exc:
                raise CameraLost(f"cannot play {self.config.playback_file}: {exc}") from exc
        devices = list(self._context.query_devices())
        serials = [d.get_info(rs.camera_info.serial_number) for d in devices]
        for device, serial in zip(devices, serials):
            if not self.config.serial or serial == self.config.serial:
                return device
        wanted = f"serial {self.config.serial}" if self.config.serial else "any RealSense"
        raise CameraLost(f"no {wanted} connected (found: {serials or 'none'})")

    def _profile(self, stream, fmt) -> tuple[object, object]:
        cfg = self.config
        offered = []
        for sensor in self._device.query_sensors():
            for profile in sensor.get_stream_profiles():
                if profile.stream_type() != stream or not profile.is_video_stream_profile():
                    continue
                video = profile.as_video_stream_profile()
                offered.append(
                    f"{video.width()}x{video.height()}@{profile.fps()} {profile.format()}"
                )
                if (video.width(), video.height(), profile.fps(), profile.format()) == (
                    cfg.width,
                    cfg.height,
                    cfg.fps,
                    fmt,
                ):
                    return sensor, profile
        raise CameraLost(
            f"{stream} {cfg.width}x{cfg.height}@{cfg.fps} {fmt} not offered; offered: {offered}"
        )

    def open(self) -> Intrinsics:
        rs = self.rs
        self._device = self._find_device()
        if self._device.is_playback():
            self._device.as_playback().set_real_time(True)
        streams = [self._profile(rs.stream.color, rs.format.rgb8)]
        if self.config.align_depth:
            streams.append(self._profile(rs.stream.depth, rs.format.z16))
            self._align = rs.align(rs.stream.color)
        color_sensor = streams[0][0]
        self._set_exposure(color_sensor)
        self._syncer = rs.syncer()
        for sensor, profile in streams:
            sensor.open(profile)
            sensor.start(self._syncer)
            self._sensors.append(sensor)
        self._depth_scale = 1.0
        if self.config.align_depth and streams[1][0].supports(rs.option.depth_units):
            self._depth_scale = streams[1][0].get_option(rs.option.depth_units) / 0.001
        intr = streams[0][1].as_video_stream_profile().get_intrinsics()
        model = "equidistant" if intr.model == rs.distortion.kannala_brandt4 else "plumb_bob"
        return Intrinsics(
            intr.width, intr.height, intr.fx, intr.fy, intr.ppx, intr.ppy, model, list(intr.coeffs)
        )

    def _set_exposure(self, sensor) -> None:
        rs = self.rs
        if self._device.is_playback():
            return  # a recording replays the exposure it was taken with
        if self.config.exposure_us > 0:
            if sensor.supports(rs.option.enable_auto_exposure):
                sensor.set_option(rs.option.enable_auto_exposure, 0)
            sensor.set_option(rs.option.exposure, float(self.config.exposure_us))
        elif sensor.supports(rs.option.enable_auto_exposure):
            sensor.set_option(rs.option.enable_auto_exposure, 1)

    def read(self, timeout_s: float) -> Frame:
        rs = self.rs
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            ok, frames = self._syncer.try_wait_for_frames(max(1, int(left * 1000)))
            if not ok:
                break
            if not frames.is_frameset():
                continue
            frames = frames.as_frameset()
            if self._align is not None:
                if not frames.get_depth_frame() or not frames.get_color_frame():
                    continue  # the syncer delivered one stream alone; wait for a matched pair
                frames = self._align.process(frames)
            color = frames.get_color_frame()
            if not color:
                continue
            depth = None
            if self._align is not None:
                depth = np.asanyarray(frames.get_depth_frame().get_data()).copy()
                if self._depth_scale != 1.0:
                    depth = np.clip(depth * self._depth_scale, 0, 65535).astype(np.uint16)
            hardware = color.get_frame_timestamp_domain() == rs.timestamp_domain.hardware_clock
            return Frame(
                color=np.asanyarray(color.get_data()).copy(),
                depth=depth,
                host_time=time.time(),
                device_time=color.get_timestamp() / 1000.0 if hardware else math.nan,
                number=color.get_frame_number(),
            )
        raise CameraLost(f"no frame for {timeout_s:.1f} s")

    def close(self) -> None:
        for sensor in self._sensors:
            for step in (sensor.stop, sensor.close):
                try:
                    step()
                except RuntimeError:
                    pass  # already stopped, or the device is gone
        self._sensors = []
        self._syncer = self._align = self._device = None
        self._context = None


class V4L2Source:
    """Colour frames from a V4L2 device through OpenCV; intrinsics come from the config."""

    def __init__(self, config: CameraConfig):
        self.config = config
        self._cap = None

    def open(self) -> Intrinsics:
        import cv2

        cfg = self.config
        cap = cv2.VideoCapture(cfg.device, cv2.CAP_V4L2)
        if not cap.isOpened():
            raise CameraLost(f"cannot open V4L2 device {cfg.device}")
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, cfg.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, cfg.height)
        cap.set(cv2.CAP_PROP_FPS, cfg.fps)
        if cfg.exposure_us > 0:
            cap.set(cv2.CAP_PROP_AUTO_EXPOSURE, 1)  # V4L2 "manual mode"
            cap.set(cv2.CAP_PROP_EXPOSURE, cfg.exposure_us / 100.0)  # V4L2 units of 100 us
        else:
            cap.set(cv2.CAP_PROP_AUTO_EXPOSURE, 3)  # V4L2 "aperture priority" = auto
        self._cap = cap
        width, height = (
            int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        )
        fx, fy, cx, cy = cfg.intrinsics
        return Intrinsics(width, height, fx, fy, cx, cy)

    def read(self, timeout_s: float) -> Frame:
        import cv2

        ok, bgr = self._cap.read()
        if not ok:
            raise CameraLost(f"V4L2 device {self.config.device} returned no frame")
        number = int(self._cap.get(cv2.CAP_PROP_POS_FRAMES))
        return Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), None, time.time(), math.nan, number)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class DeviceClock:
    """Maps a camera's hardware clock onto the host clock.

    host - device is the transfer delay plus a constant offset; its minimum over a recent window
    is the offset with the least delay, so stamps follow the exposure, not the USB arrival.
    """

    def __init__(self, window: int = 300):
        self._offsets: collections.deque[float] = collections.deque(maxlen=window)

    def stamp(self, frame: Frame) -> float:
        if math.isnan(frame.device_time):
            return frame.host_time
        self._offsets.append(frame.host_time - frame.device_time)
        return frame.device_time + min(self._offsets)

    def reset(self) -> None:
        self._offsets.clear()


def make_source(config: CameraConfig):
    return RealSenseSource(config) if config.backend == "realsense" else V4L2Source(config)


class CameraNode(Node):
    def __init__(self, source_factory: Callable[[CameraConfig], object] = make_source, **kwargs):
        super().__init__("camera", **kwargs)
        self.config = cfg = declare_config(self, CameraConfig)
        self.source = source_factory(cfg)
        self.frame_id = cfg.frame_id or f"{cfg.name}_color_optical_frame"
        base = f"cameras/{cfg.name}"
        self.image_pub = self.create_publisher(Image, f"{base}/image_raw", qos_profile_sensor_data)
        self.info_pub = self.create_publisher(
            CameraInfo, f"{base}/camera_info", qos_profile_sensor_data
        )
        self.depth_pub = (
            self.create_publisher(Image, f"{base}/depth/image_raw", qos_profile_sensor_data)
            if cfg.align_depth
            else None
        )
        self.clock = DeviceClock()
        self.frames_published = 0
        self.restarts = 0
        self._running = True
        self._thread = threading.Thread(target=self._loop, name=f"camera-{cfg.name}", daemon=True)
        self._thread.start()

    def _describe(self) -> str:
        cfg = self.config
        what = cfg.playback_file or (f"serial {cfg.serial}" if cfg.serial else "first RealSense")
        return f"camera '{cfg.name}' ({what if cfg.backend == 'realsense' else cfg.device})"

    def _loop(self) -> None:
        cfg, log = self.config, self.get_logger()
        intrinsics = None
        while self._running:
            try:
                if intrinsics is None:
                    intrinsics = self.source.open()
                    self.clock.reset()
                    log.info(
                        f"{self._describe()}: streaming {intrinsics.width}x{intrinsics.height}"
                        f"@{cfg.fps}" + (" with aligned depth" if cfg.align_depth else "")
                    )
                frame = self.source.read(cfg.frame_timeout_s)
            except (CameraLost, RuntimeError) as exc:
                self.source.close()
                if intrinsics is not None:
                    self.restarts += 1
                intrinsics = None
                log.warning(
                    f"{self._describe()}: {exc}; "
                    f"restarting the stream in {cfg.restart_period_s:.1f} s"
                )
                deadline = time.monotonic() + cfg.restart_period_s
                while self._running and time.monotonic() < deadline:
                    time.sleep(0.05)
                continue
            self._publish(frame, intrinsics)

    def _publish(self, frame: Frame, intr: Intrinsics) -> None:
        stamp = self.clock.stamp(frame) if self.config.hardware_timestamps else frame.host_time
        self.image_pub.publish(image_msg(frame.color, stamp, self.frame_id, "rgb8"))
        if frame.depth is not None:
            self.depth_pub.publish(image_msg(frame.depth, stamp, self.frame_id, "16UC1"))
        self.info_pub.publish(
            camera_info_msg(
                intr.width,
                intr.height,
                intr.fx,
                intr.fy,
                intr.cx,
                intr.cy,
                intr.distortion_model,
                intr.coeffs,
                stamp,
                self.frame_id,
            )
        )
        self.frames_published += 1

    def close(self) -> None:
        self._running = False
        self._thread.join(timeout=self.config.frame_timeout_s + 1.0)
        self.source.close()


def main(argv: list[str] | None = None) -> int:
    from nodes.spin import run_node

    return run_node(CameraNode, argv)


if __name__ == "__main__":
    raise SystemExit(main())
