"""DDPG: losses stay finite, Polyak numerics, fused update semantics, acting, noise, persistence, determinism."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from tlrl.algorithms.ddpg import DDPG, critic_loss, polyak_update  # noqa: E402
from tlrl.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise, make_action_noise  # noqa: E402

# Most tests skip XLA (its compile costs seconds per agent); the XLA path (the default) is tested where it matters.
TINY = dict(learning_starts=40, batch_size=16, net_arch=[16, 16], buffer_size=1000, jit_compile=False)
XLA = dict(TINY, jit_compile=True)


def _variables(agent):
    """Every variable the agent checkpoints, by module, as numpy."""
    return {name: [v.numpy() for v in (obj.variables if isinstance(obj, tf.Module) else [obj])]
            for name, obj in agent.trackables().items()}


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert len(a[k]) == len(b[k]), k
        for x, y in zip(a[k], b[k]):
            np.testing.assert_array_equal(x, y, err_msg=k)


@pytest.mark.parametrize("noise", ["normal", "ornstein-uhlenbeck", None])
def test_a_few_hundred_steps_give_finite_losses(noise):
    agent = DDPG("Pendulum-v1", seed=0, action_noise=noise, **TINY)
    seen = []
    agent.learn(200, callback=lambda ag, info: seen.append(info) if info["n_updates"] else None)  # updates only
    assert agent.num_timesteps == 200
    assert len(seen) == 200 - TINY["learning_starts"] + 1
    for key in ("critic_loss", "actor_loss", "q_mean", "critic_grad_norm", "steps_per_second"):
        assert all(np.isfinite(info["metrics"][key]) for info in seen), key
    assert agent.gradient_updates.numpy() == len(seen)


def test_discrete_action_space_is_refused_before_training():
    with pytest.raises(TypeError, match="continuous \\(Box\\) action space.*Discrete"):
        DDPG("CartPole-v1")


def test_polyak_update_is_the_convex_combination():
    target, source = tf.Variable([1.0, -2.0, 4.0]), tf.Variable([3.0, 2.0, 4.0])
    polyak_update([target], [source], 0.25)
    np.testing.assert_allclose(target.numpy(), [1.5, -1.0, 4.0])
    polyak_update([target], [source], 1.0)
    np.testing.assert_array_equal(target.numpy(), source.numpy())


def test_critic_loss_sums_the_mean_squared_errors_of_all_critics():
    loss, metrics = critic_loss([tf.constant([1.0, 2.0]), tf.constant([0.0, 0.0])], tf.constant([0.0, 4.0]))
    np.testing.assert_allclose(loss.numpy(), (1 + 4) / 2 + (0 + 16) / 2)
    np.testing.assert_allclose(metrics["q_mean"].numpy(), 1.5)


def test_target_bootstraps_on_truncation_not_termination():
    agent = DDPG("Pendulum-v1", seed=0, gamma=0.9, **TINY)
    obs = tf.constant([[1.0, 0.0, 0.5], [0.0, 1.0, -0.5]])
    reward = tf.constant([1.0, 1.0])
    # what the replay buffer hands out: discount 0 after termination, gamma after truncation
    discount = tf.constant([0.0, 0.9])
    y = agent._td_target(reward, discount, obs).numpy()
    q_next = agent.critic_target(obs, agent._scale(agent.actor_target(obs)))[0].numpy()
    np.testing.assert_allclose(y, [1.0, 1.0 + 0.9 * q_next[1]], rtol=1e-6)


def test_k_fused_gradient_steps_equal_k_single_steps():
    """One call of k steps (unrolled for k <= DDPG.UNROLL, a loop above) equals k calls of one step."""
    a = DDPG("Pendulum-v1", seed=5, **XLA)
    b = DDPG("Pendulum-v1", seed=5, **XLA)
    _assert_same(_variables(a), _variables(b))
    rng = np.random.default_rng(0)
    k, B = 5, TINY["batch_size"]
    obs = rng.uniform(-1, 1, (k, B, 3)).astype(np.float32)
    act = rng.uniform(-2, 2, (k, B, 1)).astype(np.float32)
    rew = rng.uniform(-5, 0, (k, B)).astype(np.float32)
    nxt = rng.uniform(-1, 1, (k, B, 3)).astype(np.float32)
    disc = np.where(rng.random((k, B)) < 0.2, 0.0, 0.99).astype(np.float32)
    cur = obs[0, :1]
    split = DDPG.UNROLL
    m1, _ = a._update_call(split)(obs[:split], act[:split], rew[:split], nxt[:split], disc[:split], cur)
    m2, _ = a._update_call(k - split)(obs[split:], act[split:], rew[split:], nxt[split:], disc[split:], cur)
    losses = []
    for i in range(k):
        m, _ = b._update_call(1)(obs[i:i + 1], act[i:i + 1], rew[i:i + 1], nxt[i:i + 1], disc[i:i + 1], cur)
        losses.append(float(m[0]))
    for (name, xs), ys in zip(_variables(a).items(), _variables(b).values()):
        for x, y in zip(xs, ys):
            np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5, err_msg=name)
    assert DDPG.METRICS[0] == "critic_loss"
    np.testing.assert_allclose(float(m1[0]), np.mean(losses[:split]), rtol=1e-4)
    np.testing.assert_allclose(float(m2[0]), np.mean(losses[split:]), rtol=1e-4)


def test_the_update_computes_the_next_action_with_the_new_weights():
    agent = DDPG("Pendulum-v1", seed=0, action_noise=None, **TINY)
    agent.learn(TINY["learning_starts"] + 3)
    obs = agent.collector.obs
    fused_obs, mu = agent._fused  # what the last update computed, for exactly this observation object
    assert fused_obs is obs
    np.testing.assert_allclose(mu, agent.act_batch(obs, deterministic=True), atol=1e-5)
    actions, extras = agent.explore(obs)
    assert extras == {} and actions.dtype == np.float32
    np.testing.assert_array_equal(actions, np.clip(mu, -2, 2))
    assert agent._fused is None  # used once: an observation seen again goes through the policy


def test_weights_changed_drops_the_fused_action_and_remote_updates_fuse_nothing():
    agent = DDPG("Pendulum-v1", seed=0, action_noise=None, **TINY)
    agent.learn(TINY["learning_starts"] + 3)
    agent.set_weights([np.zeros_like(w) for w in agent.get_weights()])  # acting_variables: the actor's
    assert agent._fused is None
    obs = agent.collector.obs
    np.testing.assert_array_equal(agent.explore(obs)[0], agent.act_batch(obs, deterministic=True))
    before = agent.n_updates
    metrics = agent.update(None)  # envs elsewhere (Ape-X learner): mu of a zeros batch, not kept
    assert set(metrics) == set(DDPG.METRICS) and agent.n_updates == before + 1 and agent._fused is None


def test_policy_graph_is_the_deterministic_clipped_actor():
    agent = DDPG("Pendulum-v1", seed=0, **TINY)
    obs = np.random.default_rng(0).uniform(-1, 1, (5, 3)).astype(np.float32)
    out = agent.policy_graph(tf.constant(obs))
    assert out.dtype == tf.float32
    np.testing.assert_allclose(out.numpy(), agent.act(obs, deterministic=True), atol=1e-6)


def test_no_retracing_in_steady_state():
    agent = DDPG("Pendulum-v1", seed=0, **XLA)
    agent.learn(60)
    agent.act(np.zeros(3, np.float32))
    agent.act(np.zeros((7, 3), np.float32), deterministic=True)
    update, policy = agent._update_call(1), agent._policy_call
    agent.learn(40)
    agent.evaluate(1)
    # compile_fixed: one concrete function per k, traced once; a call of another shape would raise
    assert list(agent._updates) == [1] and agent._update_call(1) is update and agent._policy_call is policy


def test_same_seed_gives_identical_training():
    runs = []
    for _ in range(2):
        agent = DDPG("Pendulum-v1", seed=11, action_noise="ornstein-uhlenbeck", **TINY)
        agent.learn(80)
        runs.append(_variables(agent))
    _assert_same(*runs)


def test_save_load_round_trip_restores_everything(tmp_path):
    agent = DDPG("Pendulum-v1", seed=2, action_noise="ornstein-uhlenbeck", **TINY)
    agent.learn(70)
    path = str(tmp_path / "ddpg")
    agent.save(path)
    loaded = DDPG.load(path)
    obs = np.random.default_rng(0).uniform(-1, 1, (6, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded.act(obs, deterministic=True), agent.act(obs, deterministic=True))
    _assert_same(_variables(loaded), _variables(agent))  # nets, targets, Adam slots and steps, counters
    assert loaded.num_timesteps == agent.num_timesteps == 70
    assert len(loaded.store.replay) == len(agent.store.replay)
    np.testing.assert_array_equal(loaded.noise.x, agent.noise.x)
    np.testing.assert_array_equal(loaded.noise(), agent.noise())  # same generator state too
    loaded.learn(10)
    assert loaded.num_timesteps == 80


# ----- noise ----------------------------------------------------------------------------------------------------------
def test_noise_is_seeded_and_its_state_round_trips():
    for cls in (NormalActionNoise, OrnsteinUhlenbeckActionNoise):
        a, b = cls(0.3, (2,), n_envs=3, seed=4), cls(0.3, (2,), n_envs=3, seed=4)
        np.testing.assert_array_equal(a(), b())
        state = a.get_state()
        first = a()
        a()
        a.set_state(state)
        np.testing.assert_array_equal(a(), first)
        assert a().shape == (3, 2) and a().dtype == np.float32


def test_ou_noise_is_correlated_mean_reverting_and_resets_per_env():
    ou = OrnsteinUhlenbeckActionNoise(0.5, (1,), n_envs=2, theta=0.15, dt=0.01, seed=0)
    xs = np.stack([ou() for _ in range(5000)])[:, 0, 0]
    assert np.corrcoef(xs[:-1], xs[1:])[0, 1] > 0.9
    assert abs(xs[1000:].mean()) < 0.5
    ou.reset([1])
    assert ou.x[1, 0] == 0.0 and ou.x[0, 0] != 0.0


def test_make_action_noise_names():
    assert isinstance(make_action_noise("normal", 0.1, (1,)), NormalActionNoise)
    with pytest.raises(ValueError, match="Unknown action noise"):
        make_action_noise("pink", 0.1, (1,))
    with pytest.raises(ValueError, match="action_noise"):
        DDPG("Pendulum-v1", action_noise="pink")


def test_noise_is_in_units_of_half_the_action_range_and_resets_at_episode_end():
    agent = DDPG("Pendulum-v1", seed=0, action_noise="ornstein-uhlenbeck", noise_sigma=0.5, **TINY)
    np.testing.assert_allclose(agent.noise.sigma, [1.0])  # Pendulum actions are in [-2, 2]
    agent.learn(200)  # Pendulum episodes end at 200 steps: the noise process restarts
    np.testing.assert_array_equal(agent.noise.x, 0.0)


def test_add_restarts_the_noise_of_envs_whose_episode_ended():
    from tlrl.core import Transition

    agent = DDPG("Pendulum-v1", seed=0, action_noise="ornstein-uhlenbeck", n_envs=3, **TINY)
    agent.noise()
    assert np.all(agent.noise.x != 0.0)
    obs = np.zeros((3, 3), np.float32)
    agent.add(Transition(obs, np.zeros((3, 1), np.float32), np.zeros(3, np.float32), obs,
                         np.array([True, False, False]), np.array([False, False, True])), {})
    assert len(agent.store.replay) == 3
    np.testing.assert_array_equal(agent.noise.x[:, 0] == 0.0, [True, False, True])


class _DictPointMass:
    """tlrl/PointMass-v0 with a Dict observation {"position": [4], "goal": [2]} (a factory for the agent)."""

    def __new__(cls):
        import gymnasium as gym

        import tlrl.envs  # noqa: F401 - registers tlrl/PointMass-v0

        class DictObs(gym.ObservationWrapper):
            def __init__(self, env):
                super().__init__(env)
                self.observation_space = gym.spaces.Dict({"position": gym.spaces.Box(-1, 1, (4,), np.float32),
                                                          "goal": gym.spaces.Box(-1, 1, (2,), np.float32)})

            def observation(self, obs):
                return {"position": obs[:4], "goal": obs[4:]}

        return DictObs(gym.make("tlrl/PointMass-v0"))


def test_dict_observations_train_and_act():
    agent = DDPG(_DictPointMass, seed=0, **TINY)
    agent.learn(60)
    obs = {"position": np.zeros((2, 4), np.float32), "goal": np.ones((2, 2), np.float32)}
    assert agent.act(obs, deterministic=True).shape == (2, 2)
