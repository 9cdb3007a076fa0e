"""The twin's gymnasium envs against docs/contracts.md: spaces, physics, safety, seeding, state
restore."""

import math
import warnings

import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from controllers.config import ConfigError
from sim import EnvConfig, load_env_config, make_env
from sim.experts import make_expert
from sim.tasks.peg_insert import HOLE_DEPTH

TASKS = ("pick_cube", "peg_insert")
STATE_KEYS = {
    "tcp_pose": 7,
    "tcp_vel": 6,
    "gripper_width": 1,
    "joint_pos": 7,
    "joint_vel": 7,
    "wrench": 6,
    "object_pose": 7,
}


def _check(env):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*infinity.*")  # unbounded proprio is intended
        warnings.filterwarnings("ignore", message=".*gymnasium.make.*")
        check_env(env)


@pytest.mark.parametrize("task", TASKS)
def test_check_env_state(task):
    _check(make_env(task))


@pytest.mark.parametrize("task", TASKS)
def test_check_env_images(task):
    env = make_env(task, cameras=("front", "wrist"), render_mode="rgb_array")
    _check(env)
    obs, _ = env.reset(seed=0)
    for cam in ("front", "wrist"):
        img = obs[f"image_{cam}"]
        assert img.shape == (128, 128, 3) and img.dtype == np.uint8
        assert img.std() > 10, f"{cam} image is flat"
    frame = env.render()
    assert frame.shape == (128, 128, 3) and frame.dtype == np.uint8 and frame.std() > 10
    env.close()


def test_observation_and_info_follow_the_contract():
    env = make_env("pick_cube")
    obs, info = env.reset(seed=0)
    assert set(obs) == set(STATE_KEYS)
    for key, n in STATE_KEYS.items():
        assert obs[key].shape == (n,) and obs[key].dtype == np.float32, key
    assert abs(np.linalg.norm(obs["tcp_pose"][3:]) - 1) < 1e-5
    assert obs["gripper_width"][0] == pytest.approx(0.08, abs=1e-4)
    assert obs["object_pose"][2] == pytest.approx(0.02, abs=1e-3)  # cube resting on the table
    obs, reward, terminated, truncated, info = env.step(np.zeros(7, np.float32))
    assert set(info) >= {"success", "safety_clipped", "safety_held", "safety_reason"}
    assert reward == 0.0 and not terminated and not truncated
    assert "object_pose" not in make_env("pick_cube", privileged_state=False).reset(seed=0)[0]


def test_peg_insert_observes_the_hole_it_drew_as_goal_pose():
    env = make_env("peg_insert")
    u = env.unwrapped
    for seed in (0, 1):
        obs, _ = env.reset(seed=seed)
        assert set(obs) == set(env.observation_space.spaces) == {*STATE_KEYS, "goal_pose"}
        np.testing.assert_allclose(obs["goal_pose"], u.task.goal_pose(u.data), atol=1e-6)
    assert obs["goal_pose"][:2] != pytest.approx(u.task.object_pose(u.data)[:2], abs=1e-3)
    hidden = make_env("peg_insert", privileged_state=False)
    assert not {"object_pose", "goal_pose"} & set(hidden.reset(seed=0)[0])
    assert "goal_pose" not in make_env("pick_cube").reset(seed=0)[0]


def test_observed_tcp_quaternion_keeps_the_sign_of_the_reference_hemisphere():
    env = make_env("pick_cube")
    env.reset(seed=0)
    ref = np.array(env.unwrapped.config.safety.orientation_ref)
    for a in ([0, 0, 0, 1, 0, 0, 0], [0, 0, 0, -1, 0, 1, 0], [0, 0, 0, 0, -1, -1, 0]):
        for _ in range(4):
            obs, *_ = env.step(np.array(a, np.float32))
            assert np.dot(obs["tcp_pose"][3:], ref) > 0


