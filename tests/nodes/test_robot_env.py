"""The actor's env over topics (nodes.robot_env.RobotEnv) against a scripted CRISP cell over real
DDS: the real-cell interface (derived velocities, joints by name, gripper commands), the stack's
reset, the start-up check, the watchdog; stale or non-finite inputs and a second target_pose
publisher mean no new target, one log line."""

from __future__ import annotations

import threading
import time

import gymnasium
import numpy as np
import pytest

pytestmark = pytest.mark.ros


ARM = [f"panda_joint{i}" for i in range(1, 8)]
FINGERS = ["panda_finger_joint1", "panda_finger_joint2"]
HOME = [0.5, 0.0, 0.25, 0.0, 1.0, 0.0, 0.0]


class ScriptedRobot:
    """A cell under CRISP's controllers, from its own node at 50 Hz: current_pose (following
    target_pose unless `frozen`), the arm's joint_states and, in a separate message, the
    gripper driver's finger joints; records target_pose and the gripper commands."""

    def __init__(self, context, velocity: bool = True):
        from geometry_msgs.msg import PoseStamped
        from rclpy.node import Node
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Float64MultiArray

        self.node = Node("scripted_robot", context=context)
        self.pose = np.array(HOME)
        self.joints = np.linspace(0.1, 0.7, 7)
        self.fingers = np.array([0.03, 0.03])
        self.velocity = velocity  # False: the driver leaves JointState.velocity empty
        self.fingers_named = FINGERS
        self.publishing = True
        self.frozen = False
        self.drift = np.zeros(3)  # m/s: the TCP moves on its own (with frozen), from drift_start
        self.drift_start = time.time()
        self.start = time.time()
        self.targets: list[np.ndarray] = []
        self.stamps: list[float] = []  # when the env published each target (its header stamp)
        self.frames: list[str] = []
        self.gripper: list[float] = []
        self.pose_pub = self.node.create_publisher(
            PoseStamped, "current_pose", qos_profile_sensor_data
        )
        self.joint_pub = self.node.create_publisher(
            JointState, "joint_states", qos_profile_sensor_data
        )
        self.node.create_subscription(PoseStamped, "target_pose", self._on_target, 10)
        self.node.create_subscription(
            Float64MultiArray,
            "gripper_position_controller/commands",
            lambda m: self.gripper.append(gripper_command_position(m)),
            10,
        )
        self.node.create_timer(0.02, self._publish)

    def _on_target(self, msg):
        from nodes.messages import pose_array

        self.targets.append(pose_array(msg))
        self.stamps.append(msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec)
        self.frames.append(msg.header.frame_id)
        if not self.frozen:  # a stiff controller: there by the next state message
            self.pose = self.targets[-1]

    def _publish(self):
        from nodes.messages import joint_state_msg, pose_msg

        if not self.publishing:
            return
        now = time.time()
        joints = self.joints + 0.1 * (now - self.start)  # every arm joint at 0.1 rad/s
        pose = self.pose.copy()
        pose[:3] += self.drift * (now - self.drift_start)
        self.pose_pub.publish(pose_msg(pose, now, "world"))
        vel = np.full(7, 0.1) if self.velocity else np.zeros(0)
        self.joint_pub.publish(joint_state_msg(ARM, joints, vel, np.zeros(0), now))
        self.joint_pub.publish(
            joint_state_msg(self.fingers_named, self.fingers, np.zeros(2), np.zeros(0), now)
        )


def gripper_command_position(msg):
    from nodes.messages import gripper_command_position as position

    return position(msg)


def make_env(node, space, read_keys=None, robot=None, reset=None, stale_s=0.5):
    from controllers.reset import ResetConfig
    from nodes.robot_env import RobotEnv, RobotInterfaceConfig
    from sim.config import EnvConfig

    return RobotEnv(
        node,
        space,
        list(space.spaces) if read_keys is None else read_keys,
        EnvConfig(max_episode_steps=1000),
        robot or RobotInterfaceConfig(success_topic="reward/success_prob"),
        reset or ResetConfig(home_pose=HOME, object="none", timeout_s=3.0),
        control_hz=10.0,
        stale_s=stale_s,
        success_threshold=0.5,
        hold_timeout_s=1.0,
    )


def box(n):
    return gymnasium.spaces.Box(-np.inf, np.inf, (n,), np.float32)


STATE_SPACE = {
    "tcp_pose": 7,
    "tcp_vel": 6,
    "gripper_width": 1,
    "joint_pos": 7,
    "joint_vel": 7,
}


