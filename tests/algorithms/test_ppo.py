"""PPO: runs on every supported space, saves and resumes exactly, never retraces, bootstraps on truncation,
fuses its update without changing the math, rejects what it cannot do, and learns CartPole."""
import os

import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf

from tlrl.compiled import CompiledCall

from tlrl.algorithms import PPO
from tlrl.algorithms.ppo import METRICS, ppo_loss
from tlrl.collector import Collector

TINY = dict(n_envs=2, n_steps=16, batch_size=16, n_epochs=2)


# ----- tiny envs ---------------------------------------------------------------------------------
class MultiDiscreteEnv(gym.Env):
    """Reward 1 per action component equal to the matching observed target; 8 steps per episode."""

    observation_space = gym.spaces.Box(0.0, 1.0, (5,), np.float32)
    action_space = gym.spaces.MultiDiscrete([3, 2])

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self.target = self.np_random.integers(0, [3, 2])
        return self._obs(), {}

    def _obs(self):
        obs = np.zeros(5, np.float32)
        obs[self.target[0]] = 1.0
        obs[3 + self.target[1]] = 1.0
        return obs

    def step(self, action):
        reward = float(np.sum(np.asarray(action) == self.target))
        self.t += 1
        self.target = self.np_random.integers(0, [3, 2])
        return self._obs(), reward, False, self.t >= 8, {}


class CountingEnv(gym.Env):
    """obs = [t / 10]; reward 1; truncated (never terminated) after 3 steps, so a PPO rollout must bootstrap."""

    observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([self.t / 10], np.float32), 1.0, False, self.t >= 3, {}