def test_delta_action_moves_target_and_tcp_by_the_configured_scale():
    env = make_env("pick_cube", pos_scale=0.015, randomization={"init_qpos_noise": 0.0})
    obs, _ = env.reset(seed=0)
    start_target, start_quat = env.unwrapped.target_pose
    env.step(np.array([1, -0.5, 0, 0, 0, 0, 0], np.float32))
    target, quat = env.unwrapped.target_pose
    np.testing.assert_allclose(target - start_target, [0.015, -0.0075, 0.0], atol=1e-12)
    for _ in range(8):
        obs, *_ = env.step(np.zeros(7, np.float32))
    np.testing.assert_allclose(obs["tcp_pose"][:3], target, atol=2e-3)
    # A rotation action turns the target about the world axis by rot_scale.
    env.step(np.array([0, 0, 0, 0, 0, 1, 0], np.float32))
    _, quat2 = env.unwrapped.target_pose
    angle = 2 * math.acos(min(1.0, abs(float(np.dot(quat, quat2)))))
    assert angle == pytest.approx(0.05, abs=1e-9)


def test_gripper_is_discrete_with_thresholds():
    env = make_env("pick_cube")
    env.reset(seed=0)
    widths = []
    for g in (0.4, 0.6, -0.4, -0.6):
        for _ in range(3):
            obs, *_ = env.step(np.array([0, 0, 0, 0, 0, 0, g], np.float32))
        widths.append(float(obs["gripper_width"][0]))
    assert widths[0] > 0.079  # 0.4: stay (open)
    assert widths[1] < 0.005  # 0.6: close (nothing between the fingers)
    assert widths[2] < 0.005  # -0.4: stay (closed)
    assert widths[3] > 0.079  # -0.6: open


def test_nan_action_is_held_by_the_safety_filter_and_never_reaches_the_arm():
    env = make_env("pick_cube")
    env.reset(seed=0)
    before = env.unwrapped.target_pose
    obs, reward, terminated, truncated, info = env.step(
        np.array([np.nan, 0, 0, 0, 0, np.inf, 0], np.float32)
    )
    assert info["safety_held"] and "non-finite" in info["safety_reason"]
    after = env.unwrapped.target_pose
    np.testing.assert_allclose(after[0], before[0], atol=1e-12)
    np.testing.assert_allclose(after[1], before[1], atol=1e-12)
    assert all(np.all(np.isfinite(v)) for v in obs.values())
    assert np.all(np.isfinite(env.unwrapped.data.ctrl))


def test_workspace_box_clips_and_says_so():
    env = make_env(
        "pick_cube",
        safety={"workspace_min": [0.25, -0.35, 0.1], "workspace_max": [0.75, 0.35, 0.5]},
    )
    env.reset(seed=0)
    infos = [env.step(np.array([0, 0, -1, 0, 0, 0, 0], np.float32))[4] for _ in range(20)]
    assert any(i["safety_clipped"] and "workspace" in i["safety_reason"] for i in infos)
    assert env.unwrapped.target_pose[0][2] == pytest.approx(0.1)
    assert not infos[0]["safety_clipped"] and infos[0]["safety_reason"] == ""


def test_wrench_estimate_sees_the_table_push():
    # Pressing the fingertips onto the table: the table pushes the TCP up with about
    # stiffness x error clip (1000 N/m x 1 cm = 10 N), which the joint-torque estimate must show.
    env = make_env(
        "pick_cube",
        randomization={"init_qpos_noise": 0.0, "object_xy_halfrange": [0.0, 0.0]},
        safety={"workspace_min": [0.25, -0.35, -0.1]},
    )  # let the target go below the table
    obs, _ = env.reset(seed=0)
    assert np.linalg.norm(obs["wrench"]) < 1e-6
    for _ in range(10):  # the cube sits under the TCP: move aside first
        obs, *_ = env.step(np.array([0, 1, 0, 0, 0, 0, 0], np.float32))
    for _ in range(30):
        obs, *_ = env.step(np.array([0, 0, -1, 0, 0, 0, 0], np.float32))
    fz = obs["wrench"][2]
    assert 7.0 < fz < 13.0, obs["wrench"]
    assert abs(obs["wrench"][0]) < 2.0 and abs(obs["wrench"][1]) < 2.0


def _rollout(env, seed, steps, action_seed=0, options=None):
    rng = np.random.default_rng(action_seed)
    obs, _ = env.reset(seed=seed, options=options)
    traj = [obs]
    for _ in range(steps):
        obs, *_ = env.step(rng.uniform(-1, 1, 7).astype(np.float32))
        traj.append(obs)
    return traj


