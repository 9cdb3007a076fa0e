"""SAC agent: the math of its parts, that updates learn what they should, and bad input handling."""

import math

import numpy as np
import pytest
import torch

from controllers.action import gripper_class
from controllers.config import ConfigError, from_dict
from robot_rl.agents.networks import CriticEnsemble, TanhGaussianHead
from robot_rl.agents.sac import Policy, SACAgent, SACConfig, gripper_index, native_bf16

torch.set_num_threads(1)
SPEC = {"tcp_pose": ((7,), np.float32), "gripper_width": ((1,), np.float32)}
SMALL = dict(hidden=(64, 64))


def batch(n: int, rng: np.random.Generator, action=None, reward=None, done=None) -> dict:
    def obs() -> dict:
        return {k: rng.standard_normal((n, *s)).astype(d) for k, (s, d) in SPEC.items()}

    return {
        "obs": obs(),
        "next_obs": obs(),
        "action": rng.uniform(-1, 1, (n, 7)).astype(np.float32) if action is None else action,
        "reward": np.zeros(n, np.float32) if reward is None else reward,
        "done": np.ones(n, np.float32) if done is None else done,
        "prev_gripper": np.full(n, -1, np.int8),
    }


def test_tanh_gaussian_log_prob_matches_change_of_variables():
    torch.manual_seed(0)
    head = TanhGaussianHead(5, 3, (16,), layer_norm=True)
    x = torch.randn(4000, 5)
    a, logp = head(x)
    h = head.trunk(x)
    mu = head.mean(h)
    log_std = -5 + 0.5 * 7 * (torch.tanh(head.log_std(h)) + 1)
    base = torch.distributions.Normal(mu, log_std.exp())
    u = torch.atanh(a.clamp(-1 + 1e-6, 1 - 1e-6))
    expected = (base.log_prob(u) - torch.log(1 - a.pow(2) + 1e-12)).sum(-1)
    ok = a.abs().max(-1).values < 0.999  # away from saturation, where atanh is well conditioned
    torch.testing.assert_close(logp[ok], expected[ok], atol=2e-3, rtol=1e-3)
    assert (a.abs() < 1).all()


def test_ensemble_members_are_independent_mlps():
    torch.manual_seed(0)
    ens = CriticEnsemble(3, 4, (8, 8), layer_norm=True)
    x = torch.randn(5, 4)
    out = ens(x)
    assert out.shape == (3, 5, 1)
    # member 1 computed by hand
    lin = [m for m in ens.net if type(m).__name__ == "EnsembleLinear"]
    norms = [m for m in ens.net if type(m).__name__ == "EnsembleLayerNorm"]
    h = x
    for layer, norm in zip(lin[:-1], norms):
        h = h @ layer.weight[1] + layer.bias[1]
        h = torch.relu(torch.nn.functional.layer_norm(h, (8,)) * norm.weight[1] + norm.bias[1])
    torch.testing.assert_close(out[1], h @ lin[-1].weight[1] + lin[-1].bias[1])
    assert not torch.allclose(out[0], out[1])


def test_ensemble_runs_a_subset_of_members_alone():
    torch.manual_seed(0)
    ens = CriticEnsemble(5, 4, (8, 8), layer_norm=True)
    x = torch.randn(6, 4)
    members = torch.tensor([3, 0])
    torch.testing.assert_close(ens(x, members), ens(x)[members])
    assert ens(x, members).shape == (2, 6, 1)


def test_defaults_follow_the_anchors():
    agent = SACAgent(SPEC, SACConfig())
    cfg = agent.cfg
    assert (cfg.discount, cfg.tau, cfg.init_temperature, cfg.hidden, cfg.layer_norm) == (
        0.97,
        0.005,
        0.01,
        (256, 256),
        True,
    )
    assert agent.target_entropy == -3.0  # -|A|/2 over the 6 continuous dims (gripper is discrete)
    assert math.isclose(agent.temperature, 0.01, rel_tol=1e-6)
    assert agent.critic.n == 2
    cont = SACAgent(SPEC, SACConfig(gripper="continuous"))
    assert cont.target_entropy == -3.5 and cont.policy.grasp_critic is None


