"""camera node against pyrealsense2's software_device and a recording played in another process."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros

rs = pytest.importorskip("pyrealsense2")
W, H, FPS = 64, 48, 30
SERIAL = "000000424242"


class SoftwareCamera:
    """A RealSense of software sensors: colour frame i is filled with i % 256, depth 500 + i."""

    def __init__(self, fps: int = FPS):
        self.fps = fps
        self.device = dev = rs.software_device()
        dev.register_info(rs.camera_info.serial_number, SERIAL)
        dev.register_info(rs.camera_info.name, "Intel RealSense D435 (software)")
        self.color = dev.add_sensor("RGB Camera")
        self.depth = dev.add_sensor("Stereo Module")
        intr = rs.intrinsics()
        intr.width, intr.height, intr.fx, intr.fy, intr.ppx, intr.ppy = W, H, 50.0, 51.0, 31.5, 23.5
        intr.model, intr.coeffs = rs.distortion.brown_conrady, [0.1, -0.2, 0.0, 0.0, 0.01]
        self.color_profile = self.color.add_video_stream(
            self._stream(rs.stream.color, 0, rs.format.rgb8, 3, intr)
        )
        self.depth_profile = self.depth.add_video_stream(
            self._stream(rs.stream.depth, 1, rs.format.z16, 2, intr)
        )
        self.depth.add_read_only_option(rs.option.depth_units, 0.001)
        self.color.add_option(rs.option.exposure, rs.option_range(1, 10000, 1, 1), True)
        self.color.add_option(rs.option.enable_auto_exposure, rs.option_range(0, 1, 1, 1), True)
        identity = rs.extrinsics()
        identity.rotation, identity.translation = [1, 0, 0, 0, 1, 0, 0, 0, 1], [0, 0, 0]
        self.depth_profile.register_extrinsics_to(self.color_profile, identity)
        dev.create_matcher(rs.matchers.default)
        self.plugged = True
        self.frames_sent = 0
        self._stop = False
        self._thread = threading.Thread(target=self._feed, daemon=True)

    @staticmethod
    def _stream(kind, uid, fmt, bpp, intr):
        vs = rs.video_stream()
        vs.type, vs.index, vs.uid, vs.width, vs.height = kind, 0, uid, W, H
        vs.fps, vs.bpp, vs.fmt, vs.intrinsics = FPS, bpp, fmt, intr
        return vs

    def find(self):
        """What RealSenseSource calls for its device: fails like a missing camera when unplugged."""
        from nodes.camera import CameraLost

        if not self.plugged:
            raise CameraLost(f"no serial {SERIAL} connected (found: none)")
        return self.device

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop = True
        self._thread.join()

    def _frame(self, pixels, bpp, profile, i):
        f = rs.software_video_frame()
        f.pixels, f.bpp, f.stride = pixels, bpp, bpp * W
        f.timestamp, f.domain, f.frame_number = (
            i * 1000.0 / self.fps,
            rs.timestamp_domain.hardware_clock,
            i,
        )
        f.profile = profile.as_video_stream_profile()
        return f

    def _feed(self):
        i = 0
        while not self._stop:
            if self.plugged:
                i += 1
                self.color.on_video_frame(
                    self._frame(np.full((H, W, 3), i % 256, np.uint8), 3, self.color_profile, i)
                )
                g = self._frame(np.full((H, W), 500 + i, np.uint16), 2, self.depth_profile, i)
                g.depth_units = 0.001
                self.depth.on_video_frame(g)
                self.frames_sent = i
            time.sleep(1.0 / self.fps)


def _params(**values):
    from rclpy.parameter import Parameter

    return [Parameter(k, value=v) for k, v in values.items()]


def _subscriber(context, name="front", depth=False):
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image

    node = Node("camera_listener", context=context)
    got = {"image": [], "info": [], "depth": []}
    node.create_subscription(
        Image, f"cameras/{name}/image_raw", got["image"].append, qos_profile_sensor_data
    )
    node.create_subscription(
        CameraInfo, f"cameras/{name}/camera_info", got["info"].append, qos_profile_sensor_data
    )
    if depth:
        node.create_subscription(
            Image, f"cameras/{name}/depth/image_raw", got["depth"].append, qos_profile_sensor_data
        )
    return node, got


def test_software_device_frames_intrinsics_depth_and_exposure(rclpy_context, spin_until):
    from nodes.camera import CameraNode, RealSenseSource
    from nodes.messages import from_time, image_array

    cam = SoftwareCamera().start()
    node = CameraNode(
        source_factory=lambda cfg: RealSenseSource(cfg, find_device=cam.find),
        context=rclpy_context,
        parameter_overrides=_params(
            serial=SERIAL, width=W, height=H, fps=FPS, align_depth=True, exposure_us=2500.0
        ),
    )
    listener, got = _subscriber(rclpy_context, depth=True)
    try:
        assert spin_until(
            listener, lambda: len(got["image"]) >= 10 and len(got["depth"]) >= 10, 10.0
        )
    finally:
        node.close()
        node.destroy_node()
        cam.stop()
    img = image_array(got["image"][-1])
    assert img.shape == (H, W, 3) and img.dtype == np.uint8
    assert (img == img[0, 0, 0]).all() and 0 < img[0, 0, 0] <= cam.frames_sent
    depth_values = [int(image_array(m)[H // 2, W // 2]) for m in got["depth"]]
    color_values = [int(image_array(m)[0, 0, 0]) for m in got["image"]]
    assert all(
        500 < d <= 500 + cam.frames_sent for d in depth_values
    )  # millimetres of the fed frames
    # colour and aligned depth published together come from the same fed frame index
    assert set((d - 500) % 256 for d in depth_values) & set(color_values)
    info = got["info"][-1]
    assert (info.width, info.height) == (W, H)
    np.testing.assert_allclose(info.k, [50.0, 0, 31.5, 0, 51.0, 23.5, 0, 0, 1], rtol=1e-6)
    np.testing.assert_allclose(info.d, [0.1, -0.2, 0.0, 0.0, 0.01], rtol=1e-6)
    assert info.distortion_model == "plumb_bob"
    assert info.header.frame_id == "front_color_optical_frame"
    assert cam.color.get_option(rs.option.exposure) == 2500.0
    assert cam.color.get_option(rs.option.enable_auto_exposure) == 0.0
    # hardware timestamps: once the clock mapping has seen a few frames, consecutive stamps are
    # 1/fps apart as on the camera clock, free of the arrival jitter
    settled = got["image"][3:]
    stamps = np.array([from_time(m.header.stamp) for m in settled])
    numbers = np.array([int(image_array(m)[0, 0, 0]) for m in settled])
    steps = np.diff(stamps) / np.maximum(np.diff(numbers), 1)
    ok = np.diff(numbers) > 0
    np.testing.assert_allclose(steps[ok], 1.0 / FPS, atol=1e-6)
    assert abs(stamps[-1] - time.time()) < 2.0


def test_unplugged_camera_is_reported_and_the_stream_restarts(rclpy_context, spin_until):
    from nodes.camera import CameraNode, RealSenseSource

    cam = SoftwareCamera().start()
    node = CameraNode(
        source_factory=lambda cfg: RealSenseSource(cfg, find_device=cam.find),
        context=rclpy_context,
        parameter_overrides=_params(
            width=W, height=H, fps=FPS, frame_timeout_s=0.3, restart_period_s=0.2
        ),
    )
    listener, got = _subscriber(rclpy_context)
    try:
        assert spin_until(listener, lambda: len(got["image"]) >= 5, 10.0)
        cam.plugged = False  # frames stop and the device disappears
        time.sleep(1.0)
        before_replug = len(got["image"])
        assert node.restarts == 1
        spin_until(listener, lambda: False, 0.3)
        cam.plugged = True
        sent_at_replug = cam.frames_sent
        assert spin_until(listener, lambda: len(got["image"]) >= before_replug + 5, 10.0)
    finally:
        node.close()
        node.destroy_node()
        cam.stop()
    from nodes.messages import image_array

    assert (
        int(image_array(got["image"][-1])[0, 0, 0]) > sent_at_replug
    )  # fresh frames, not a stale buffer
    assert node.restarts == 1


def test_missing_serial_is_reported_and_retried(rclpy_context):
    from nodes.camera import CameraNode

    logs = []
    node = CameraNode(
        context=rclpy_context, parameter_overrides=_params(serial="999", restart_period_s=0.1)
    )
    node.get_logger().warning = lambda msg, **kw: logs.append(msg)
    try:
        deadline = time.monotonic() + 10
        while len(logs) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        node.close()
        node.destroy_node()
    assert len(logs) >= 2, "the node keeps retrying"
    assert (
        "serial 999" in logs[0] and "no serial 999 connected" in logs[0] and "restarting" in logs[0]
    )


def test_recording_played_back_by_a_camera_process(tmp_path, rclpy_context, spin_until, start_node):
    from nodes.messages import image_array

    recording = tmp_path / "front.db3"
    cam = SoftwareCamera().start()
    recorder = rs.recorder(str(recording), cam.device)
    sensors = {s.name: s for s in recorder.query_sensors()}
    syncer = rs.syncer()
    color = sensors["RGB Camera"]
    color.open([p for p in color.get_stream_profiles() if p.stream_type() == rs.stream.color][0])
    color.start(syncer)
    time.sleep(1.5)
    color.stop()
    color.close()
    del recorder, sensors, color
    cam.stop()
    assert recording.stat().st_size > 0

    proc = start_node(
        "nodes.camera",
        [
            "-p",
            f"playback_file:={recording}",
            "-p",
            f"width:={W}",
            "-p",
            f"height:={H}",
            "-p",
            f"fps:={FPS}",
            "-p",
            "name:=wrist",
        ],
    )
    listener, got = _subscriber(rclpy_context, name="wrist")
    assert spin_until(listener, lambda: len(got["image"]) >= 10, 20.0), proc.output()
    values = [int(image_array(m)[0, 0, 0]) for m in got["image"]]
    assert all(1 <= v <= cam.frames_sent for v in values)
    assert got["info"][-1].k[0] == pytest.approx(50.0)
    assert "streaming 64x48@30" in proc.output()


def test_v4l2_fallback_reports_a_missing_device():
    from nodes.camera import CameraConfig, CameraLost, V4L2Source

    source = V4L2Source(CameraConfig(backend="v4l2", device="/dev/video-not-here"))
    with pytest.raises(CameraLost, match="cannot open V4L2 device /dev/video-not-here"):
        source.open()
    source.close()
