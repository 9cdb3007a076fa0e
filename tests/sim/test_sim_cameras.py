"""Camera YAML (calibration's format): validation, frame conventions, projection vs rendering."""

from pathlib import Path

import mujoco
import numpy as np
import pytest
import yaml

from controllers.config import ConfigError
from controllers.se3 import quat_to_mat
from sim import make_env
from sim.cameras import (
    DEFAULT_CAMERA_YAML,
    add_camera,
    load_camera_yaml,
    mujoco_camera_quat,
    project,
)


def _camera_entry(**changes):
    entry = {
        "image_width": 640,
        "image_height": 480,
        "camera_matrix": {
            "rows": 3,
            "cols": 3,
            "data": [500.0, 0, 250.0, 0, 650.0, 300.0, 0, 0, 1],
        },
        "distortion_model": "plumb_bob",
        "distortion_coefficients": {"rows": 1, "cols": 5, "data": [0.0] * 5},
        "parent_frame": "world",
        "translation": [1.0, 0.1, 0.5],
        "quaternion_xyzw": [-0.631277, -0.631277, 0.318574, 0.318574],
    }
    entry.update(changes)
    return entry


def _write(tmp_path: Path, cameras) -> Path:
    path = tmp_path / "cameras.yaml"
    path.write_text(yaml.safe_dump({"cameras": cameras}))
    return path


def test_default_cell_has_front_and_wrist_cameras():
    cams = load_camera_yaml(DEFAULT_CAMERA_YAML)
    assert cams["front"].parent_frame == "world" and cams["wrist"].parent_frame == "hand"
    assert cams["front"].camera_matrix.shape == (3, 3)


@pytest.mark.parametrize(
    "changes, words",
    [
        (
            {"camera_matrix": {"rows": 3, "cols": 3, "data": [500.0, 0, 250, 0, 650, 300, 0, 0]}},
            ["cameras.cam.camera_matrix.data", "9", "8"],
        ),
        (
            {"camera_matrix": {"rows": 2, "cols": 4, "data": [1.0] * 8}},
            ["cameras.cam.camera_matrix", "rows=3"],
        ),
        (
            {"camera_matrix": [500.0, 0, 250, 0, 650, 300, 0, 0, 1]},
            ["cameras.cam.camera_matrix", "rows, cols, data"],
        ),
        (
            {"camera_matrix": {"rows": 3, "cols": 3, "data": [-5.0, 0, 250, 0, 650, 300, 0, 0, 1]}},
            ["cameras.cam.camera_matrix", "fx, fy > 0"],
        ),
        (
            {"distortion_coefficients": {"rows": 1, "cols": 5, "data": [0.0] * 4}},
            ["cameras.cam.distortion_coefficients.data", "5", "4"],
        ),
        ({"parent_frame": "base"}, ["cameras.cam.parent_frame", "'base'"]),
        ({"translation": [1.0, 2.0]}, ["cameras.cam.translation", "3"]),
        ({"quaternion_xyzw": [0.0, 0.0, 0.0, 2.0]}, ["cameras.cam.quaternion_xyzw", "unit"]),
        ({"image_width": 0}, ["cameras.cam.image_width", "positive"]),
        ({"translation": [1.0, "x", 0.0]}, ["cameras.cam.translation", "numbers"]),
        ({"fov": 60}, ["cameras.cam", "unknown", "fov"]),
    ],
)
def test_bad_camera_yaml_names_file_camera_and_key(tmp_path, changes, words):
    path = _write(tmp_path, {"cam": _camera_entry(**changes)})
    with pytest.raises(ConfigError) as err:
        load_camera_yaml(path)
    message = str(err.value)
    assert str(path) in message
    for word in words:
        assert word in message


def test_missing_key_and_missing_section_are_named(tmp_path):
    entry = _camera_entry()
    del entry["translation"]
    with pytest.raises(ConfigError, match=r"cameras.cam: missing key\(s\) \['translation'\]"):
        load_camera_yaml(_write(tmp_path, {"cam": entry}))
    path = tmp_path / "empty.yaml"
    path.write_text("intrinsics: {}\n")
    with pytest.raises(ConfigError, match="cameras"):
        load_camera_yaml(path)
    with pytest.raises(ConfigError, match="not found"):
        load_camera_yaml(tmp_path / "nope.yaml")


def test_env_rejects_camera_yaml_with_wrong_shape(tmp_path):
    bad = _camera_entry(camera_matrix={"rows": 3, "cols": 3, "data": [1.0] * 8})
    path = _write(tmp_path, {"front": bad})
    with pytest.raises(ConfigError, match="camera_matrix"):
        make_env("pick_cube", camera_yaml=str(path))