@pytest.fixture
def cell(rclpy_context):
    """start(**env kwargs) -> (robot, env, actor node, logs), all spun in one background thread."""
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node

    made = []

    def start(velocity=True, space=None, wait=True, fingers=FINGERS, **kw):
        robot = ScriptedRobot(rclpy_context, velocity=velocity)
        robot.fingers_named = fingers
        actor_node = Node("actor", context=rclpy_context)
        logs: list[str] = []
        logger = actor_node.get_logger()
        for level in ("info", "warning", "error"):
            setattr(logger, level, lambda text, _l=level, **k: logs.append(text))
        space = gymnasium.spaces.Dict(
            {k: box(n) for k, n in (space or {"tcp_pose": 7, "joint_pos": 7}).items()}
        )
        env = make_env(actor_node, space, **kw)
        # single-threaded, as every node spins (nodes/spin.py): the multi-threaded one starves
        # the env's control loop in this process through the GIL
        executor = SingleThreadedExecutor(context=rclpy_context)
        executor.add_node(robot.node)
        executor.add_node(actor_node)
        threading.Thread(target=executor.spin, daemon=True).start()
        made.append((env, executor))
        deadline = time.monotonic() + 10
        while wait and env.current_pose()[0] is None:  # the cell is up
            assert time.monotonic() < deadline, "the scripted robot's state never arrived"
            time.sleep(0.02)
        return robot, env, actor_node, logs

    yield start
    for env, executor in made:
        env.close()
        executor.shutdown()


@pytest.fixture
def robot_and_env(cell):
    return cell()


def test_step_publishes_the_scaled_target_at_the_control_rate(robot_and_env):
    robot, env, _, logs = robot_and_env
    obs, _ = env.reset()
    np.testing.assert_allclose(obs["tcp_pose"], HOME, atol=1e-6)
    robot.targets.clear()  # the reset's own targets
    robot.stamps.clear()
    start = time.monotonic()
    for _ in range(10):
        obs, reward, terminated, truncated, info = env.step(np.array([1.0, 0, 0, 0, 0, 0, 0]))
    elapsed = time.monotonic() - start
    time.sleep(0.1)
    # paced at 10 Hz: never faster, and the median period is the control period (a one-off stall,
    # such as a first-call compile, restarts the schedule; the rate's precision is
    # `robot-rl bench ros`)
    assert elapsed >= 0.9, f"10 ticks took {elapsed:.3f} s"
    periods = np.diff(robot.stamps)
    assert abs(np.median(periods) - 0.1) < 0.01, periods.round(3).tolist()
    # every tick publishes, unless a starved robot made the env hold (and say so)
    assert all("holding the robot" in line for line in logs), logs
    assert len(robot.targets) == 10 or logs and 0 < len(robot.targets) < 10, (
        len(robot.targets),
        logs,
    )
    # 1 cm per published step at action 1 (a held tick publishes nothing and moves the target
    # nowhere)
    np.testing.assert_allclose(robot.targets[-1][0], 0.5 + len(robot.targets) * 0.01, atol=1e-6)
    assert not terminated
    assert not terminated


def test_stale_inputs_hold_the_robot_with_one_log_line(cell):
    robot, env, _, logs = cell(stale_s=0.2)
    env.reset()
    env.step(np.zeros(7))
    robot.publishing = False  # the robot's state stops arriving
    time.sleep(0.3)  # stale, and within the watchdog's timeout
    sent = len(robot.targets)
    start = time.monotonic()
    obs, _, _, truncated, info = env.step(np.array([1.0, 0, 0, 0, 0, 0, 0]))
    assert (
        truncated and time.monotonic() - start >= 1.0
    )  # held for hold_timeout_s, then the episode ends
    assert info["safety_held"] and "stale" in info["safety_reason"]
    time.sleep(0.1)
    assert len(robot.targets) == sent  # no target at all while inputs are stale
    held = [line for line in logs if line.startswith("holding the robot")]
    assert len(held) == 1 and "is stale" in held[0] and "no new target" in held[0]
    assert env.holds >= 8


def test_non_finite_state_is_not_an_observation(robot_and_env):
    robot, env, _, logs = robot_and_env
    env.reset()
    robot.pose = np.array([0.5, np.nan, 0.25, 0.0, 1.0, 0.0, 0.0])
    time.sleep(0.1)
    obs, why = env.observe()
    assert obs is None and "non-finite" in why and "current_pose" in why


