"""SAC: the entropy temperature, the target critics, the policy's actions, the config, actors, learning.

The contract (save/load, determinism, no retrace, export, hyperparameter errors) is in test_contract.py.
"""
import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tlrl.algorithms.sac import SAC  # noqa: E402

TINY = dict(learning_starts=32, batch_size=16, net_arch=[16, 16], buffer_size=1000, jit_compile=False)


def _values(variables):
    return [v.numpy().copy() for v in variables]


def _metrics(agent, steps):
    seen = []
    agent.learn(steps, callback=lambda ag, info: seen.append(info["metrics"]) if info["n_updates"] else None)
    return seen


@pytest.mark.parametrize("target, direction", [(5.0, 1), (-5.0, -1)])
def test_the_temperature_moves_toward_the_target_entropy(target, direction):
    # Pendulum's actions live in [-1, 1] (scaled): the policy's entropy is at most log 2, far below 5 and above -5
    agent = SAC("Pendulum-v1", seed=0, target_entropy=target, **TINY)
    seen = _metrics(agent, 96)
    alphas = [m["ent_coef"] for m in seen]
    assert len(seen) == 96 - 32 + 1 and alphas[0] == 1.0  # "auto" starts at 1
    assert np.sign(alphas[-1] - 1.0) == direction and np.all(np.sign(np.diff(alphas)) == direction)
    for key in ("critic_loss", "actor_loss", "ent_coef_loss", "entropy", "q_mean", "weight_norm"):
        assert all(np.isfinite(m[key]) for m in seen), key
    assert agent.target_entropy == target and SAC("Pendulum-v1", **TINY).target_entropy == -1.0  # "auto": -dim A


def test_a_numeric_ent_coef_stays_fixed_and_auto_start_sets_the_first_value():
    agent = SAC("Pendulum-v1", seed=0, ent_coef=0.05, **TINY)
    seen = _metrics(agent, 64)
    assert np.allclose([m["ent_coef"] for m in seen], 0.05) and {m["ent_coef_loss"] for m in seen} == {0.0}
    assert math.exp(float(agent.log_alpha.numpy())) == pytest.approx(0.05)
    no_entropy = SAC("Pendulum-v1", seed=0, ent_coef=0.0, **TINY)  # plain soft-less actor-critic: alpha 0
    assert all(m["ent_coef"] == 0.0 and np.isfinite(m["actor_loss"]) for m in _metrics(no_entropy, 48))
    started = SAC("Pendulum-v1", seed=0, ent_coef="auto_0.1", **TINY)
    seen = _metrics(started, 40)
    assert seen[0]["ent_coef"] == pytest.approx(0.1) and seen[-1]["ent_coef"] != pytest.approx(0.1)


@pytest.mark.parametrize("interval", [1, 3])
def test_target_critics_follow_by_tau_every_target_update_interval_gradient_steps(interval):
    agent = SAC("Pendulum-v1", seed=0, tau=0.1, target_update_interval=interval, **TINY)
    agent.learn(40)  # learning_starts 32: 9 gradient steps so far
    for _ in range(4):
        n = int(agent.gradient_updates.numpy())
        target = _values(agent.critic_target.trainable_variables)
        agent.update(None)
        online = _values(agent.critic.trainable_variables)
        moved = n % interval == 0  # gradient step n + 1 updates the targets when n is a multiple of the interval
        for t_before, t_after, q in zip(target, _values(agent.critic_target.trainable_variables), online):
            expected = t_before + 0.1 * (q - t_before) if moved else t_before
            np.testing.assert_allclose(t_after, expected, rtol=1e-5, atol=1e-6)


def test_actions_are_the_squashed_gaussian_rescaled_to_the_bounds_and_seeded():
    agent = SAC("tlrl/PointMass-v0", seed=0, **TINY)
    obs = np.stack([agent.observation_space.sample() for _ in range(64)])
    mean, _ = agent.actor(obs)
    greedy = agent.act(obs, deterministic=True)
    np.testing.assert_allclose(greedy, np.tanh(mean.numpy()), rtol=1e-5, atol=1e-6)  # bounds [-1, 1]
    sampled = agent.act(obs)
    assert sampled.shape == greedy.shape and np.all(np.abs(sampled) <= 1.0) and not np.allclose(sampled, greedy)
    again = SAC("tlrl/PointMass-v0", seed=0, **TINY)
    again.act(obs, deterministic=True)
    np.testing.assert_array_equal(again.act(obs), sampled)
    pendulum = SAC("Pendulum-v1", seed=0, **TINY)  # bounds [-2, 2]
    obs = np.stack([pendulum.observation_space.sample() for _ in range(16)])
    np.testing.assert_allclose(pendulum.act(obs, deterministic=True), 2.0 * np.tanh(pendulum.actor(obs)[0].numpy()),
                               rtol=1e-5, atol=1e-6)


def test_the_update_computes_the_next_exploration_gaussian_with_the_new_weights():
    agent = SAC("Pendulum-v1", seed=0, **TINY)
    agent.learn(40)
    obs = agent.collector.obs
    agent.update(obs)
    state = agent.rng.bit_generator.state
    fused, _ = agent.explore(obs)  # from the update's output
    agent.rng.bit_generator.state = state
    direct, _ = agent.explore(obs)  # used once: now through the policy
    np.testing.assert_allclose(fused, direct, rtol=1e-5, atol=1e-5)


def test_unsupported_spaces_and_bad_settings_are_refused_with_the_fix():
    with pytest.raises(TypeError, match=r"SAC needs a continuous \(Box\) action space, got Discrete"):
        SAC("CartPole-v1")
    for bad, words in [(dict(target_update_interval=0), "target_update_interval must be at least 1"),
                       (dict(ent_coef="automatic"), "ent_coef must be a number, 'auto' or 'auto_<start>'"),
                       (dict(ent_coef="auto_0"), "needs a start above 0"),
                       (dict(ent_coef=-1.0), "ent_coef must be >= 0"),
                       (dict(target_entropy="auto_1"), "target_entropy must be a number or 'auto'"),
                       (dict(target_entropy="high"), "target_entropy must be a number, 'auto'"),
                       (dict(net_arch=[]), "net_arch must be a non-empty list"),
                       (dict(learning_rate="lin_x"), "learning_rate")]:
        with pytest.raises(ValueError, match=words):
            SAC("no-such-env-v0", **bad)  # the settings are checked before the env is made


def test_trains_with_ape_x_actors():
    from tlrl.runner import ApeX

    agent = SAC("Pendulum-v1", seed=0, **dict(TINY, learning_starts=64))
    ApeX(agent, workers=2, backend="thread", block_steps=16).learn(256)
    assert agent.num_timesteps == 256 and agent.n_updates > 0


def test_learns_to_reach_the_goal_on_point_mass():
    # random actions score about -43 on tlrl/PointMass-v0; a policy that reaches the goal about -5
    agent = SAC("tlrl/PointMass-v0", seed=0, learning_starts=500, batch_size=64, net_arch=[64, 64], gamma=0.95,
                learning_rate=1e-3, train_freq=4, gradient_steps=4)
    agent.learn(3000)
    mean, _ = agent.evaluate(10)
    assert mean > -15.0, mean