def _assert_same(a, b):
    assert len(a) == len(b)
    for t, (x, y) in enumerate(zip(a, b)):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key], err_msg=f"step {t} {key}")


@pytest.mark.parametrize("task", TASKS)
def test_same_seed_same_trajectory(task):
    a = _rollout(make_env(task), seed=7, steps=15)
    b = _rollout(make_env(task), seed=7, steps=15)
    _assert_same(a, b)
    c = _rollout(make_env(task), seed=8, steps=1)
    assert not np.array_equal(a[0]["object_pose"], c[0]["object_pose"])


@pytest.mark.parametrize("task", TASKS)
def test_restored_state_replays_recorded_actions_exactly(task):
    config = {
        "randomization": {
            "friction_scale": [0.5, 1.5],
            "mass_scale": [0.5, 2.0],
            "camera_pos_jitter": 0.01,
            "camera_rot_jitter": 0.02,
            "light_scale": [0.5, 1.5],
            "light_pos_jitter": 0.1,
        }
    }
    env = make_env(task, config)
    rng = np.random.default_rng(3)
    env.reset(seed=11)
    for _ in range(12):
        env.step(rng.uniform(-1, 1, 7).astype(np.float32))
    saved = env.unwrapped.get_sim_state()
    actions = rng.uniform(-1, 1, (15, 7)).astype(np.float32)
    recorded = [env.step(a) for a in actions]

    fresh = make_env(task, config)  # another process would do the same: nothing carried over
    fresh.reset(seed=999)
    fresh.reset(seed=0, options={"sim_state": saved})
    for t, a in enumerate(actions):
        replay = fresh.step(a)
        for key in recorded[t][0]:
            np.testing.assert_array_equal(
                replay[0][key], recorded[t][0][key], err_msg=f"step {t} {key}"
            )
        assert replay[1:4] == recorded[t][1:4]
    if task == "peg_insert":
        np.testing.assert_array_equal(
            fresh.unwrapped.get_sim_state()["task_hole_pose"], saved["task_hole_pose"]
        )


def test_sim_state_from_another_task_is_rejected():
    saved = make_env("pick_cube").unwrapped
    saved.reset(seed=0)
    state = saved.get_sim_state()
    peg = make_env("peg_insert")
    with pytest.raises(ValueError, match="sim_state"):
        peg.reset(seed=0, options={"sim_state": state})
    with pytest.raises(ValueError, match="missing key"):
        peg.reset(seed=0, options={"sim_state": {"qpos": state["qpos"]}})


def test_domain_randomisation_hooks_follow_config_and_seed():
    r = {
        "friction_scale": [0.5, 1.5],
        "mass_scale": [0.5, 2.0],
        "camera_pos_jitter": 0.01,
        "light_scale": [0.5, 1.5],
    }
    env = make_env("pick_cube", randomization=r)
    u = env.unwrapped
    cube_geom = u.task.object_geoms[0]
    draws = []
    for seed in (1, 2, 1):
        env.reset(seed=seed)
        draws.append(
            (
                u.model.geom_friction[cube_geom, 0],
                u.model.body_mass[u.task.object_id],
                u.model.cam_pos.copy(),
                u.model.light_diffuse.copy(),
            )
        )
    assert draws[0][0] != draws[1][0] and draws[0][1] != draws[1][1]
    assert not np.array_equal(draws[0][2], draws[1][2]) and not np.array_equal(
        draws[0][3], draws[1][3]
    )
    assert draws[0][0] == draws[2][0] and draws[0][1] == draws[2][1]
    np.testing.assert_array_equal(draws[0][2], draws[2][2])
    # Off by default: nominal values every time.
    plain = make_env("pick_cube").unwrapped
    plain.reset(seed=1)
    assert (
        plain.model.geom_friction[cube_geom, 0] == 1.0
        and plain.model.body_mass[plain.task.object_id] == 0.05
    )


def _optical_axes(model, cam: int) -> np.ndarray:
    """Columns: the camera's OpenCV optical x, y, z axes in its parent frame."""
    R = np.zeros(9)
    mujoco.mju_quat2Mat(R, model.cam_quat[cam])
    return R.reshape(3, 3) @ np.diag([1.0, -1.0, -1.0])