def test_matmul_dtype_auto_is_bf16_only_where_the_cpu_computes_it_natively():
    agent = SACAgent(SPEC, SACConfig(matmul_dtype="auto", device="cpu"))
    assert agent.matmul_dtype == ("bfloat16" if native_bf16() else "float32")
    assert SACAgent(SPEC, SACConfig(device="cpu")).matmul_dtype == "float32"
    with pytest.raises(ConfigError, match="float32, bfloat16 or auto"):
        SACConfig(matmul_dtype="half")


@pytest.mark.parametrize("matmul_dtype", ["float32", "bfloat16"])
def test_critic_regresses_one_step_reward_and_actor_climbs_it(matmul_dtype):
    """Bandit (one state, every transition terminal): Q(a) -> r(a) = -(a0 - 0.5)^2, pi moves to
    a0 = 0.5."""
    if matmul_dtype == "bfloat16" and not native_bf16():
        pytest.skip("CPU without native bf16")
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    agent = SACAgent(
        SPEC, SACConfig(**SMALL, actor_lr=1e-3, critic_lr=1e-3, matmul_dtype=matmul_dtype)
    )
    for _ in range(250):
        b = batch(64, rng)
        for part in ("obs", "next_obs"):
            b[part] = {k: np.zeros_like(v) for k, v in b[part].items()}
        b["reward"] = (1.0 - (b["action"][:, 0] - 0.5) ** 2).astype(np.float32)
        m = agent.update(b)
    assert m["critic_loss"] < 0.02  # the reward's variance over uniform actions is ~0.4
    action = agent.act({k: np.zeros(s, d) for k, (s, d) in SPEC.items()}, deterministic=True)
    assert abs(float(action[0]) - 0.5) < 0.15, action
    assert agent.skipped_updates == 0 and agent.actor_steps == agent.critic_steps == 250


@pytest.mark.parametrize(
    "steps, matmul_dtype",
    [
        (None, "float32"),
        (2, "float32"),
        pytest.param(
            None,
            "bfloat16",
            marks=pytest.mark.skipif(not native_bf16(), reason="CPU without native bf16"),
        ),
    ],
)
def test_bootstrap_uses_discount_and_no_entropy_term(steps, matmul_dtype):
    """Absorbing chain with r = 1 and done = 0 everywhere: Q -> 1 / (1 - gamma^k) for k-step
    transitions (k = 1 without a `steps` key), no entropy bonus; the same with bf16 matmuls."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    cfg = SACConfig(
        hidden=(32,),
        discount=0.5,
        tau=0.1,
        critic_lr=3e-3,
        init_temperature=1.0,
        matmul_dtype=matmul_dtype,
    )
    agent = SACAgent(SPEC, cfg)
    for _ in range(400):
        b = batch(32, rng, reward=np.ones(32, np.float32), done=np.zeros(32, np.float32))
        if steps:
            b["steps"] = np.full(32, steps)
        agent.update(b)
    b = batch(64, rng)
    t = agent._to_tensors(b)
    z = agent.policy.encoder(*agent.policy.inputs(t["obs"], False))
    q = agent.critic(torch.cat([z, t["action"][:, :6]], -1))
    expected = 1.0 / (1.0 - 0.5 ** (steps or 1))  # 2.0 one-step, 1.33 two-step
    assert (
        abs(float(q.detach().mean()) - expected) < 0.1
    )  # an entropy term (temperature ~1, entropy ~ -3) would shift it far


def test_discrete_gripper_learns_the_rewarded_command_and_the_grasp_penalty():
    """Reward 1 for 'close' in a bandit: argmax -> close. With zero reward, toggling costs the
    penalty."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    agent = SACAgent(SPEC, SACConfig(**SMALL, critic_lr=1e-3))
    for _ in range(150):
        b = batch(64, rng)
        b["action"][:, 6] = rng.choice([-1.0, 0.0, 1.0], 64)
        b["reward"] = (b["action"][:, 6] > 0.5).astype(np.float32)
        agent.update(b)
    obs = {k: v[0] for k, v in batch(1, rng)["obs"].items()}
    assert agent.act(obs, deterministic=True)[6] == 1.0

    agent = SACAgent(SPEC, SACConfig(**SMALL, critic_lr=1e-3, grasp_penalty=-0.5))
    for _ in range(200):
        b = batch(64, rng)
        b["action"][:, 6] = rng.choice([-1.0, 0.0, 1.0], 64)
        b["prev_gripper"] = np.full(
            64, -1, np.int8
        )  # gripper open: 'close' toggles, 'open' does not
        agent.update(b)
    t = agent._to_tensors(batch(64, rng))
    with torch.no_grad():
        q = agent.policy.grasp_critic(
            agent.policy.encoder(*agent.policy.inputs(t["obs"], False))
        ).mean(0)
    assert q[0] < -0.3 and abs(float(q[1])) < 0.1 and abs(float(q[2])) < 0.1  # close, stay, open