class OddActionsEnv(gym.Env):
    """A Discrete action space that starts at -1, or a 2-D Box action space; 4 steps per episode."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def __init__(self, box: bool = False):
        self.box = box
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2, 2), np.float32) if box else gym.spaces.Discrete(3, start=-1)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        assert self.action_space.contains(action), action
        self.t += 1
        return np.full(2, 0.1 * self.t, np.float32), 0.0, False, self.t >= 4, {}


class MultiBinaryEnv(gym.Env):
    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.MultiBinary(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 0.0, False, True, {}


def _weights(agent):
    return [v.numpy() for v in agent.model.trainable_variables]


def _compiled_once(agent):
    """The fused update is compiled once for a fixed signature (a concrete function): it cannot retrace."""
    return isinstance(agent._fused_update.update, (tf.types.experimental.ConcreteFunction, CompiledCall))


# ----- it runs, on every kind of space ---------------------------------------------------------------
@pytest.mark.parametrize("env, extra", [
    ("CartPole-v1", {}),
    ("Pendulum-v1", dict(normalize_obs=True, normalize_reward=True, clip_range_vf=0.2, jit_compile=False)),
    (MultiDiscreteEnv, dict(share_torso=True, jit_compile=False)),
    ("tlrl/GoalGrid-v0", dict(normalize_obs=True, net_arch={"pi": [32], "vf": [16, 16]}, jit_compile=False)),
    ("tlrl/Catch-v0", dict(jit_compile=False)),  # a CNN: acting falls back to one tf.function call
], ids=["cartpole", "pendulum-box", "multidiscrete", "dict-obs", "image-tf-acting"])
def test_short_run_gives_finite_losses(env, extra):
    agent = PPO(env, seed=0, **{**TINY, **extra})
    infos = []
    agent.learn(96, callback=lambda a, info: infos.append(info))
    assert agent.num_timesteps == 96 and len(infos) == 3
    for info in infos:
        assert set(METRICS) <= set(info["metrics"]) and "steps_per_second" in info["metrics"]
        assert all(np.isfinite(v) for k, v in info["metrics"].items() if k != "explained_variance"), info["metrics"]
        assert isinstance(info["episode_returns"], list)
    obs = agent.observation_space.sample()
    action = agent.act(obs, deterministic=True)
    assert agent.action_space.contains(np.asarray(action, agent.action_space.dtype))
    if isinstance(agent.action_space, gym.spaces.Box):  # act() returns what the env accepts
        assert np.all(np.abs(agent.act(obs)) <= 2.0)
    assert _compiled_once(agent)  # 3 updates, one trace


@pytest.mark.parametrize("box", [False, True], ids=["discrete-start--1", "box-2x2"])
def test_actions_reach_the_env_in_its_own_space(box):
    agent = PPO(OddActionsEnv, env_kwargs={"box": box}, seed=0, n_envs=1, n_steps=8, batch_size=8, n_epochs=1,
                jit_compile=False)
    agent.learn(8)  # the env asserts every action it gets is in its space
    obs = np.zeros((3, 2), np.float32)
    actions = agent.act(obs, deterministic=True)
    assert actions.shape == (3,) + agent.action_space.shape
    assert all(agent.action_space.contains(a) for a in actions)
    if not box:  # the policy's index 0..2 (what the rollout stores) reaches the env as -1..1
        env_actions, extras = agent.explore(np.zeros((64, 2), np.float32))
        np.testing.assert_array_equal(env_actions, extras["action"] - 1)
        assert set(extras["action"].tolist()) == {0, 1, 2}


def test_learn_continues_counting_and_callback_false_stops():
    agent = PPO("CartPole-v1", seed=1, jit_compile=False, **TINY)
    agent.learn(32)
    calls = []
    agent.learn(1000, callback=lambda a, info: calls.append(info["num_timesteps"]) or False)
    assert calls == [64] and agent.num_timesteps == 64
    assert _compiled_once(agent)  # no retrace across updates and calls


# ----- the update -------------------------------------------------------------------------------
def test_fused_update_equals_loop_of_minibatch_steps():
    # 2 envs x 24 steps = 48 rows, batch 20: minibatches of 20, 20 and a masked partial one of 8, per epoch.
    agent = PPO("CartPole-v1", seed=2, n_envs=2, n_steps=24, batch_size=20, n_epochs=3)  # fused with XLA
    agent.collector.collect(24)
    agent.buffer.compute_returns_and_advantages(agent.values(agent.collector.obs))
    data, perms, fused_update = agent._update_data(), agent._permutations(), agent._fused_update
    variables = list(agent.model.trainable_variables) + list(agent.optimizer.variables)
    start = [v.numpy() for v in variables]

    schedule = np.array([3e-4, 0.2, 0.0], np.float32)
    means, _ = fused_update.update(data, perms, schedule)
    fused = [v.numpy() for v in variables]

    for v, s in zip(variables, start):
        v.assign(s)
    b, n_mb = 20, fused_update.n_minibatches
    assert n_mb == 3
    sums = {k: 0.0 for k in METRICS}
    train_step = fused_update.reference_step()
    for j in range(3 * n_mb):
        mask = fused_update.mask[(j % n_mb) * b:(j % n_mb + 1) * b]
        metrics = train_step(data, perms[j * b:(j + 1) * b], mask, schedule)
        for k in METRICS:
            sums[k] += float(metrics[k])
    for f, v in zip(fused, variables):
        np.testing.assert_allclose(f, v.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(means.numpy()[:-1], [sums[k] / (3 * n_mb) for k in METRICS], rtol=1e-4, atol=1e-5)
    assert means.numpy()[-1] == 3 * n_mb


def test_masked_minibatch_loss_equals_loss_on_the_valid_rows():
    rng = np.random.default_rng(0)
    logits = tf.constant(rng.normal(size=(6, 3)), tf.float32)
    batch = {"action": tf.constant([0, 1, 2, 0, 1, 2]), "log_prob": tf.constant(rng.normal(size=6) - 1.0, tf.float32),
             "value": tf.constant(rng.normal(size=6), tf.float32),
             "advantage": tf.constant(rng.normal(size=6), tf.float32), "return": tf.constant(rng.normal(size=6), tf.float32)}
    values = tf.constant(rng.normal(size=6), tf.float32)
    import tensorflow_probability as tfp

    kwargs = dict(clip_range=0.2, clip_range_vf=0.1, ent_coef=0.01, vf_coef=0.5, normalize_advantage=True)
    masked, m_metrics = ppo_loss(tfp.distributions.Categorical(logits=logits), values, batch,
                                 mask=tf.constant([1, 1, 1, 1, 0, 0], tf.float32), **kwargs)
    valid = {k: v[:4] for k, v in batch.items()}
    plain, p_metrics = ppo_loss(tfp.distributions.Categorical(logits=logits[:4]), values[:4], valid, **kwargs)
    np.testing.assert_allclose(masked.numpy(), plain.numpy(), rtol=1e-5)
    for k in p_metrics:
        np.testing.assert_allclose(m_metrics[k].numpy(), p_metrics[k].numpy(), rtol=1e-5, atol=1e-7)


def test_ppo_loss_clips_the_ratio_like_the_paper():
    import tensorflow_probability as tfp

    dist = tfp.distributions.Categorical(logits=tf.math.log([[0.9, 0.1], [0.9, 0.1]]))
    # old probability of action 0 was 0.5: ratio 1.8 > 1 + 0.2; positive advantage gains only up to 1.2
    batch = {"action": tf.constant([0, 0]), "log_prob": tf.math.log([0.5, 0.5]), "value": tf.zeros(2),
             "advantage": tf.constant([1.0, 1.0]), "return": tf.zeros(2)}
    loss, metrics = ppo_loss(dist, tf.zeros(2), batch, clip_range=0.2, vf_coef=0.0, normalize_advantage=False)
    np.testing.assert_allclose(metrics["policy_loss"].numpy(), -1.2, rtol=1e-6)
    np.testing.assert_allclose(metrics["clip_fraction"].numpy(), 1.0)
    np.testing.assert_allclose(loss.numpy(), -1.2, rtol=1e-6)


def test_target_kl_stops_the_update_early():
    agent = PPO("CartPole-v1", seed=0, n_envs=2, n_steps=32, batch_size=8, n_epochs=4, target_kl=1e-9,
                learning_rate=1e-2, jit_compile=False)
    infos = []
    agent.learn(64, callback=lambda a, info: infos.append(info))
    assert 1 <= infos[0]["metrics"]["gradient_steps"] < 4 * 8


# ----- acting and truncation -------------------------------------------------------------------------
def test_numpy_acting_matches_the_tf_networks():
    agent = PPO("Pendulum-v1", seed=0, jit_compile=False, **TINY)
    agent.learn(32)
    obs = np.stack([agent.observation_space.sample() for _ in range(6)])
    dist, value = agent.model(tf.constant(obs))
    np.testing.assert_allclose(agent.values(obs), value.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(agent.act_batch(obs, deterministic=True), np.clip(dist.mode().numpy(), -2.0, 2.0),
                               rtol=1e-5, atol=1e-5)
    _, extras = agent.explore(obs)
    np.testing.assert_allclose(extras["value"], value.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(extras["log_prob"], dist.log_prob(extras["action"]).numpy(), rtol=1e-5, atol=1e-4)


def test_gae_bootstraps_on_truncation_from_the_true_final_observation():
    agent = PPO(CountingEnv, seed=0, n_envs=2, n_steps=4, batch_size=8, n_epochs=1)
    steps = []

    class Recorder:  # sees each step on its way to the agent's rollout
        def add(self, step, extras):
            steps.append(step)
            agent.add(step, extras)

    agent.set_collector(Collector(agent, store=Recorder()))
    agent.collector.collect(4)
    last_value = agent.values(agent.collector.obs)
    agent.buffer.compute_returns_and_advantages(last_value)
    # step index 2 (the third step) truncates in both envs; its final obs is [0.3], the reset obs is [0.0]
    assert steps[2].truncated.all() and not any(s.terminated.any() for s in steps)
    assert not any(steps[t].truncated.any() for t in (0, 1, 3))
    np.testing.assert_array_equal(steps[2].next_obs, np.full((2, 1), 0.3, np.float32))
    v_final = agent.values(np.array([[0.3]], np.float32))[0]
    v_reset = agent.values(np.array([[0.0]], np.float32))[0]
    assert abs(v_final - v_reset) > 1e-6
    # the advantages are GAE with V(final obs) at the truncation (A_2 = r + gamma * V(final) - V(s_2), the chain
    # cut there) and no bootstrap value anywhere else
    data, gamma, lam = agent.buffer.get(), agent.config.gamma, agent.config.gae_lambda
    value, advantage = data["value"].reshape(4, 2), data["advantage"].reshape(4, 2)
    expected = np.zeros((4, 2))
    expected[3] = 1.0 + gamma * last_value - value[3]
    expected[2] = 1.0 + gamma * v_final - value[2]
    for t in (1, 0):
        expected[t] = 1.0 + gamma * value[t + 1] - value[t] + gamma * lam * expected[t + 1]
    np.testing.assert_allclose(advantage, expected, rtol=1e-5, atol=1e-6)


# ----- save / load, determinism ------------------------------------------------------------------------
def test_save_load_restores_actions_optimizer_and_normalizers(tmp_path):
    agent = PPO("Pendulum-v1", seed=0, normalize_obs=True, normalize_reward=True, learning_rate="lin_1e-3",
                jit_compile=False, **TINY)
    agent.learn(64)
    path = str(tmp_path / "ppo")
    agent.save(path)
    loaded = PPO.load(path)
    obs = np.stack([agent.observation_space.sample() for _ in range(5)])
    np.testing.assert_array_equal(loaded.act(obs, deterministic=True), agent.act(obs, deterministic=True))
    np.testing.assert_array_equal(loaded.act(obs), agent.act(obs))  # same rng state: same stochastic actions
    for a, b in zip(agent.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert float(loaded.optimizer.learning_rate.numpy()) == pytest.approx(float(agent.optimizer.learning_rate.numpy()))
    for key, norm in agent.obs_normalizers.items():
        for k, v in norm.get_state().items():
            np.testing.assert_array_equal(loaded.obs_normalizers[key].get_state()[k], v)
    assert loaded.reward_normalizer.get_state()["count"] == agent.reward_normalizer.get_state()["count"]
    assert (loaded.num_timesteps, loaded.n_updates, loaded.progress) == (64, agent.n_updates, agent.progress)
    loaded.learn(32)  # and training continues from there
    assert loaded.num_timesteps == 96
    # acting does not move the normalizer statistics (frozen outside rollouts)
    count = loaded.obs_normalizers[None].get_state()["count"]
    loaded.evaluate(1)
    assert loaded.obs_normalizers[None].get_state()["count"] == count


def test_same_seed_gives_identical_weights():
    a = PPO("CartPole-v1", seed=5, jit_compile=False, **TINY).learn(64)
    b = PPO("CartPole-v1", seed=5, jit_compile=False, **TINY).learn(64)
    for x, y in zip(_weights(a), _weights(b)):
        np.testing.assert_array_equal(x, y)


# ----- errors ------------------------------------------------------------------------------------
def test_unsupported_action_space_is_refused_before_training():
    with pytest.raises(TypeError, match="MultiBinary"):
        PPO(MultiBinaryEnv)


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_steps=8, n_envs=2, batch_size=64), "batch_size .64. must not exceed"),
    (dict(net_arch={"pi": [8], "q": [8]}), "keys 'pi' and 'vf'"),
    (dict(share_torso=True, net_arch={"pi": [8], "vf": [16]}), "share_torso"),
    (dict(clip_range="linear_0.2"), "clip_range"),
    (dict(gae_lambda=1.5), "gae_lambda"),
    (dict(n_epochs=0), "n_epochs must be positive"),
    (dict(net_arch=[64, 0]), "positive integers"),
])
def test_bad_hyperparameters_are_named(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        PPO("CartPole-v1", **kwargs)


def test_normalize_obs_on_images_is_refused():
    with pytest.raises(TypeError, match="normalize_obs"):
        PPO("tlrl/Catch-v0", normalize_obs=True)


# ----- learning -----------------------------------------------------------------------------------
def test_learns_cartpole():
    agent = PPO("CartPole-v1", seed=0, n_envs=8, n_steps=32, batch_size=256, n_epochs=20, learning_rate="lin_1e-3",
                clip_range="lin_0.2", gae_lambda=0.8, gamma=0.98, ent_coef=0.0)
    agent.learn(30_000)
    mean, _ = agent.evaluate(10)
    assert mean >= 200, mean


def test_docstring_examples_run():
    import doctest

    import tlrl.algorithms.ppo as module
    import tlrl.obs_normalizers as normalizers

    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted >= 4
    result = doctest.testmod(normalizers, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted >= 2


# ----- export and checkpoint cuts ------------------------------------------------------------------
@pytest.mark.parametrize("env", ["Pendulum-v1", "tlrl/GoalGrid-v0"], ids=["box", "dict-obs"])
def test_policy_graph_normalizes_like_act(env):
    from tlrl.spaces import obs_signature, to_tf_obs

    agent = PPO(env, seed=0, normalize_obs=True, jit_compile=False, **TINY).learn(32)
    obs = [agent.observation_space.sample() for _ in range(5)]
    obs = {k: np.stack([o[k] for o in obs]) for k in obs[0]} if isinstance(obs[0], dict) else np.stack(obs)
    graph = tf.function(agent.policy_graph, input_signature=[obs_signature(agent.observation_space)])
    actions = graph(to_tf_obs(agent.observation_space, obs)).numpy()
    assert actions.dtype == agent.action_space.dtype
    np.testing.assert_allclose(actions, agent.act(obs, deterministic=True), rtol=1e-5, atol=1e-5)


def test_cut_episodes_restarts_envs_and_running_reward_returns():
    agent = PPO("Pendulum-v1", seed=0, normalize_reward=True, jit_compile=False, **TINY).learn(32)
    assert agent.collector.obs is not None and agent.reward_normalizer.returns is not None
    agent.cut_episodes()
    assert agent.collector.env is None and agent.reward_normalizer.returns is None
    assert agent.learn(32).num_timesteps == 64
