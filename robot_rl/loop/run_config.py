"""The config of a distributed run: one YAML file read by `robot-rl train`, `learner`, `actor`."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from controllers.config import ConfigError, from_dict, load_yaml, to_dict
from robot_rl.agents.device import check_device_name
from robot_rl.agents.replay_buffer import ObsSpec, RewardMode, obs_spec_from_space
from robot_rl.agents.sac import SACConfig
from robot_rl.loop.tracked_pose import TrackedPoseConfig
from robot_rl.transport.protocol import config_hash
from sim.config import EnvConfig
from sim.observation import observation_space


@dataclass
class TransportConfig:
    endpoint: str = "tcp://127.0.0.1:5555"  # the learner binds it, actors connect to it
    heartbeat_s: float = 0.5
    peer_timeout_s: float = 3.0
    resend_after_s: float = 2.0
    batch_steps: int = 10  # an actor sends its rows every this many steps (and at episode end)
    spool_max_mb: float = 1024.0  # per actor; oldest spooled batches are dropped beyond it
    keys: str | None = None  # folder from `robot-rl keys generate`: CURVE on
    # learner journal: "always" fsyncs each batch before acknowledging it (survives power loss;
    # ~0.3-0.8 ms per batch), "interval" at most once a second, "none" survives only a crash
    journal_fsync: Literal["always", "interval", "none"] = "always"
    # actor spool, the same policies: "always" fsyncs each spooled batch (survives power loss on
    # the robot PC; spooling happens only while the learner is away)
    spool_fsync: Literal["always", "interval", "none"] = "always"

    def __post_init__(self):
        if not self.endpoint.startswith(("tcp://", "ipc://")):
            raise ConfigError(
                f"transport.endpoint: {self.endpoint!r} must start with tcp:// or ipc://"
            )
        for key in ("heartbeat_s", "peer_timeout_s", "resend_after_s", "spool_max_mb"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"transport.{key}: must be > 0, got {getattr(self, key)}")
        if self.peer_timeout_s <= self.heartbeat_s:
            raise ConfigError(
                f"transport.peer_timeout_s: {self.peer_timeout_s} must exceed "
                f"heartbeat_s {self.heartbeat_s}"
            )
        if self.batch_steps < 1:
            raise ConfigError(f"transport.batch_steps: must be >= 1, got {self.batch_steps}")
        for key in ("journal_fsync", "spool_fsync"):
            if getattr(self, key) not in ("always", "interval", "none"):
                raise ConfigError(
                    f"transport.{key}: {getattr(self, key)!r} is not one of "
                    "['always', 'interval', 'none']"
                )


@dataclass
class LearnerConfig:
    batch_size: int = 256
    max_update_to_data: float = 1.0  # cap on critic updates per online env step received
    learning_starts: int = 300  # online transitions before the first update
    publish_every: int = 50  # updates between weight publishes
    checkpoint_every: int = (
        2000  # updates between checkpoints (and on SIGTERM/SIGINT and at the end)
    )
    replay_capacity: int = 200_000
    # symmetric (RLPD): half of each batch from demos + interventions; none: online data only;
    # wsrl (WSRL): wsrl_pretrain_updates on the offline data alone, then online data only, the
    # first learning_starts online steps (the pre-trained policy's) without updates
    offline: Literal["symmetric", "wsrl", "none"] = "symmetric"
    wsrl_pretrain_updates: int = 2000
    # task: the env's reward; rlif: -1 when the operator takes over, else 0, the task reward
    # unused; rlif+task: both
    reward_mode: RewardMode = "task"
    torch_threads: int = 1
    progress_every_s: float = 2.0
    # a checkpoint folder another run wrote (`robot-rl train`, `learner`): the agent starts from its
    # networks, temperature and optimiser moments, with this run's hyperparameters and fresh
    # buffers and counters; not a resume (robot_rl.loop.learner.open_init_checkpoint says what
    # must match). "": from scratch
    init_checkpoint: str = ""
    # stop once the success rate of the last EVAL_WINDOW evaluation episodes (metrics.csv's
    # eval_success_rate) reaches this; None: train until the step or time budget is spent
    stop_at_eval_success: float | None = None

    def __post_init__(self):
        if self.stop_at_eval_success is not None and not 0 < self.stop_at_eval_success <= 1:
            raise ConfigError(
                "learner.stop_at_eval_success: must be in (0, 1] or null, got "
                f"{self.stop_at_eval_success}"
            )
        for key in (
            "batch_size",
            "publish_every",
            "checkpoint_every",
            "replay_capacity",
            "torch_threads",
        ):
            if getattr(self, key) < 1:
                raise ConfigError(f"learner.{key}: must be >= 1, got {getattr(self, key)}")
        if self.learning_starts < 0:
            raise ConfigError(f"learner.learning_starts: must be >= 0, got {self.learning_starts}")
        if not self.max_update_to_data > 0:
            raise ConfigError(
                f"learner.max_update_to_data: must be > 0, got {self.max_update_to_data}"
            )
        if self.offline == "wsrl" and self.wsrl_pretrain_updates < 1:
            raise ConfigError(
                "learner.wsrl_pretrain_updates: WSRL pre-trains on the offline data, so it must "
                f"be >= 1, got {self.wsrl_pretrain_updates}; for online data only set "
                "learner.offline: none"
            )
        if not self.progress_every_s > 0:
            raise ConfigError(f"learner.progress_every_s: must be > 0, got {self.progress_every_s}")


@dataclass
class OperatorConfig:
    """The scripted operator standing in for the human in the twin (HIL-SERL interventions)."""

    enabled: bool = True
    stall_steps: int = (
        8  # take over when the TCP moved less than stall_distance over this many steps
    )
    stall_distance: float = 0.01  # m
    # ... or when the policy's arm action points away from the expert's this many steps running
    drift_steps: int = 4
    drift_cosine: float = 0.0  # "away": cosine between the two translation commands below this
    takeover_steps: int = 12  # how long a take-over lasts before control is handed back
    budget_start: float = (
        0.6  # fraction of an episode's steps the operator may drive, when the policy always fails
    )
    budget_min: float = (
        0.0  # ... and when it always succeeds (the budget shrinks with the recent success rate)
    )
    success_window: int = 20  # episodes over which that success rate is measured

    def __post_init__(self):
        for key in ("stall_steps", "drift_steps", "takeover_steps", "success_window"):
            if getattr(self, key) < 1:
                raise ConfigError(f"operator.{key}: must be >= 1, got {getattr(self, key)}")
        if not 0 <= self.budget_min <= self.budget_start <= 1:
            raise ConfigError(
                "operator: need 0 <= budget_min <= budget_start <= 1, "
                f"got {self.budget_min}, {self.budget_start}"
            )
        if not -1 <= self.drift_cosine <= 1:
            raise ConfigError(f"operator.drift_cosine: must be in [-1, 1], got {self.drift_cosine}")
        if self.stall_distance < 0:
            raise ConfigError(f"operator.stall_distance: must be >= 0, got {self.stall_distance}")


EpisodeSource = Literal["sim", "real", "demo", "intervention"]


@dataclass
class OfflineStoreConfig:
    """Episodes the learner preloads into its offline buffer at every start (resume included).

    `store` is an episode store, or a folder whose sub-folders are stores (a run's `episodes/`).
    Only episodes of the run's task are taken; `source` and `success` filter on the episodes'
    metadata (docs/data.md). Demonstrations go in whole, other episodes only their intervened
    stretches, as with live data.
    """

    store: str
    source: list[EpisodeSource] | None = None  # None: every source
    success: bool | None = None  # None: successes and failures

    def __post_init__(self):
        if not self.store:
            raise ConfigError("offline[].store: must name an episode store or a folder of them")
        if self.source is not None and not self.source:
            raise ConfigError(
                "offline[].source: an empty list matches nothing; leave it out to take every source"
            )


@dataclass
class RunConfig:
    task: str = "pick_cube"
    env: dict[str, Any] = field(
        default_factory=dict
    )  # sim EnvConfig overrides (validated by sim.make_env)
    seed: int = 0
    num_actors: int = 1  # on a 2-core machine a second actor only takes CPU from the learner
    demos: int = (
        20  # scripted demonstration episodes, shared out among the actors, before the policy acts
    )
    total_env_steps: int = 50_000  # online steps over all actors (demos and evaluation not counted)
    max_wall_s: float = (
        830.0  # training stops here at the latest (start-up and final evaluation add ~1 min)
    )
    eval_every_episodes: int = (
        5  # each actor runs one deterministic, operator-free episode this often
    )
    final_eval_episodes: int = 50
    actor_device: str = "auto"  # auto: cuda if available, else cpu; or cpu, cuda, cuda:N, mps
    actor_torch_threads: int = 1
    # twin actors wait for new weights after this many training steps on one version (0: never);
    # with learner.publish_every 50 and one actor, 50 keeps the update-to-data ratio near 1
    actor_steps_per_weights: int = 50
    # ... and wait at most this long each time: it must exceed the learner's time for publish_every
    # updates (~1.3 s for state on CPU, ~10 s for cached images), or the pacing silently stops
    actor_pace_timeout_s: float = 2.0
    # a reward model folder (`robot-rl reward train --out`, `reward probe`, `reward zero-shot`):
    # twin actors then take reward and episode ends from it, as on a real cell; evaluation stays
    # on the twin's ground truth
    reward_model: str | None = None
    # actors fsync each episode committed to their store: it then survives power loss
    # (docs/data.md, ~ms per episode); false: it survives a killed process only
    store_fsync: bool = True
    sac: SACConfig = field(default_factory=SACConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    transport: TransportConfig = field(default_factory=TransportConfig)
    operator: OperatorConfig = field(default_factory=OperatorConfig)
    offline: list[OfflineStoreConfig] = field(default_factory=list)
    # object_pose measured by the marker tracker in rendered images instead of the twin's truth
    # (robot_rl.loop.tracked_pose); needs env.privileged_state: false
    tracker: TrackedPoseConfig | None = None

    def __post_init__(self):
        check_device_name(self.actor_device, "actor_device")
        for key in ("num_actors", "total_env_steps", "eval_every_episodes", "actor_torch_threads"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key}: must be >= 1, got {getattr(self, key)}")
        for key in ("demos", "final_eval_episodes", "actor_steps_per_weights"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key}: must be >= 0, got {getattr(self, key)}")
        for key in ("max_wall_s", "actor_pace_timeout_s"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"{key}: must be > 0, got {getattr(self, key)}")
        if self.reward_model is not None and not Path(self.reward_model).is_dir():
            raise ConfigError(
                f"reward_model: {self.reward_model!r} is not a folder; train one with "
                "`robot-rl reward train --store STORE --out DIR` (in the twin: "
                "`robot-rl bench reward --out DIR`) and give DIR"
            )
        if (
            self.learner.offline == "symmetric"
            and self.demos == 0
            and not self.operator.enabled
            and not self.offline
        ):
            raise ConfigError(
                "learner.offline: 'symmetric' needs demos > 0, the operator enabled or an "
                "`offline` store list"
            )
        if self.learner.offline == "wsrl" and self.demos == 0 and not self.offline:
            raise ConfigError(
                "learner.offline: 'wsrl' pre-trains on demonstrations, so it needs demos > 0 or "
                "an `offline` store list"
            )
        if self.learner.reward_mode != "task" and not self.operator.enabled:
            raise ConfigError(
                f"learner.reward_mode: {self.learner.reward_mode!r} rewards the policy only "
                "through interventions, and in the twin the scripted operator makes them; set "
                "operator.enabled: true or reward_mode: task"
            )
        if self.offline and self.learner.offline == "none":
            raise ConfigError(
                "offline: stores are given but learner.offline is 'none', so they would never be "
                "sampled; set learner.offline: symmetric or remove the offline section"
            )
        if self.tracker is not None:
            self._check_tracker(self.tracker)

    def _check_tracker(self, tracker: TrackedPoseConfig) -> None:
        """What a tracked run refuses: anything that would put other than the tracker's
        object_pose, or any image, in the policy's observation."""
        from sim.cameras import DEFAULT_CAMERA_YAML, load_camera_yaml

        if self.task != "pick_cube":
            raise ConfigError(
                f"tracker: only pick_cube's cube carries markers in the twin; task is {self.task!r}"
            )
        env = from_dict(EnvConfig, self.env, "env")
        if env.privileged_state:
            raise ConfigError(
                "env.privileged_state: must be false with a `tracker` section: object_pose comes "
                "from the tracker, and the twin's true pose must not reach the policy"
            )
        if env.cameras:
            raise ConfigError(
                f"env.cameras: must be [] with a `tracker` section, got {list(env.cameras)}: the "
                "policy is state-only (a policy that reads images sees the cube and needs no "
                "tracker), and the twin renders every camera at one size, the tracker's "
                "tracker.image_size"
            )
        if env.marker is not None:
            raise ConfigError(
                "env.marker: leave it out with a `tracker` section; tracker.dictionary, "
                "tracker.marker_id and tracker.marker_size_m say what the cube carries"
            )
        if self.reward_model is not None:
            raise ConfigError(
                "reward_model: a tracked run renders no camera the reward model could read "
                "(env.cameras must be []); leave reward_model out to take the twin's reward"
            )
        yaml_path = env.camera_yaml or DEFAULT_CAMERA_YAML
        known = load_camera_yaml(yaml_path)
        unknown = [c for c in tracker.cameras if c not in known]
        if unknown:
            raise ConfigError(
                f"tracker.cameras: {unknown} are not in {yaml_path} (it has {sorted(known)})"
            )

    def data_hash(self) -> str:
        """What learner and actors must agree on to exchange data: task, env, tracker and agent
        (not the device each side computes on)."""
        sac = to_dict(self.sac)
        sac.pop("device")
        data = {"task": self.task, "env": self.env, "sac": sac}
        if self.tracker is not None:  # absent otherwise: the hash of untracked runs is unchanged
            data["tracker"] = to_dict(self.tracker)
        return config_hash(data)

    def env_config(self) -> EnvConfig:
        """The `env` section as the twin's typed config (action scales, episode length, layout)."""
        return from_dict(EnvConfig, self.env)

    def obs_spec(self) -> ObsSpec:
        """Keys, shapes and dtypes of the policy's observation, from this config alone (no MuJoCo
        env is built): what the twin returns and what an actor on a real cell must assemble."""
        env = self.env_config()
        if self.tracker is not None:  # the tracker gives the object_pose the privileged twin does
            env = replace(env, privileged_state=True)
        return obs_spec_from_space(observation_space(env, self.task))


# env keys that say what an action does (metres and radians per step at action 1): a policy
# trained with other values moves the arm by other amounts
ACTION_ENV_KEYS = ("pos_scale", "rot_scale")


def action_differences(saved_env: dict[str, Any], env: EnvConfig) -> list[str]:
    """One line per ACTION_ENV_KEYS key in which a checkpoint's env overrides (the defaults where
    it gives none) differ from `env`."""
    out = []
    for key in ACTION_ENV_KEYS:
        saved, current = saved_env.get(key, getattr(EnvConfig, key)), getattr(env, key)
        if saved != current:
            out.append(f"env.{key}: checkpoint {saved}, this run {current}")
    return out


def load_run_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """RunConfig from an experiment YAML (config/sim_<task>.yaml: `task`, `env` and the sections
    above)."""
    data = load_yaml(path) if path is not None else {}
    data.update(overrides or {})
    return from_dict(RunConfig, data)