def test_critic_actor_ratio_and_redq_subset():
    rng = np.random.default_rng(0)
    agent = SACAgent(
        SPEC, SACConfig(**SMALL, num_critics=10, num_target_critics=2, critic_actor_ratio=3)
    )
    for _ in range(7):
        agent.update(batch(16, rng))
    assert (agent.critic_steps, agent.actor_steps) == (7, 2)
    assert agent.critic(torch.zeros(1, agent.critic.net[0].weight.shape[1])).shape == (10, 1, 1)


def test_non_finite_batches_and_losses_are_skipped_and_counted():
    rng = np.random.default_rng(0)
    agent = SACAgent(SPEC, SACConfig(**SMALL))
    before = {k: v.clone() for k, v in agent.critic.state_dict().items()}
    actor_before = {k: v.clone() for k, v in agent.policy.state_dict().items()}
    b = batch(16, rng)
    b["obs"]["tcp_pose"][3, 2] = np.nan
    assert agent.update(b) == {"skipped": 1.0}
    b = batch(16, rng)
    b["next_obs"]["gripper_width"][0] = np.inf
    agent.update(b)
    b = batch(
        16, rng, reward=np.full(16, 3e38, np.float32)
    )  # finite, but its square overflows the loss
    agent.update(b)
    assert agent.skipped_updates == 3 and agent.critic_steps == 0
    for k, v in agent.critic.state_dict().items():
        torch.testing.assert_close(v, before[k])
    for k, v in agent.policy.state_dict().items():
        torch.testing.assert_close(v, actor_before[k])
    agent.update(batch(16, rng))
    assert agent.critic_steps == 1


def test_bad_batches_raise_errors_naming_the_key():
    rng = np.random.default_rng(0)
    agent = SACAgent(SPEC, SACConfig(**SMALL))
    b = batch(8, rng)
    del b["obs"]["gripper_width"]
    with pytest.raises(KeyError, match="gripper_width"):
        agent.update(b)
    with pytest.raises(ValueError, match="reward.*shape"):
        agent.update(batch(8, rng, reward=np.zeros((8, 1), np.float32)))
    b = batch(8, rng)
    b["action"][2, 1] = 1.5
    with pytest.raises(ValueError, match="action.*outside"):
        agent.update(b)
    b = batch(8, rng)
    b["steps"] = np.zeros(8)
    with pytest.raises(ValueError, match="steps"):
        agent.update(b)
    with pytest.raises(KeyError, match="tcp_pose"):
        agent.act({"gripper_width": np.zeros(1, np.float32)}, deterministic=True)


def test_act_gives_env_actions():
    rng = np.random.default_rng(0)
    agent = SACAgent(SPEC, SACConfig(**SMALL, gripper_epsilon=1.0))
    obs = {k: v[0] for k, v in batch(1, rng)["obs"].items()}
    acts = np.stack([agent.act(obs, deterministic=False) for _ in range(60)])
    assert acts.shape == (60, 7) and acts.dtype == np.float32
    assert np.all(np.abs(acts) <= 1) and set(np.unique(acts[:, 6])) == {-1.0, 0.0, 1.0}
    det = agent.act(obs, deterministic=True)
    np.testing.assert_array_equal(det, agent.act(obs, deterministic=True))