def test_second_target_publisher_is_refused(robot_and_env, rclpy_context):
    from geometry_msgs.msg import PoseStamped

    robot, env, actor_node, logs = robot_and_env
    env.reset()
    intruder = robot.node.create_publisher(PoseStamped, "target_pose", 10)
    deadline = time.monotonic() + 5
    while actor_node.count_publishers("target_pose") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    sent = len(robot.targets)
    for _ in range(3):
        env.step(np.array([1.0, 0, 0, 0, 0, 0, 0]))
    time.sleep(0.1)
    assert len(robot.targets) == sent
    refused = [line for line in logs if line.startswith("refusing to publish target_pose")]
    assert len(refused) == 1 and "2 publishers" in refused[0]
    robot.node.destroy_publisher(intruder)


@pytest.mark.parametrize(
    "event, terminated, truncated, reward",
    [
        ("success", True, False, 1.0),
        ("failure", True, False, 0.0),
        ("pause", False, True, 0.0),
        ("reset", False, True, 0.0),
    ],
)
def test_operator_events_end_the_episode(
    robot_and_env, rclpy_context, event, terminated, truncated, reward
):
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

    robot, env, _, _ = robot_and_env
    events = robot.node.create_publisher(
        String, "teleop/event", QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
    )
    env.reset()
    assert env.step(np.zeros(7))[2:4] == (False, False)
    deadline = time.monotonic() + 5
    while events.get_subscription_count() < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    events.publish(String(data=event))
    time.sleep(0.05)
    _, r, term, trunc, info = env.step(np.zeros(7))
    assert (term, trunc, r) == (terminated, truncated, reward) and info["events"] == [event]


def test_success_probability_at_threshold_ends_the_episode(robot_and_env):
    from rclpy.qos import qos_profile_sensor_data
    from std_msgs.msg import Float32

    robot, env, _, _ = robot_and_env
    prob = robot.node.create_publisher(Float32, "reward/success_prob", qos_profile_sensor_data)
    env.reset()

    def publish(value):  # best effort: a few copies, like a classifier at camera rate
        for _ in range(3):
            prob.publish(Float32(data=value))
            time.sleep(0.03)

    publish(0.4)
    _, r, term, _, info = env.step(np.zeros(7))
    assert not term and info["success_prob"] == pytest.approx(0.4)
    publish(0.5)
    _, r, term, _, info = env.step(np.zeros(7))
    assert term and r == 1.0 and info["success"]


def test_teleop_operator_converts_twists_into_the_action_frame(rclpy_context):
    from geometry_msgs.msg import TwistStamped
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from std_msgs.msg import Bool, Float32

    from controllers.action import ActionScales
    from nodes.actor import TeleopOperator
    from nodes.messages import twist_msg

    node = Node("actor", context=rclpy_context)
    op = TeleopOperator(node, period=0.1, scales=ActionScales(0.01, 0.05), stale_s=0.5)
    teleop = Node("teleop", context=rclpy_context)
    pubs = {
        t: teleop.create_publisher(k, t, 10)
        for t, k in (
            ("teleop/twist", TwistStamped),
            ("teleop/intervening", Bool),
            ("teleop/gripper", Float32),
        )
    }
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    down = np.array([0.5, 0.0, 0.25, 0.0, 1.0, 0.0, 0.0])  # TCP pointing down: 180 deg about x

    def send(flag, twist, frame, gripper=0.0):
        """Publish one message per teleop topic and spin until the operator holds all three."""
        deadline = time.monotonic() + 5
        while (
            any(p.get_subscription_count() < 1 for p in pubs.values())
            and time.monotonic() < deadline
        ):
            executor.spin_once(timeout_sec=0.05)
        sent = {
            "teleop/intervening": Bool(data=flag),
            "teleop/twist": twist_msg(np.asarray(twist, float), time.time(), frame),
            "teleop/gripper": Float32(data=gripper),
        }
        for topic, msg in sent.items():
            pubs[topic].publish(msg)
        while time.monotonic() < deadline and any(
            (op.newest.get(t) or (0, None))[1] != m for t, m in sent.items()
        ):
            executor.spin_once(timeout_sec=0.05)

    op.start_episode(100)
    send(False, [0.05, 0, 0, 0, 0, 0], "world")
    assert op.act({"tcp_pose": down}, np.zeros(7)) is None  # not intervening: the policy acts
    send(True, [0.05, 0.2, 0, 0, 0, 0.25], "world", gripper=1.0)
    np.testing.assert_allclose(
        op.act({"tcp_pose": down}, np.zeros(7)), [0.5, 1.0, 0, 0, 0, 0.5, 1.0], atol=1e-6
    )
    send(
        True, [0.05, 0.02, 0.03, 0.1, 0, 0], "tcp"
    )  # tool frame: y and z flip for a TCP pointing down
    np.testing.assert_allclose(
        op.act({"tcp_pose": down}, np.zeros(7)), [0.5, -0.2, -0.3, 0.2, 0, 0, 0], atol=1e-6
    )
    send(False, [0, 0, 0, 0, 0, 0], "world")
    op.act({"tcp_pose": down}, np.zeros(7))
    assert [e["event"] for e in op.events] == ["take_over", "hand_back"]
    assert [e["step"] for e in op.events] == [1, 3]


