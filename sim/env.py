"""The twin's gymnasium env: Panda-like arm under the controllers/ impedance law at physics rate.

One env step (control rate, 10 Hz by default):
  action -> delta on the current target pose -> safety filter -> target
  repeat physics_hz / control_hz times:  mj_step1 -> impedance law -> mj_step2  (sim/physics.py)
  -> observation (see docs/contracts.md), reward, success.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium
import mujoco
import numpy as np

from controllers.action import (
    ACTION_DIM,
    GRIPPER,
    ActionScales,
    apply_action,
    check_action,
    gripper_command,
)
from controllers.config import ConfigError
from controllers.impedance import CartesianImpedanceController, RobotState
from controllers.safety import SafetyFilter
from controllers.se3 import quat_mul, rotvec_to_quat
from sim.cameras import DEFAULT_CAMERA_YAML, add_camera, load_camera_yaml
from sim.config import EnvConfig
from sim.observation import N_ARM, observation_space
from sim.physics import PhysicsLoop
from sim.tasks import make_task
from sim.tasks.base import Task

CELL_XML = Path(__file__).parent / "assets" / "panda_cell.xml"
GRIPPER_OPEN, GRIPPER_CLOSED = 0.04, 0.0  # finger opening command (m)
# Controller memory (CartesianImpedanceController.memory()) that get_sim_state carries for an
# exact replay.
_CONTROLLER_MEMORY = ("target_pos", "target_quat", "tau_prev", "rest_posture")
_WRENCH_DAMPING = 1e-4
# a rotation vector in a camera's OpenCV optical frame, expressed in its MuJoCo frame (a half
# turn about x apart: sim.cameras)
_OPTICAL_AXES = np.array([1.0, -1.0, -1.0])


class PandaEnv(gymnasium.Env):
    """A task of the twin; build it with sim.make_env(task, config)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, task: Task | str, config: EnvConfig, render_mode: str | None = None):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode: {render_mode!r} is not one of [None, 'rgb_array']")
        self.task = make_task(task) if isinstance(task, str) else task
        self.config = config
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": config.control_hz}
        self.model = self._build_model()
        self.data = mujoco.MjData(self.model)
        self.task.bind(self.model)
        self._bind()
        self.controller = CartesianImpedanceController(config.controller, n_joints=N_ARM)
        self.safety = SafetyFilter(config.safety)
        self._physics = PhysicsLoop(
            self.model,
            self.data,
            self._tcp,
            self._jac,
            self._M,
            self._bias,
            self._state,
            self.controller,
            self._arm_ctrl,
        )
        self._renderer: mujoco.Renderer | None = None
        self._scene_option = mujoco.MjvOption()
        self.action_scales = ActionScales(config.pos_scale, config.rot_scale)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
        self.observation_space = observation_space(config, self.task.name)
        self._target_pos = np.zeros(3)
        self._target_quat = np.array([1.0, 0.0, 0.0, 0.0])
        self._gripper_closed = False
        self._steps = 0

    # ---- model ----
    def _build_model(self) -> mujoco.MjModel:
        cfg = self.config
        spec = mujoco.MjSpec.from_file(str(CELL_XML))
        spec.option.timestep = 1.0 / cfg.physics_hz
        self.task.build(spec)
        yaml_path = cfg.camera_yaml or DEFAULT_CAMERA_YAML
        self.camera_specs = load_camera_yaml(yaml_path)
        for key, names in (("cameras", cfg.cameras), ("render_camera", (cfg.render_camera,))):
            for name in names:
                if name not in self.camera_specs:
                    raise ConfigError(
                        f"{key}: camera {name!r} is not in {yaml_path} "
                        f"(it has {sorted(self.camera_specs)})"
                    )
        tcp_offset = np.array(spec.site("tcp").pos)
        h, w = cfg.image_size
        for cam in self.camera_specs.values():
            add_camera(spec, cam, w, h, tcp_offset=tcp_offset)
        return spec.compile()

    def _bind(self) -> None:
        m, d = self.model, self.data
        self._tcp = m.site("tcp").id
        self._gripper_act = m.actuator("gripper").id
        self._finger_qpos = [m.jnt_qposadr[m.joint(n).id] for n in ("finger_left", "finger_right")]
        # Preallocated per-tick buffers; the Jacobian halves are contiguous views for mj_jacSite.
        self._jac = np.zeros((6, m.nv))
        self._jacp, self._jacr = self._jac[:3], self._jac[3:]
        self._M = np.zeros((m.nv, m.nv))
        self._coriolis = np.zeros(N_ARM)
        # Views into MjData, made once (MjData never reallocates its arrays). The TCP site has the
        # hand body's orientation, so the hand's quaternion is the TCP's (no conversion per tick).
        if np.any(m.site_quat[self._tcp] != (1.0, 0.0, 0.0, 0.0)):
            raise ValueError(
                "panda_cell.xml: the tcp site must not be rotated relative to the hand body"
            )
        self._tcp_quat = d.xquat[m.site_bodyid[self._tcp]]
        self._bias, self._gravcomp = d.qfrc_bias[:N_ARM], d.qfrc_gravcomp[:N_ARM]
        self._arm_ctrl = d.ctrl[:N_ARM]
        self._state = RobotState(
            q=d.qpos[:N_ARM],
            qd=d.qvel[:N_ARM],
            tcp_pos=d.site_xpos[self._tcp],
            tcp_quat=self._tcp_quat,
            jacobian=self._jac[:, :N_ARM],
            mass_matrix=self._M[:N_ARM, :N_ARM],
            coriolis=self._coriolis,
            gravity=d.qfrc_gravcomp[:N_ARM],
        )
        self._nominal = {
            "geom_friction": m.geom_friction.copy(),
            "body_mass": m.body_mass.copy(),
            "body_inertia": m.body_inertia.copy(),
            "light_pos": m.light_pos.copy(),
            "light_diffuse": m.light_diffuse.copy(),
            "cam_pos": m.cam_pos.copy(),
            "cam_quat": m.cam_quat.copy(),
        }

    # ---- physics ----
    def _update_robot_state(self) -> None:
        """Fill the RobotState views after mj_step1 (positions and velocities computed)."""
        m, d = self.model, self.data
        mujoco.mj_jacSite(m, d, self._jacp, self._jacr, self._tcp)
        mujoco.mj_fullM(m, d, self._M)
        np.subtract(self._bias, self._gravcomp, out=self._coriolis)

    def robot_state(self) -> RobotState:
        """What the control law sees of the arm now (a RobotState of live views, refreshed here)."""
        self._update_robot_state()
        return self._state

    @property
    def target_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """The safe target pose (position, quaternion wxyz) the controller tracks now, as copies."""
        return self._target_pos.copy(), self._target_quat.copy()

    # ---- gymnasium API ----
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = options or {}
        unknown = sorted(set(options) - {"sim_state"})
        if unknown:
            raise ValueError(f"reset options: unknown key(s) {unknown}; known: ['sim_state']")
        if options.get("sim_state") is not None:
            self.set_sim_state(options["sim_state"])
            return self._observation(), self._info(False, False, "")
        m, d = self.model, self.data
        rng = self.np_random
        r = self.config.randomization
        mujoco.mj_resetData(m, d)
        self._randomize_model(rng)
        noise = rng.uniform(-1, 1, N_ARM) * r.init_qpos_noise
        d.qpos[:N_ARM] = np.asarray(self.config.home_qpos) + noise
        for adr in self._finger_qpos:
            d.qpos[adr] = GRIPPER_OPEN
        mujoco.mj_kinematics(m, d)
        self._gripper_closed = self.task.reset(
            m, d, rng, r, d.site_xpos[self._tcp].copy(), self._tcp_quat.copy()
        )
        d.ctrl[self._gripper_act] = GRIPPER_CLOSED if self._gripper_closed else GRIPPER_OPEN
        mujoco.mj_forward(m, d)
        self._update_robot_state()
        self._target_pos = d.site_xpos[self._tcp].copy()
        self._target_quat = self._tcp_quat.copy()
        self.controller.reset(self._state)
        self.safety.reset(self._target_pos, self._target_quat, d.time)
        self._steps = 0
        return self._observation(), self._info(False, False, "")

    def step(self, action):
        a = check_action(action)
        cfg = self.config
        pos, quat = apply_action(self._target_pos, self._target_quat, a, self.action_scales)
        res = self.safety.filter(pos, quat, self.data.time)
        self._target_pos, self._target_quat = res.pos, res.quat
        self._gripper_closed = gripper_command(a[GRIPPER], self._gripper_closed)
        self.data.ctrl[self._gripper_act] = GRIPPER_CLOSED if self._gripper_closed else GRIPPER_OPEN
        self._physics.run(cfg.substeps, self._target_pos, self._target_quat)
        mujoco.mj_forward(self.model, self.data)
        self._steps += 1
        success = self.task.success(self.data)
        reward = 1.0 if success else 0.0
        if cfg.dense_reward and not success:
            reward = 0.1 * self.task.shaping(self.data, self.data.site_xpos[self._tcp])
        truncated = not success and self._steps >= cfg.max_episode_steps
        return (
            self._observation(),
            reward,
            success,
            truncated,
            self._info(success, res.clipped, res.reason, res.held),
        )

    def _info(
        self, success: bool, clipped: bool, reason: str, held: bool = False
    ) -> dict[str, Any]:
        return {
            "success": bool(success),
            "safety_clipped": bool(clipped),
            "safety_held": bool(held),
            "safety_reason": reason,
        }

    def _observation(self) -> dict[str, np.ndarray]:
        d = self.data
        self._update_robot_state()
        J = self._jac[:, :N_ARM]
        qd = d.qvel[:N_ARM]
        obs = {
            "tcp_pose": np.concatenate([d.site_xpos[self._tcp], self._observed_quat()]).astype(
                np.float32
            ),
            "tcp_vel": (J @ qd).astype(np.float32),
            "gripper_width": np.array(
                [d.qpos[self._finger_qpos[0]] + d.qpos[self._finger_qpos[1]]], np.float32
            ),
            "joint_pos": d.qpos[:N_ARM].astype(np.float32),
            "joint_vel": qd.astype(np.float32),
            "wrench": self._wrench(J).astype(np.float32),
        }
        if self.config.privileged_state:
            obs["object_pose"] = self.task.object_pose(d).astype(np.float32)
            if self.task.has_goal_pose:
                obs["goal_pose"] = self.task.goal_pose(d).astype(np.float32)
        for name in self.config.cameras:
            obs[f"image_{name}"] = self._render_camera(name)
        return obs

    def _observed_quat(self) -> np.ndarray:
        """TCP quaternion with its sign in the hemisphere of the safety filter's reference
        orientation: continuous around the working pose (q and -q are the same rotation, and a
        w >= 0 rule would flip it all the time for a TCP pointing down, where w is near 0)."""
        q = self._tcp_quat
        return -q if float(np.dot(q, self.config.safety.orientation_ref)) < 0 else q.copy()

    def _wrench(self, J: np.ndarray) -> np.ndarray:
        """External wrench on the TCP (world frame) from the joint torques of contacts, as a
        torque-sensing arm estimates it: least squares of J^T F = tau_ext."""
        tau_ext = self.data.qfrc_constraint[:N_ARM]
        return np.linalg.solve(J @ J.T + _WRENCH_DAMPING * np.eye(6), J @ tau_ext)

    # ---- rendering ----
    def _render_camera(self, name: str) -> np.ndarray:
        if self._renderer is None:
            h, w = self.config.image_size
            self._renderer = mujoco.Renderer(self.model, height=h, width=w)
            flags = self._renderer.scene.flags
            for flag in (
                mujoco.mjtRndFlag.mjRND_SHADOW,
                mujoco.mjtRndFlag.mjRND_REFLECTION,
                mujoco.mjtRndFlag.mjRND_SKYBOX,
            ):
                flags[flag] = 0
        self._renderer.update_scene(self.data, camera=name, scene_option=self._scene_option)
        return self._renderer.render()

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return self._render_camera(self.config.render_camera)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # ---- domain randomisation ----
    def _randomize_model(self, rng: np.random.Generator) -> None:
        m, r, nom = self.model, self.config.randomization, self._nominal
        m.geom_friction[:] = nom["geom_friction"]
        m.geom_friction[self.task.object_geoms, 0] *= rng.uniform(*r.friction_scale)
        scale = rng.uniform(*r.mass_scale)
        m.body_mass[:] = nom["body_mass"]
        m.body_inertia[:] = nom["body_inertia"]
        m.body_mass[self.task.object_id] *= scale
        m.body_inertia[self.task.object_id] *= scale
        m.light_diffuse[:] = nom["light_diffuse"] * rng.uniform(*r.light_scale)
        m.light_pos[:] = (
            nom["light_pos"] + rng.uniform(-1, 1, nom["light_pos"].shape) * r.light_pos_jitter
        )
        m.cam_pos[:] = (
            nom["cam_pos"]
            + np.asarray(r.camera_pos_offset)
            + rng.uniform(-1, 1, nom["cam_pos"].shape) * r.camera_pos_jitter
        )
        # the offset is given in the optical frame; MuJoCo's camera frame has y and z flipped
        offset = rotvec_to_quat(np.asarray(r.camera_rot_offset) * _OPTICAL_AXES)
        for i in range(m.ncam):
            jitter = rotvec_to_quat(rng.uniform(-1, 1, 3) * r.camera_rot_jitter)
            m.cam_quat[i] = quat_mul(quat_mul(nom["cam_quat"][i], offset), jitter)

    # ---- state save / restore ----
    def initial_state(self) -> dict[str, np.ndarray]:
        """What a real cell can record of the state now: arm and finger joint positions (as in
        joint_states) and the object pose (x, y, z, qw, qx, qy, qz)."""
        d = self.data
        return {
            "arm_joint_pos": d.qpos[:N_ARM].copy(),
            "finger_joint_pos": d.qpos[self._finger_qpos].copy(),
            "object_pose": self.task.object_pose(d).copy(),
        }

    def set_initial_state(self, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Start from what initial_state() returns (any of its keys; the rest stays as reset left
        it), at rest, the targets on the resulting TCP pose; returns the observation."""
        m, d = self.model, self.data
        slots = {
            "arm_joint_pos": list(range(N_ARM)),
            "finger_joint_pos": self._finger_qpos,
            "object_pose": list(range(self.task.object_qpos, self.task.object_qpos + 7)),
        }
        for key, adr in slots.items():
            if key in state:
                value = np.asarray(state[key], np.float64)
                if value.shape != (len(adr),):
                    raise ValueError(
                        f"initial state {key}: expected {len(adr)} values, got shape {value.shape}"
                    )
                d.qpos[adr] = value
        d.qvel[:] = 0.0
        d.qacc_warmstart[:] = 0.0
        mujoco.mj_forward(m, d)
        self._update_robot_state()
        self._target_pos = d.site_xpos[self._tcp].copy()
        self._target_quat = self._tcp_quat.copy()
        self.controller.reset(self._state)
        self.safety.reset(self._target_pos, self._target_quat, d.time)
        return self._observation()

    def place_object(self, rng: np.random.Generator | None = None) -> np.ndarray:
        """Re-place the task's objects at a new pose drawn by the task's own randomisation (from
        `rng`, default the env's), at rest, as a person at the table would; returns the object
        pose. The arm, its targets and the model's randomised values stay; a task that starts
        with the object in the hand (peg_insert) puts it back between the fingers and closes."""
        m, d = self.model, self.data
        closed = self.task.reset(
            m,
            d,
            self.np_random if rng is None else rng,
            self.config.randomization,
            d.site_xpos[self._tcp].copy(),
            self._tcp_quat.copy(),
        )
        dof = m.jnt_dofadr[m.body_jntadr[self.task.object_id]]
        d.qvel[dof : dof + 6] = 0.0
        if closed:
            self._gripper_closed = True
            d.ctrl[self._gripper_act] = GRIPPER_CLOSED
        mujoco.mj_forward(m, d)
        return self.task.object_pose(d).copy()

    def get_sim_state(self) -> dict[str, np.ndarray]:
        """Everything needed to continue this episode exactly: physics, task, randomised model
        values, controller and safety-filter memory, gripper command and step count."""
        m, d = self.model, self.data
        state = {
            "time": np.array(d.time),
            "qpos": d.qpos.copy(),
            "qvel": d.qvel.copy(),
            "ctrl": d.ctrl.copy(),
            "qacc_warmstart": d.qacc_warmstart.copy(),
            "mocap_pos": d.mocap_pos.copy(),
            "mocap_quat": d.mocap_quat.copy(),
            "target_pos": self._target_pos.copy(),
            "target_quat": self._target_quat.copy(),
            "gripper_closed": np.array(self._gripper_closed),
            "step": np.array(self._steps),
            "geom_friction": m.geom_friction.copy(),
            "body_mass": m.body_mass.copy(),
            "body_inertia": m.body_inertia.copy(),
            "light_pos": m.light_pos.copy(),
            "light_diffuse": m.light_diffuse.copy(),
            "cam_pos": m.cam_pos.copy(),
            "cam_quat": m.cam_quat.copy(),
        }
        for key, value in self.controller.memory().items():
            state[f"controller_{key}"] = value
        for key, value in self.task.params(d).items():
            state[f"task_{key}"] = np.asarray(value).copy()
        return state

    def set_sim_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore a dict from get_sim_state (normally via reset(options={"sim_state": ...}))."""
        m, d = self.model, self.data
        mem = [f"controller_{k}" for k in _CONTROLLER_MEMORY]
        required = [
            "time",
            "qpos",
            "qvel",
            "ctrl",
            "qacc_warmstart",
            "mocap_pos",
            "mocap_quat",
            "target_pos",
            "target_quat",
            "gripper_closed",
            "step",
            *self._nominal,
            *mem,
        ]
        missing = [k for k in required if k not in state]
        if missing:
            raise ValueError(f"sim_state: missing key(s) {missing}")
        for key, ref in (
            ("qpos", d.qpos),
            ("qvel", d.qvel),
            ("ctrl", d.ctrl),
            ("mocap_pos", d.mocap_pos),
            *((k, getattr(m, k)) for k in self._nominal),
        ):
            if np.shape(state[key]) != ref.shape:
                raise ValueError(
                    f"sim_state[{key!r}]: shape {np.shape(state[key])} != {ref.shape} "
                    "of this model "
                    f"(was it saved from another task?)"
                )
        mujoco.mj_resetData(m, d)
        for key in self._nominal:
            getattr(m, key)[:] = state[key]
        d.time = float(state["time"])
        for key in ("qpos", "qvel", "ctrl", "qacc_warmstart", "mocap_pos", "mocap_quat"):
            getattr(d, key)[:] = state[key]
        self.task.set_params(
            d, {k[len("task_") :]: v for k, v in state.items() if k.startswith("task_")}
        )
        mujoco.mj_forward(m, d)
        self._update_robot_state()
        self._target_pos = np.array(state["target_pos"], dtype=np.float64)
        self._target_quat = np.array(state["target_quat"], dtype=np.float64)
        self._gripper_closed = bool(state["gripper_closed"])
        self._steps = int(state["step"])
        self.controller.reset(self._state)
        self.controller.set_memory({k: state[f"controller_{k}"] for k in _CONTROLLER_MEMORY})
        self.safety.reset(self._target_pos, self._target_quat, d.time)
