"""DQN: every switch trains with finite losses, the TD target by hand, save/load, determinism,
no retracing, clear errors, and one small learning test."""
import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf

from tlrl.algorithms import DQN
from tlrl.algorithms.dqn import target_mix, td_target
from tlrl.buffers import ReplayBuffer
from tlrl.spaces import obs_signature, to_tf_obs

TINY = dict(learning_starts=64, buffer_size=2000, batch_size=16, train_freq=4, gradient_steps=2, net_arch=(32, 32),
            target_update_interval=50, jit_compile=False)  # XLA is the default; one test below compiles it


@pytest.mark.parametrize("switches", [
    dict(),
    dict(double_q=True),
    dict(dueling=True),
    dict(prioritized=True),
    dict(n_step=3),
    dict(tau=0.05, target_update_interval=1),
    dict(double_q=True, dueling=True, prioritized=True, n_step=3, n_envs=2, gradient_steps=-1, loss="mse",
         jit_compile=True),
], ids=["plain", "double", "dueling", "per", "nstep3", "soft", "all_with_xla"])
def test_every_switch_trains_with_finite_losses(switches):
    agent = DQN("CartPole-v1", seed=0, **{**TINY, **switches})
    seen = []
    agent.learn(200, callback=lambda a, info: seen.append(info["metrics"]) if info["n_updates"] else None)
    assert seen and agent.num_timesteps >= 200
    for metrics in seen:
        for name in ("loss", "q_mean", "td_abs", "grad_norm", "epsilon", "steps_per_second"):
            assert np.isfinite(metrics[name]), (name, metrics)
    if switches.get("prioritized"):
        assert 0.4 < seen[-1]["beta"] <= 1.0
        replay = agent.store.replay
        assert not np.allclose(replay.priorities[: len(replay)], 1.0)  # priorities were updated
    assert agent.traces == {"update": 1}


@pytest.mark.parametrize("env_id", ["tlrl/GoalGrid-v0", "tlrl/Catch-v0", "FrozenLake-v1"], ids=["dict", "image", "discrete"])
def test_observation_spaces_dict_image_and_discrete(env_id):
    agent = DQN(env_id, seed=0, **TINY)
    agent.learn(100)
    obs = agent.collector.obs
    action = agent.act(obs, deterministic=True)
    assert action.shape == (1,) and agent.action_space.contains(int(action[0]))
    tf_obs = tf.nest.map_structure(tf.constant, to_tf_obs(agent.observation_space, obs))
    np.testing.assert_array_equal(action, tf.argmax(agent.q_net(tf_obs), axis=-1).numpy())  # numpy or TF acting
    tf.nest.assert_same_structure(tf_obs, obs_signature(agent.observation_space))
    np.testing.assert_array_equal(action, agent.policy_graph(tf_obs).numpy())  # the exported policy


def test_numpy_acting_matches_the_tf_network():
    for dueling in (False, True):
        agent = DQN("CartPole-v1", seed=1, dueling=dueling, **TINY)
        agent.learn(200)  # after some updates, so the numpy copy must have been re-synced
        assert agent.numpy_q is not None
        obs = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
        np.testing.assert_allclose(agent.numpy_q(obs), agent.q_net(tf.constant(obs)).numpy(), rtol=1e-5, atol=1e-5)


def test_td_target_by_hand_terminated_does_not_bootstrap_and_truncated_does():
    # three transitions from a buffer: normal, terminated, truncated (true final obs stored)
    space = gym.spaces.Box(-10, 10, (1,), np.float32)
    buf = ReplayBuffer(10, space, gym.spaces.Discrete(2), gamma=0.9, seed=0)
    for obs, term, trunc in ((0.0, False, False), (1.0, True, False), (2.0, False, True)):
        buf.add(np.array([[obs]]), np.array([0]), np.array([1.0]), np.array([[obs + 5]]), np.array([term]),
                np.array([trunc]))
    batch = buf.gather(np.arange(3))
    np.testing.assert_allclose(batch.discount, [0.9, 0.0, 0.9])
    next_q_target = tf.constant([[1.0, 4.0], [10.0, 20.0], [3.0, 2.0]])
    next_q_online = tf.constant([[5.0, 0.0], [0.0, 1.0], [0.0, 1.0]])  # picks a* = 0, 1, 1
    dqn = td_target(batch.reward, batch.discount, next_q_target).numpy()
    double = td_target(batch.reward, batch.discount, next_q_target, next_q_online).numpy()
    np.testing.assert_allclose(dqn, [1 + 0.9 * 4.0, 1.0, 1 + 0.9 * 3.0], rtol=1e-6)
    np.testing.assert_allclose(double, [1 + 0.9 * 1.0, 1.0, 1 + 0.9 * 2.0], rtol=1e-6)


def test_hard_target_updates_follow_env_steps_like_sb3():
    # interval 10 env steps, 8 vector steps per phase: 0 or 1 copies due per phase, exactly at the crossings
    dues = [target_mix(v, train_freq=8, n_envs=1, target_update_interval=10, tau=1.0) for v in range(8, 80, 8)]
    assert dues == [0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0]  # phases holding a crossing of 10, 20, ..., 70
    soft = target_mix(8, train_freq=4, n_envs=1, target_update_interval=1, tau=0.5)
    assert soft == pytest.approx(1 - 0.5 ** 4)  # 4 Polyak updates of the same online weights
    # with n_envs envs an update is due every target_update_interval // n_envs vector steps
    assert target_mix(4, train_freq=4, n_envs=2, target_update_interval=10, tau=1.0) == 0.0
    assert target_mix(8, train_freq=4, n_envs=2, target_update_interval=10, tau=1.0) == 1.0