def _steps(env, n, action=None):
    out = None
    for _ in range(n):
        out = env.step(np.zeros(7) if action is None else np.asarray(action, float))
    return out


@pytest.mark.parametrize("velocity", [True, False], ids=["driver-velocity", "differentiated"])
def test_state_from_the_cell_interface(cell, velocity):
    """tcp_vel derived from current_pose stamps, joints merged by name from two messages, joint
    velocity from the driver or differentiated, gripper width the sum of the fingers."""
    robot, env, _, logs = cell(velocity=velocity, space=STATE_SPACE)
    env.reset()
    robot.frozen = True
    robot.drift_start, robot.drift = time.time(), np.array([0.05, -0.02, 0.0])
    obs, *_ = _steps(env, 10)
    np.testing.assert_allclose(obs["tcp_vel"], [0.05, -0.02, 0, 0, 0, 0], atol=2e-3)
    expected = robot.joints + 0.1 * (time.time() - robot.start)
    np.testing.assert_allclose(obs["joint_pos"], expected, atol=0.02)
    np.testing.assert_allclose(obs["joint_vel"], 0.1, atol=5e-3)
    np.testing.assert_allclose(obs["gripper_width"], [0.06], atol=1e-6)


def test_missing_finger_joint_is_named(cell):
    # another driver's names for the fingers
    robot, env, _, _ = cell(space=STATE_SPACE, fingers=["fr3_finger_joint1", "fr3_finger_joint2"])
    problem = env.wait_for_inputs(1.0)
    assert "joint_states: no message named joint(s) ['panda_finger_joint1'" in problem
    assert "fr3_finger_joint1" in problem and "robot.finger_joints" in problem


def test_gripper_commands_are_finger_positions_every_tick(cell):
    robot, env, _, _ = cell()
    env.reset()
    assert robot.gripper and set(robot.gripper) == {0.04}  # the reset opens it
    robot.gripper.clear()
    _steps(env, 2, [0, 0, 0, 0, 0, 0, 1.0])  # close
    _steps(env, 2, [0, 0, 0, 0, 0, 0, 0.2])  # keep
    _steps(env, 1, [0, 0, 0, 0, 0, 0, -1.0])  # open
    time.sleep(0.1)
    assert robot.gripper == [0.0, 0.0, 0.0, 0.0, 0.04]
    assert set(robot.frames) == {"world"}


def test_reset_moves_home_through_the_safety_filter_and_converges(cell):
    from controllers.reset import ResetConfig

    robot, env, _, _ = cell(reset=ResetConfig(home_pose=HOME, object="none", timeout_s=5.0))
    robot.pose = np.array([0.6, 0.1, 0.35, 0.0, 1.0, 0.0, 0.0])  # ~17 cm from home
    time.sleep(0.1)
    start = time.monotonic()
    obs, _ = env.reset()
    np.testing.assert_allclose(obs["tcp_pose"][:3], HOME[:3], atol=0.005)
    steps = np.linalg.norm(np.diff([t[:3] for t in robot.targets], axis=0), axis=1)
    assert len(robot.targets) >= 8 and steps.max() <= 0.02 + 1e-9  # max_step_trans per tick
    assert time.monotonic() - start < 3.0


def test_reset_times_out_with_the_operator_message(cell):
    from controllers.reset import ResetConfig, ResetTimeout

    robot, env, _, logs = cell(reset=ResetConfig(home_pose=HOME, object="none", timeout_s=1.0))
    robot.pose = np.array([0.542, 0.0, 0.25, 0.0, 1.0, 0.0, 0.0])
    robot.frozen = True  # the controller is not following target_pose
    time.sleep(0.1)
    with pytest.raises(ResetTimeout) as exc:
        env.reset()
    assert str(exc.value).startswith(
        "reset: the TCP did not reach home within 1 s (still 4.2 cm and 0.00 rad away); "
        "check the controller is running and following target_pose"
    )
    assert any(line.startswith(str(exc.value)) and "holding" in line for line in logs)