def test_camera_offset_moves_every_camera_the_same_at_every_reset():
    offset_pos, offset_rot = [0.004, -0.003, 0.002], [0.0, 0.0175, 0.0]
    nominal = make_env("pick_cube").unwrapped
    nominal.reset(seed=0)
    shifted = make_env(
        "pick_cube",
        randomization={"camera_pos_offset": offset_pos, "camera_rot_offset": offset_rot},
    ).unwrapped
    # a turn of 0.0175 rad about the optical y axis, in the camera's own frame
    c, s = math.cos(offset_rot[1]), math.sin(offset_rot[1])
    turn = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    for seed in (0, 1, 2):
        shifted.reset(seed=seed)
        np.testing.assert_allclose(
            shifted.model.cam_pos, nominal.model.cam_pos + offset_pos, atol=1e-12
        )
        for cam in range(nominal.model.ncam):
            np.testing.assert_allclose(
                _optical_axes(shifted.model, cam),
                _optical_axes(nominal.model, cam) @ turn,
                atol=1e-9,
            )
    with pytest.raises(ConfigError, match=r"randomization.camera_rot_offset: \[nan"):
        make_env("pick_cube", randomization={"camera_rot_offset": [math.nan, 0.0, 0.0]})


def test_object_start_pose_covers_the_configured_region():
    env = make_env("pick_cube")
    poses = np.array([env.reset(seed=s)[0]["object_pose"] for s in range(40)])
    assert np.ptp(poses[:, 0]) > 0.08 and np.ptp(poses[:, 1]) > 0.08  # +-5 cm: a 10 x 10 cm region
    yaws = 2 * np.arctan2(poses[:, 6], poses[:, 3])
    assert np.ptp(yaws) > 1.2  # +-45 degrees


def test_sparse_success_reward_terminates_and_dense_shaping_is_optional():
    for dense in (False, True):
        env = make_env("pick_cube", dense_reward=dense)
        expert = make_expert(env)
        obs, _ = env.reset(seed=0)
        rewards = []
        for _ in range(100):
            obs, reward, terminated, truncated, info = env.step(expert.act(obs))
            rewards.append(reward)
            if terminated or truncated:
                break
        assert terminated and info["success"] and rewards[-1] == 1.0
        if dense:
            assert all(0.0 < r < 0.1 for r in rewards[:-1])
        else:
            assert all(r == 0.0 for r in rewards[:-1])


def test_time_limit_truncates():
    env = make_env("pick_cube", max_episode_steps=3)
    env.reset(seed=0)
    flags = [env.step(np.zeros(7, np.float32))[3] for _ in range(3)]
    assert flags == [False, False, True]


def test_misaligned_peg_cannot_pass_through_the_hole_walls():
    # 3 mm off the hole axis with 0.75 mm clearance per side: the peg must stop on the block's top.
    env = make_env(
        "peg_insert", randomization={"object_yaw_halfrange": 0.0, "init_qpos_noise": 0.0}
    )
    u = env.unwrapped
    env.reset(seed=0)
    hole = u.task.goal_pose(u.data)
    bottom = u.task.peg_bottom(u.data)
    offset = hole[:3] - bottom + np.array([0.003, 0.0, 0.0])
    for _ in range(40):
        target, _ = u.target_pose
        goal = target.copy()
        goal[:2] += offset[:2]
        step = np.clip((goal - target) / 0.01, -1, 1)
        step[2] = -1.0
        env.step(np.array([*step, 0, 0, 0, 1], np.float32))
        offset[:2] = 0.0
    assert u.task.peg_bottom(u.data)[2] > HOLE_DEPTH - 0.001
    assert not u.task.success(u.data)