def test_actor_parameters_run_a_policy_built_alone():
    rng = np.random.default_rng(0)
    cfg = SACConfig(**SMALL)
    agent = SACAgent(SPEC, cfg)
    for _ in range(5):
        agent.update(batch(16, rng))
    params = agent.actor_parameters()
    assert all(isinstance(v, np.ndarray) for v in params.values())
    assert not any(k.startswith(("critic", "target")) for k in params)
    policy = Policy(SPEC, cfg)  # the actor process: no critics, no optimisers
    policy.load_actor_parameters(params)
    obs = {k: v[0] for k, v in batch(1, rng)["obs"].items()}
    np.testing.assert_array_equal(policy.act(obs, True), agent.act(obs, True))
    params["actor.mean.weight"] = params["actor.mean.weight"][:, :3]
    with pytest.raises(ValueError, match="actor.mean.weight"):
        policy.load_actor_parameters(params)


def test_config_validation_names_the_key():
    with pytest.raises(ConfigError, match="num_target_critics"):
        SACConfig(num_critics=2, num_target_critics=3)
    with pytest.raises(ConfigError, match="discount"):
        from_dict(SACConfig, {"discount": 1.5})
    with pytest.raises(ConfigError, match="n_step"):
        from_dict(SACConfig, {"n_step": 0})
    with pytest.raises(ConfigError, match="matmul_dtype"):
        from_dict(SACConfig, {"matmul_dtype": "float16"})
    with pytest.raises(ConfigError, match="gripper"):
        from_dict(SACConfig, {"gripper": "binary"})
    with pytest.raises(ConfigError, match="image.weights_path"):
        from_dict(SACConfig, {"image": {"backbone": "resnet18"}})
    with pytest.raises(ConfigError, match="object_pose"):
        SACAgent(SPEC, SACConfig(proprio_keys=("object_pose",)))


def test_relative_positions_join_the_proprio():
    spec = {**SPEC, "object_pose": ((7,), np.float32)}
    cfg = SACConfig(
        **SMALL, normalize_proprio=False, relative_positions=(("object_pose", "tcp_pose"),)
    )
    policy = Policy(spec, cfg)
    assert policy.proprio_dim == 7 + 1 + 7 + 3
    obs = {k: torch.randn(4, *s) for k, (s, _) in spec.items()}
    x = policy.proprio(obs)
    torch.testing.assert_close(x[:, -3:], obs["object_pose"][:, :3] - obs["tcp_pose"][:, :3])
    only = Policy(
        spec,
        SACConfig(
            **SMALL,
            proprio_keys=("gripper_width",),
            relative_positions=(("object_pose", "tcp_pose"),),
        ),
    )
    blank = {k: np.zeros(s, np.float32) for k, (s, _) in spec.items()}
    assert only.act(blank, deterministic=True).shape == (7,)
    with pytest.raises(KeyError, match="object_pose"):  # read although not a proprio key
        only.act(
            {"gripper_width": blank["gripper_width"], "tcp_pose": blank["tcp_pose"]},
            deterministic=True,
        )
    with pytest.raises(ConfigError, match="relative_positions.*gripper_width"):
        Policy(spec, SACConfig(**SMALL, relative_positions=(("object_pose", "gripper_width"),)))


def test_arm_action_dims_restrict_what_the_policy_drives():
    rng = np.random.default_rng(0)
    agent = SACAgent(SPEC, SACConfig(**SMALL, arm_action_dims=(0, 1, 2, 5)))
    assert agent.policy.action_dim == 4 and agent.target_entropy == -2.0
    for _ in range(3):
        agent.update(batch(16, rng))
    blank = {k: np.zeros(s, d) for k, (s, d) in SPEC.items()}
    a = agent.act(blank, deterministic=False)
    assert a.shape == (7,) and a[3] == a[4] == 0.0 and a[6] in (-1.0, 0.0, 1.0)
    continuous = Policy(SPEC, SACConfig(**SMALL, gripper="continuous", arm_action_dims=(2,)))
    assert continuous.action_dims == (2, 6)
    assert np.count_nonzero(continuous.act(blank, deterministic=False)[[0, 1, 3, 4, 5]]) == 0
    with pytest.raises(ConfigError, match="arm_action_dims"):
        from_dict(SACConfig, {"arm_action_dims": [0, 6]})