def test_operator_reset_waits_for_the_reset_event(cell):
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

    from controllers.reset import ResetConfig

    robot, env, _, logs = cell(reset=ResetConfig(home_pose=HOME, operator_timeout_s=5.0))
    events = robot.node.create_publisher(
        String, "teleop/event", QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
    )
    done = threading.Event()
    threading.Thread(target=lambda: (env.reset(), done.set()), daemon=True).start()
    deadline = time.monotonic() + 5
    while not any("place the object and press reset" in x for x in logs):
        assert time.monotonic() < deadline, logs
        time.sleep(0.05)
    assert not done.wait(0.5)  # homed, and waiting for the person at the table
    events.publish(String(data="reset"))
    assert done.wait(2.0)


def test_startup_check_names_a_silent_topic_and_a_wrong_type(cell):
    import rclpy
    from geometry_msgs.msg import Pose
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data

    from nodes.robot_env import RobotInterfaceConfig

    robot, env, _, _ = cell(
        robot=RobotInterfaceConfig(current_pose_topic="tcp_pose", wrench_topic="ft/wrench"),
        space={"tcp_pose": 7, "wrench": 6},
        wait=False,
    )
    other_context = rclpy.Context()  # its own participant: one may not hold both types
    rclpy.init(context=other_context)
    other = Node("other_driver", context=other_context)
    other.create_publisher(Pose, "tcp_pose", qos_profile_sensor_data)
    problem = env.wait_for_inputs(1.5)
    assert problem.startswith("start-up: nothing arrived within 1.5 s on: ")
    assert "tcp_pose has type geometry_msgs/msg/Pose, expected geometry_msgs/msg/PoseStamped" in (
        problem
    )
    assert "ft/wrench (geometry_msgs/msg/WrenchStamped): no message" in problem
    assert "reward/success_prob (std_msgs/msg/Float32): no message" in problem
    assert "joint_states" not in problem  # it did arrive
    other.destroy_node()
    other_context.try_shutdown()


def test_policy_reading_an_absent_sensor_is_refused_and_unread_keys_are_zeros(cell, rclpy_context):
    from rclpy.node import Node

    from controllers.config import ConfigError

    space = gymnasium.spaces.Dict({"tcp_pose": box(7), "wrench": box(6), "object_pose": box(7)})
    node = Node("refused_actor", context=rclpy_context)
    with pytest.raises(ConfigError) as exc:
        make_env(node, space, read_keys=["tcp_pose", "wrench"])
    assert "the policy reads observation key(s) ['wrench']" in str(exc.value)
    assert "set robot.wrench_topic" in str(exc.value) and "sac.proprio_keys" in str(exc.value)

    robot, env, _, logs = cell(
        space={"tcp_pose": 7, "wrench": 6, "object_pose": 7}, read_keys=["tcp_pose"]
    )
    assert any("['object_pose', 'wrench'] are filled with zeros" in line for line in logs)
    obs, _ = env.reset()
    assert not obs["wrench"].any() and not obs["object_pose"].any()


def test_watchdog_stops_targets_after_a_stalled_tick(cell):
    robot, env, _, logs = cell()
    env.reset()
    _steps(env, 3, [0.5, 0, 0, 0, 0, 0, 0])
    time.sleep(0.1)
    sent = len(robot.targets)
    time.sleep(0.8)  # the policy thread stalls past command_timeout_s (0.5 s)
    said = [line for line in logs if line.startswith("watchdog: no control tick")]
    assert len(said) == 1 and "no new targets until the next reset" in said[0]
    obs, _, term, trunc, info = env.step(np.array([0.5, 0, 0, 0, 0, 0, 0]))  # the stalled tick
    assert trunc and not term and info["safety_held"] and info["safety_reason"] == "watchdog"
    time.sleep(0.3)
    assert len(robot.targets) == sent
    assert len([line for line in logs if line.startswith("watchdog")]) == 1
    env.reset()  # a new episode re-arms it
    robot.targets.clear()
    _steps(env, 2, [0.5, 0, 0, 0, 0, 0, 0])
    time.sleep(0.1)
    assert len(robot.targets) == 2
