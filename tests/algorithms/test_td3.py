"""TD3: the target (twin minimum, clipped smoothing noise, bootstrapping), delayed actor updates, persistence, learning."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from tlrl.algorithms.td3 import TD3  # noqa: E402

TINY = dict(learning_starts=40, batch_size=16, net_arch=[16, 16], buffer_size=1000, jit_compile=False)


def _values(variables):
    return [v.numpy() for v in variables]


@pytest.mark.parametrize("noise", ["normal", "ornstein-uhlenbeck"])
def test_a_few_hundred_steps_give_finite_losses(noise):
    agent = TD3("Pendulum-v1", seed=0, action_noise=noise, **TINY)
    seen = []
    agent.learn(200, callback=lambda ag, info: seen.append(info["metrics"]) if info["n_updates"] else None)
    assert len(agent.critic.qs) == 2
    for key in ("critic_loss", "actor_loss", "q_mean", "critic_grad_norm"):
        assert all(np.isfinite(m[key]) for m in seen), key


class _ConstantActor(tf.Module):
    def __init__(self, action):
        super().__init__()
        self.action = tf.constant(action, tf.float32)

    def __call__(self, obs):
        return tf.broadcast_to(self.action, [tf.shape(obs)[0], 1])


class _LinearTwins(tf.Module):
    """Q1(s, a) = 10 a + s0, Q2(s, a) = -10 a + s0 (a in the critics' [-1, 1] units)."""

    def __call__(self, obs, action):
        return [10.0 * action[:, 0] + obs[:, 0], -10.0 * action[:, 0] + obs[:, 0]]


def test_target_is_min_of_twins_with_clipped_smoothing_noise_and_bootstraps_only_on_truncation():
    agent = TD3("Pendulum-v1", seed=0, gamma=0.9, target_policy_noise=100.0, target_noise_clip=0.5, **TINY)
    agent.actor_target = _ConstantActor([1.0])  # Pendulum: 1.0 is 0.5 in [-1, 1] units
    agent.critic_target = _LinearTwins()
    B = 64
    obs = tf.constant(np.tile([[3.0, 0.0, 0.0]], [B, 1]), tf.float32)
    reward = tf.ones([B])
    discount = tf.constant(np.where(np.arange(B) % 2 == 0, 0.0, 0.9), tf.float32)  # even: terminated
    state = agent.tf_rng.state.numpy()
    y = agent._td_target(reward, discount, obs).numpy()
    agent.tf_rng.reset(state)
    eps = agent.tf_rng.normal([B, 1]).numpy()[:, 0] * 100.0  # the same draws, by hand
    a = np.clip(0.5 + np.clip(eps, -0.5, 0.5), -1.0, 1.0)  # huge noise is clipped to +-0.5: a in {0, 1}
    assert set(np.round(a, 6)) <= {0.0, 1.0}
    q_min = np.minimum(10 * a + 3.0, -10 * a + 3.0)
    expected = np.where(np.arange(B) % 2 == 0, 1.0, 1.0 + 0.9 * q_min)
    np.testing.assert_allclose(y, expected, rtol=1e-6)
    assert np.all(y[0::2] == 1.0)  # terminated: no bootstrap


def test_actor_and_targets_update_every_policy_delay_steps():
    agent = TD3("Pendulum-v1", seed=0, policy_delay=2, **TINY)
    agent.learn(TINY["learning_starts"] - 1)  # no update yet
    snapshots = []
    for _ in range(4):
        snapshots.append((_values(agent.actor.variables), _values(agent.critic.variables),
                          _values(agent.actor_target.variables), _values(agent.critic_target.variables)))
        agent.learn(1)
    snapshots.append((_values(agent.actor.variables), _values(agent.critic.variables),
                      _values(agent.actor_target.variables), _values(agent.critic_target.variables)))
    for step in range(4):  # gradient update number step + 1
        before, after = snapshots[step], snapshots[step + 1]
        changed = [any(np.any(x != y) for x, y in zip(b, a)) for b, a in zip(before, after)]
        delayed = (step + 1) % 2 == 0
        assert changed == [delayed, True, delayed, delayed], f"update {step + 1}: {changed}"


def test_save_load_round_trip_restores_twin_critics_and_counters(tmp_path):
    agent = TD3("Pendulum-v1", seed=3, **TINY)
    agent.learn(51)
    agent.save(str(tmp_path / "td3"))
    loaded = TD3.load(str(tmp_path / "td3"))
    for name in ("actor", "critic", "actor_target", "critic_target", "actor_optimizer", "critic_optimizer"):
        for x, y in zip(getattr(agent, name).variables, getattr(loaded, name).variables):
            np.testing.assert_array_equal(x.numpy(), y.numpy(), err_msg=name)
    assert int(loaded.gradient_updates.numpy()) == 12
    assert loaded.config.policy_delay == 2 and len(loaded.critic.qs) == 2
    obs = np.zeros((3, 3), np.float32)
    np.testing.assert_array_equal(loaded.act(obs, deterministic=True), agent.act(obs, deterministic=True))


def test_same_seed_gives_identical_training_with_xla():
    runs = []
    for _ in range(2):
        agent = TD3("Pendulum-v1", seed=7, **dict(TINY, jit_compile=True))
        agent.learn(60)
        runs.append(_values(agent.actor.variables) + _values(agent.critic_target.variables))
    for x, y in zip(*runs):
        np.testing.assert_array_equal(x, y)


def test_learns_to_reach_the_goal_on_point_mass():
    # random actions score about -43 on tlrl/PointMass-v0; a policy that reaches the goal about -5
    agent = TD3("tlrl/PointMass-v0", seed=0, learning_starts=500, batch_size=64, net_arch=[64, 64], gamma=0.95,
                train_freq=4, gradient_steps=4)
    agent.learn(3000)
    mean, _ = agent.evaluate(10)
    assert mean > -15.0, mean