def test_target_is_copied_before_a_phase_and_fixed_during_it():
    agent = DQN("CartPole-v1", seed=0, **{**TINY, "train_freq": 4, "gradient_steps": 3, "target_update_interval": 4})
    agent.learn(64)  # learning_starts reached: one phase has run
    online_before = [v.numpy() for v in agent.q_net.trainable_variables]
    agent.learn(4)  # one more phase: the copy happens first, then 3 gradient steps
    for t, v in zip(agent.target_net.trainable_variables, online_before):
        np.testing.assert_array_equal(t.numpy(), v)
    assert not all(np.array_equal(v.numpy(), w) for v, w in zip(agent.q_net.trainable_variables, online_before))


def _state(agent):
    return [v.numpy() for v in agent.q_net.variables + agent.target_net.variables] + \
        [v.numpy() for v in agent.optimizer.m + agent.optimizer.v] + [agent.optimizer.step.numpy()]


def test_save_load_round_trip_then_identical_training(tmp_path):
    agent = DQN("CartPole-v1", seed=0, **{**TINY, "prioritized": True})
    agent.learn(200)
    agent.save(str(tmp_path / "dqn"))
    loaded = DQN.load(str(tmp_path / "dqn"))
    assert loaded.num_timesteps == agent.num_timesteps and loaded.epsilon == agent.epsilon
    for a, b in zip(_state(agent), _state(loaded)):
        np.testing.assert_array_equal(a, b)
    obs = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
    np.testing.assert_array_equal(agent.act(obs, deterministic=True), loaded.act(obs, deterministic=True))
    np.testing.assert_array_equal(agent.store.replay.priorities, loaded.store.replay.priorities)
    assert (loaded.vector_steps, loaded.n_updates) == (agent.vector_steps, agent.n_updates)
    # the same training phase from the same buffer, sampler and optimizer state gives the same weights
    m1, m2 = agent.update(None), loaded.update(None)
    assert m1 == m2
    for a, b in zip(_state(agent), _state(loaded)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(agent.act(obs, deterministic=True), loaded.act(obs, deterministic=True))


def test_same_seed_twice_gives_identical_runs():
    runs = []
    for _ in range(2):
        agent = DQN("CartPole-v1", seed=7, **{**TINY, "double_q": True, "jit_compile": True})  # the default path
        returns = []
        agent.learn(250, callback=lambda a, info: returns.extend(info["episode_returns"]))
        runs.append((_state(agent), returns, agent.store.replay.sample(8).obs))
    for a, b in zip(runs[0][0], runs[1][0]):
        np.testing.assert_array_equal(a, b)
    assert runs[0][1] == runs[1][1]
    np.testing.assert_array_equal(runs[0][2], runs[1][2])


def test_no_retracing_across_learn_calls_and_phases():
    agent = DQN("CartPole-v1", seed=0, **{**TINY, "prioritized": True})
    agent.learn(150)
    agent.learn(150)
    assert agent.traces == {"update": 1}


def test_box_and_multidiscrete_action_spaces_are_refused_with_a_clear_message():
    with pytest.raises(TypeError, match=r"DQN needs a Discrete action space, got Box.*Use DDPG or TD3"):
        DQN("Pendulum-v1")

    class MultiEnv(gym.Env):
        observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
        action_space = gym.spaces.MultiDiscrete([2, 3])

        def reset(self, *, seed=None, options=None):
            return np.zeros(2, np.float32), {}

        def step(self, action):
            return np.zeros(2, np.float32), 0.0, False, False, {}

    with pytest.raises(TypeError, match="DQN needs a Discrete action space, got MultiDiscrete"):
        DQN(MultiEnv())


def test_unknown_and_invalid_hyperparameters_are_named():
    with pytest.raises(TypeError, match="DQN got an unknown hyperparameter 'target_update_intervall'. "
                                        "Did you mean 'target_update_interval'"):
        DQN("CartPole-v1", target_update_intervall=10)
    with pytest.raises(TypeError, match="hyperparameter 'double_q' must be .*bool.*got 'yes'"):
        DQN("CartPole-v1", double_q="yes")
    with pytest.raises(ValueError, match=r"tau must be in \(0, 1\]"):
        DQN("CartPole-v1", tau=0.0)
    with pytest.raises(ValueError, match="loss must be 'huber' or 'mse'"):
        DQN("CartPole-v1", loss="l1")


@pytest.mark.slow
def test_learns_cartpole():
    agent = DQN("CartPole-v1", seed=0, learning_rate=2.3e-3, batch_size=64, buffer_size=20_000, learning_starts=1000,
                gamma=0.99, target_update_interval=10, train_freq=64, gradient_steps=32, exploration_fraction=0.3,
                exploration_final_eps=0.04, net_arch=(64, 64))
    agent.learn(12_000)
    mean, _ = agent.evaluate(10)
    assert mean >= 150, mean


def test_docstring_examples_run():
    import doctest

    import tlrl.algorithms.dqn as module

    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted >= 4