def test_closed_gripper_is_held_closed_and_not_learned():
    rng = np.random.default_rng(0)
    agent = SACAgent(SPEC, SACConfig(**SMALL, gripper="closed", arm_action_dims=(0, 1, 2, 5)))
    assert agent.policy.action_dims == (0, 1, 2, 5) and agent.policy.grasp_critic is None
    for _ in range(3):
        agent.update(batch(16, rng))
    blank = {k: np.zeros(s, d) for k, (s, d) in SPEC.items()}
    for deterministic in (True, False):
        a = agent.act(blank, deterministic=deterministic)
        assert a[6] == 1.0 and a[3] == a[4] == 0.0
    with pytest.raises(ConfigError, match="sac.gripper: 'closd'"):
        from_dict(SACConfig, {"gripper": "closd"}, "sac")


def bandit_batch(rng: np.random.Generator, offline_a0: float) -> dict:
    """One state, terminal transitions, reward 1 - (a0 - 0.5)^2; the first half online (random
    actions), the second offline with a0 = offline_a0 and a1 = 0.7 (which the reward ignores)."""
    b = batch(64, rng)
    for part in ("obs", "next_obs"):
        b[part] = {k: np.zeros_like(v) for k, v in b[part].items()}
    b["action"][32:, 0] = offline_a0
    b["action"][32:, 1] = 0.7
    b["reward"] = (1.0 - (b["action"][:, 0] - 0.5) ** 2).astype(np.float32)
    b["offline"] = np.arange(64) >= 32
    return b


def final_action(bc_weight: float, offline_a0: float) -> tuple[np.ndarray, dict]:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    agent = SACAgent(SPEC, SACConfig(**SMALL, actor_lr=1e-3, critic_lr=1e-3, bc_weight=bc_weight))
    for _ in range(300):
        m = agent.update(bandit_batch(rng, offline_a0))
    action = agent.act({k: np.zeros(s, d) for k, (s, d) in SPEC.items()}, deterministic=True)
    return action, m


def test_bc_clones_offline_actions_the_critic_rates_higher():
    """Offline actions at the reward's peak (a0 = 0.5): the policy's own noisy actions score lower,
    so the offline actions pass the Q-filter and are cloned, a1 = 0.7 included, about which the
    reward (and so the critic) says nothing."""
    offline = np.array([0.5, 0.7])
    with_bc, m = final_action(bc_weight=4.0, offline_a0=0.5)
    without_bc, _ = final_action(bc_weight=0.0, offline_a0=0.5)
    miss_with, miss_without = (
        np.linalg.norm(with_bc[:2] - offline),
        np.linalg.norm(without_bc[:2] - offline),
    )
    assert miss_with < 0.5 * miss_without, (with_bc, without_bc)  # measured: 0.11 against 0.33
    assert (
        m["bc_fraction"] > 0.1
    )  # of the batch: a third of the offline samples pass the filter at the end


def test_bc_q_filter_ignores_offline_actions_worse_than_the_policy():
    """Offline actions at a0 = -0.9 on a reward peaked at 0.5: once the critic sees that, they are
    not cloned, even with a large weight."""
    action, m = final_action(bc_weight=10.0, offline_a0=-0.9)
    assert abs(action[0] - 0.5) < 0.15, action
    assert m["bc_fraction"] < 0.05
    with pytest.raises(ValueError, match="offline"):
        SACAgent(SPEC, SACConfig(**SMALL, bc_weight=1.0)).update(
            {**batch(8, np.random.default_rng(0)), "offline": np.zeros(8)}
        )
    with pytest.raises(ConfigError, match="bc_weight"):
        from_dict(SACConfig, {"bc_weight": -1})


def test_gripper_index_follows_the_action_contract_on_tensors():
    values = np.array([-1.0, -0.5001, -0.5, 0.0, 0.5, 0.5001, 1.0, np.nan], np.float32)
    index = gripper_index(torch.as_tensor(values)).numpy()
    np.testing.assert_array_equal(index, 1 - gripper_class(values))
    assert index.tolist() == [2, 2, 1, 1, 1, 0, 0, 1]  # open, stay, close
