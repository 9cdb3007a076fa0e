"""PandaEnv.place_object: a person re-placing the object between episodes; the arm stays."""

import numpy as np

from sim import make_env
from sim.tasks.peg_insert import PEG_HALF_SIDE
from sim.tasks.pick_cube import CENTER, CUBE_HALF

HOLD = np.zeros(7)


def test_place_object_moves_the_cube_and_not_the_arm():
    env = make_env("pick_cube")
    env.reset(seed=0)
    for _ in range(5):
        env.step(HOLD)
    arm, before = env.data.qpos[:7].copy(), env.task.object_pose(env.data).copy()
    target = env.target_pose

    placed = env.place_object(np.random.default_rng(1))

    assert np.array_equal(env.data.qpos[:7], arm)
    assert all(np.array_equal(a, b) for a, b in zip(env.target_pose, target, strict=True))
    assert np.linalg.norm(placed[:2] - before[:2]) > 0.005
    half = np.asarray(env.config.randomization.object_xy_halfrange)
    assert np.all(np.abs(placed[:2] - CENTER) <= half + 1e-9)
    assert abs(placed[2] - CUBE_HALF) < 1e-9
    tcp = env.step(HOLD)[0]["tcp_pose"]
    for _ in range(20):
        obs = env.step(HOLD)[0]
    # the cube rests where it was put and the held arm has not moved
    assert np.linalg.norm(env.task.object_pose(env.data)[:3] - placed[:3]) < 1e-3
    assert np.linalg.norm(obs["tcp_pose"][:3] - tcp[:3]) < 1e-3


def test_place_object_is_the_tasks_randomisation_from_the_given_rng():
    env = make_env("pick_cube")
    env.reset(seed=0)
    first = env.place_object(np.random.default_rng(7))
    env.place_object(np.random.default_rng(8))
    assert np.array_equal(env.place_object(np.random.default_rng(7)), first)


def test_place_object_puts_the_peg_back_in_the_closed_hand_and_moves_the_hole():
    env = make_env("peg_insert")
    env.reset(seed=0)
    hole = env.task.goal_pose(env.data).copy()
    env.place_object(np.random.default_rng(3))
    assert np.linalg.norm(env.task.goal_pose(env.data)[:2] - hole[:2]) > 0.005
    for _ in range(10):
        obs = env.step(HOLD)[0]
    # still held: the fingers rest on the peg's faces
    assert abs(obs["gripper_width"][0] - 2 * PEG_HALF_SIDE) < 0.002