def test_optical_frame_maps_to_mujoco_camera_axes():
    rng = np.random.default_rng(0)
    q = rng.standard_normal(4)
    q /= np.linalg.norm(q)
    R_cv = quat_to_mat(np.array([q[3], q[0], q[1], q[2]]))
    R_mj = quat_to_mat(mujoco_camera_quat(q))
    np.testing.assert_allclose(R_mj[:, 0], R_cv[:, 0], atol=1e-12)  # x right in both
    np.testing.assert_allclose(R_mj[:, 1], -R_cv[:, 1], atol=1e-12)  # MuJoCo y up, OpenCV y down
    np.testing.assert_allclose(-R_mj[:, 2], R_cv[:, 2], atol=1e-12)  # MuJoCo looks along -z


def _marker_scene(cam, width, height, points):
    """A black world with small white spheres at `points` and the camera under test."""
    spec = mujoco.MjSpec()
    spec.visual.global_.offwidth, spec.visual.global_.offheight = width, height
    spec.visual.headlight.ambient = [1, 1, 1]
    spec.visual.headlight.diffuse = [0, 0, 0]
    for p in points:
        spec.worldbody.add_geom(
            type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[0.004, 0, 0], pos=list(p), rgba=[1, 1, 1, 1]
        )
    add_camera(spec, cam, width, height)
    model = spec.compile()
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    return model, data


@pytest.mark.parametrize("width, height", [(128, 128), (160, 120)])
def test_rendered_points_land_where_opencv_pinhole_model_says(tmp_path, width, height):
    # Off-centre principal point, fx != fy, and a 4:3 sensor resized to the env's image size.
    cam = load_camera_yaml(_write(tmp_path, {"cam": _camera_entry()}))["cam"]
    R_cv = quat_to_mat(np.roll(cam.quaternion_xyzw, 1))
    rng = np.random.default_rng(1)
    points = [
        cam.translation + R_cv @ np.array([x, y, z])
        for x, y, z in zip(
            rng.uniform(-0.15, 0.15, 6), rng.uniform(-0.1, 0.1, 6), rng.uniform(0.5, 0.8, 6)
        )
    ]
    K = cam.scaled_camera_matrix(width, height)
    model, data = _marker_scene(cam, width, height, points)
    with mujoco.Renderer(model, height=height, width=width) as renderer:
        for i, p in enumerate(points):
            # Render one marker at a time so that each centroid is unambiguous.
            model.geom_rgba[:, 3] = 0.0
            model.geom_rgba[i, 3] = 1.0
            renderer.update_scene(data, camera="cam")
            gray = renderer.render().astype(np.float64).sum(axis=2)
            ys, xs = np.mgrid[0:height, 0:width]
            w = gray / gray.sum()
            centroid = np.array([(w * xs).sum(), (w * ys).sum()])
            expected = project(K, data.cam_xpos[0], data.cam_xmat[0].reshape(3, 3), p)
            np.testing.assert_allclose(centroid, expected, atol=0.3, err_msg=f"marker {i}")


def test_hand_camera_sits_at_its_pose_in_the_tcp_frame():
    env = make_env("pick_cube", cameras=("wrist",))
    env.reset(seed=3)
    env.step(np.array([0.5, -0.3, -0.5, 0.2, 0.0, 0.4, 0.0], np.float32))
    model, data = env.unwrapped.model, env.unwrapped.data
    cam = env.unwrapped.camera_specs["wrist"]
    tcp = model.site("tcp").id
    R_tcp = data.site_xmat[tcp].reshape(3, 3)
    expected_pos = data.site_xpos[tcp] + R_tcp @ cam.translation
    expected_R_cv = R_tcp @ quat_to_mat(np.roll(cam.quaternion_xyzw, 1))
    cid = model.camera("wrist").id
    np.testing.assert_allclose(data.cam_xpos[cid], expected_pos, atol=1e-9)
    np.testing.assert_allclose(
        data.cam_xmat[cid].reshape(3, 3) @ np.diag([1, -1, -1]), expected_R_cv, atol=1e-9
    )


@pytest.mark.parametrize("camera", ["front_level", "side_level"])
def test_level_camera_puts_the_success_height_on_its_centre_row(camera):
    # the reward classifier's views (docs/reward.md): a cube centre at the pick_cube success height
    # projects onto the centre row wherever the cube is, above it when higher, below when lower
    from sim.tasks.pick_cube import CUBE_HALF, LIFT

    env = make_env("pick_cube", cameras=(camera,))
    env.reset(seed=0)
    model, data = env.unwrapped.model, env.unwrapped.data
    cid = model.camera(camera).id
    K = env.unwrapped.camera_specs[camera].scaled_camera_matrix(128, 128)
    pos, mat = data.cam_xpos[cid], data.cam_xmat[cid].reshape(3, 3)
    success_z = CUBE_HALF + LIFT
    for x, y in [(0.45, -0.05), (0.5, 0.0), (0.55, 0.05)]:
        u, v = project(K, pos, mat, np.array([x, y, success_z]))
        assert 0 <= u < 128 and abs(v - K[1, 2]) < 1e-6
        assert project(K, pos, mat, np.array([x, y, success_z + 0.01]))[1] < v - 3  # > 3 px per cm
        assert project(K, pos, mat, np.array([x, y, success_z - 0.01]))[1] > v + 3