def test_bad_input_gives_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown task 'pick_cub'.*pick_cube"):
        make_env("pick_cub")
    with pytest.raises(ConfigError, match="physics_hz / control_hz"):
        make_env("pick_cube", physics_hz=1000, control_hz=30)
    with pytest.raises(ConfigError, match=r"controller: unknown key\(s\) \['stifness'\]"):
        make_env("pick_cube", controller={"stifness": [1.0] * 6})
    with pytest.raises(ConfigError, match="randomization.mass_scale"):
        make_env("pick_cube", randomization={"mass_scale": [2.0, 1.0]})
    with pytest.raises(ConfigError, match="cameras: camera 'top'"):
        make_env("pick_cube", cameras=("top",))
    env = make_env("pick_cube")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action: expected 7 values"):
        env.step(np.zeros(6, np.float32))
    with pytest.raises(ValueError, match="unknown key"):
        env.reset(seed=0, options={"state": {}})
    bad = tmp_path / "exp.yaml"
    bad.write_text("task: pick_cube\nenv:\n  physics_hz: fast\n")
    with pytest.raises(ConfigError, match=f"{bad}: env.physics_hz: expected a number"):
        load_env_config(bad)


@pytest.mark.parametrize("task", TASKS)
def test_experiment_yaml_holds_the_defaults(task):
    from controllers.config import to_dict

    name, config = load_env_config(f"config/sim_{task}.yaml")
    assert name == task and to_dict(config) == to_dict(EnvConfig())


def test_robot_state_given_to_the_law_is_consistent_with_the_physics():
    import mujoco

    env = make_env("pick_cube")
    env.reset(seed=4)
    for _ in range(2):
        env.step(np.array([0.5, -0.5, -0.5, 0.3, 0.0, 0.5, 0.0], np.float32))
    u = env.unwrapped
    m, d = u.model, u.data
    s = u.robot_state()
    # Jacobian rows [linear; angular] at the TCP, by finite differences of the TCP pose.
    q0, eps = d.qpos.copy(), 1e-6
    pos0, R0 = d.site_xpos[u._tcp].copy(), d.site_xmat[u._tcp].reshape(3, 3).copy()
    scratch = mujoco.MjData(m)
    for j in range(7):
        scratch.qpos[:] = q0
        scratch.qpos[j] += eps
        mujoco.mj_kinematics(m, scratch)
        dpos = (scratch.site_xpos[u._tcp] - pos0) / eps
        dR = scratch.site_xmat[u._tcp].reshape(3, 3) @ R0.T
        omega = np.array([dR[2, 1] - dR[1, 2], dR[0, 2] - dR[2, 0], dR[1, 0] - dR[0, 1]]) / (
            2 * eps
        )
        np.testing.assert_allclose(s.jacobian[:3, j], dpos, atol=1e-5)
        np.testing.assert_allclose(s.jacobian[3:, j], omega, atol=1e-5)
    # TCP quaternion is the TCP site's orientation.
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, d.site_xmat[u._tcp])
    assert abs(abs(np.dot(quat, s.tcp_quat)) - 1) < 1e-12
    # Mass matrix symmetric positive definite; gravity is what the arm's gravcomp applies, and
    # coriolis + gravity is MuJoCo's full bias force on the arm joints.
    np.testing.assert_allclose(s.mass_matrix, s.mass_matrix.T, atol=1e-12)
    assert np.all(np.linalg.eigvalsh(s.mass_matrix) > 0)
    np.testing.assert_allclose(s.coriolis + s.gravity, d.qfrc_bias[:7], atol=1e-12)
    np.testing.assert_allclose(
        s.gravity, d.qfrc_passive[:7] + d.qvel[:7] * m.dof_damping[:7], atol=1e-9
    )
    assert np.linalg.norm(d.qvel[:7]) > 1e-3 and np.linalg.norm(s.coriolis) > 0


def test_step_moves_the_target_as_the_action_contract_says():
    from controllers.action import apply_action

    env = make_env("pick_cube", randomization={"init_qpos_noise": 0.0})
    env.reset(seed=0)
    for a in ([0.3, -0.2, 0.1, 0.5, -0.4, 1.0, 0], [0, 0, -0.5, -1.0, 0.2, 0.0, 1.0]):
        before = env.unwrapped.target_pose
        env.step(np.array(a, np.float32))
        expected = apply_action(*before, a, env.unwrapped.action_scales)
        for got, want in zip(env.unwrapped.target_pose, expected):
            np.testing.assert_allclose(got, want, atol=1e-12)
