"""The twin renders a camera written by calibration where calibration says the camera sees.

Uses sim.cameras (the twin's own YAML loader and camera placement) on a board scene: the corners
detected in its render must land within 1 px of the pinhole projection through the
calibration-written camera.
"""

import os

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402

from calibration import transform as tf  # noqa: E402
from calibration.camera_yaml import (
    CameraIntrinsics,
    TwinCamera,
    load_twin_camera,
    update_twin_cameras,
)  # noqa: E402
from calibration.charuco import BoardConfig, CharucoFinder, board_image  # noqa: E402

sim_cameras = pytest.importorskip("sim.cameras")


def test_twin_renders_a_calibrated_camera_where_calibration_projects(tmp_path):
    import cv2

    board = BoardConfig()
    cv2.imwrite(str(tmp_path / "board.png"), board_image(board, 120, 0.5))
    w, h = board.size_m
    m = 0.5 * board.square_length
    spec = mujoco.MjSpec.from_string(f"""<mujoco>
      <visual><global offwidth="640" offheight="480"/>
        <headlight ambient="1 1 1" diffuse="0 0 0" specular="0 0 0"/></visual>
      <asset><texture name="b" type="2d" file="{tmp_path / "board.png"}"/>
        <material name="b" texture="b" specular="0"/></asset>
      <worldbody><geom type="plane" size="{w / 2 + m} {h / 2 + m} 0.01" material="b"
                       contype="0" conaffinity="0"/>
      </worldbody></mujoco>""")
    # camera 0.4 m above the board, tilted, with an off-centre principal point as a calibration
    # would give
    R = cv2.Rodrigues(np.array([np.pi + 0.2, 0.1, 0.3]))[0]
    T_world_cam = tf.make(R, [0.02, -0.1, 0.4])
    cam = CameraIntrinsics(640, 480, [[600.0, 0, 331.5], [0, 605.0, 233.2], [0, 0, 1]])
    yaml_path = update_twin_cameras(
        tmp_path / "cameras.yaml", "front", TwinCamera(cam, "world", T_world_cam)
    )
    spec_cam = sim_cameras.load_camera_yaml(yaml_path)["front"]
    sim_cameras.add_camera(spec, spec_cam, 640, 480)
    model = spec.compile()
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    with mujoco.Renderer(model, 480, 640) as renderer:
        renderer.update_scene(data, camera="front")
        image = renderer.render()
    det = CharucoFinder(board).detect(image)
    assert len(det) >= 20
    twin = load_twin_camera(yaml_path, "front")
    # plane texture -> board frame
    T_world_board = tf.make(np.diag([1.0, -1.0, -1.0]), [-w / 2, h / 2, 0.0])
    T_cam_board = tf.inv(twin.T_parent_cam) @ T_world_board
    pts = det.object_points(board)
    px = twin.intrinsics.project(pts @ T_cam_board[:3, :3].T + T_cam_board[:3, 3])
    assert np.linalg.norm(px - det.corners, axis=1).max() < 1.0
