"""A3C and its gradient-worker machinery (tlrl.runner.gradient_worker, learner, gradient_source)."""
import functools
import threading

import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf

from tlrl.compiled import CompiledCall

from tlrl.algorithms import A3C
from tlrl.algorithms.a3c import ActorCritic, a2c_loss
from tlrl.buffers import gae
from tlrl.envs import make_vector_env
from tlrl.runner import WorkerError
from tlrl.runner.gradient_worker import GradientWorker, n_step_returns
from tlrl.spaces import to_env_action


# ----- helper envs --------------------------------------------------------------------
class ScriptedEnv(gym.Env):
    """Reward k+1 at the k-th step of an episode; episode i ends as `ends[i % len(ends)] = (kind, length)`."""

    observation_space = gym.spaces.Box(0.0, 100.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, ends=(("term", 3), ("trunc", 2), ("term", 50))):
        self.ends, self.episode, self.t = list(ends), 0, 0  # episode: how many have ended

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        kind, length = self.ends[self.episode % len(self.ends)]
        end = self.t >= length
        self.episode += end
        return (np.array([float(self.t)], np.float32), float(self.t), end and kind == "term",
                end and kind == "trunc", {})


class ScriptedStartEnv(ScriptedEnv):
    action_space = gym.spaces.Discrete(2, start=1)


class FailingEnv(gym.Env):
    """CartPole-like env whose `step` raises after `fail_after` steps."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, fail_after=300):
        self.fail_after, self.steps = fail_after, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.steps += 1
        if self.steps > self.fail_after:
            raise RuntimeError("simulator crashed")
        return np.zeros(2, np.float32), 1.0, self.steps % 20 == 0, False, {}


def _worker(env_fn, n_steps, gamma=0.99, seed=0, space=ScriptedEnv):
    model_fn = functools.partial(ActorCritic, space.observation_space, space.action_space, (8,), "tanh", False)
    loss_fn = functools.partial(a2c_loss, ent_coef=0.01, vf_coef=0.5, normalize_advantage=False)
    return GradientWorker(env_fn, model_fn, loss_fn, n_steps=n_steps, gamma=gamma, seed=seed), model_fn


def _constant_value_weights(worker, c):
    """The worker model's weights with V(s) = c for every s."""
    model = worker.model
    weights = [v.numpy() for v in worker.variables]
    for i, v in enumerate(worker.variables):
        if v is model.vf_head.layer.w:
            weights[i] = np.zeros_like(weights[i])
        if v is model.vf_head.layer.b:
            weights[i] = np.full_like(weights[i], c)
    return weights


def _worker_threads():
    return [t for t in threading.enumerate() if t.name.startswith("tlrl-a3c-worker")]


# ----- n-step returns -----------------------------------------------------------------
def test_n_step_returns_bootstrap_on_truncation_not_on_termination():
    # env 0: terminates at t=1; env 1: truncated at t=1 (V(final)=4), continues to t=2 (V(next)=8).
    rewards = np.array([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]], np.float32)
    next_values = np.array([[100.0, 100.0], [100.0, 4.0], [6.0, 8.0]], np.float32)
    terminated = np.array([[0, 0], [1, 0], [0, 0]], np.float32)
    truncated = np.array([[0, 0], [0, 1], [0, 0]], np.float32)
    r = n_step_returns(rewards, next_values, terminated, truncated, gamma=0.5).numpy()
    np.testing.assert_allclose(r[:, 0], [1.5, 1.0, 4.0])  # no bootstrap after termination, new episode at t=2
    np.testing.assert_allclose(r[:, 1], [2.5, 3.0, 5.0])  # truncation bootstraps from V(final obs) = 4


def test_n_step_returns_match_gae_with_lambda_one():
    rng = np.random.default_rng(1)
    T, N = 7, 3
    rewards = rng.normal(size=(T, N)).astype(np.float32)
    values = rng.normal(size=(T, N)).astype(np.float32)
    final_values = rng.normal(size=(T, N)).astype(np.float32)
    last_value = rng.normal(size=N).astype(np.float32)
    terminated = rng.random((T, N)) < 0.2
    truncated = (rng.random((T, N)) < 0.2) & ~terminated
    next_values = np.concatenate([values[1:], last_value[None]])
    next_values = np.where(terminated | truncated, final_values, next_values)
    _, expected = gae(rewards, values, last_value, terminated, truncated, final_values, gamma=0.9, lam=1.0)
    got = n_step_returns(rewards, next_values, terminated, truncated, gamma=0.9).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_worker_returns_on_a_scripted_episode():
    worker, _ = _worker(functools.partial(make_vector_env, ScriptedEnv, 1), n_steps=6, gamma=0.5)
    worker.set_weights(_constant_value_weights(worker, 10.0))
    _, stats = worker.compute_gradients()
    # rewards 1 2 3(term) | 1 2(trunc) | 1 ; V = 10 everywhere.
    np.testing.assert_allclose(worker.last_returns[:, 0], [2.75, 3.5, 3.0, 4.5, 7.0, 6.0], rtol=1e-6)
    assert stats["episode_returns"] == [6.0, 3.0] and stats["episode_lengths"] == [3, 2]
    assert stats["steps"] == 6


# ----- worker gradients and acting -----------------------------------------------------
def test_pushed_gradients_equal_the_gradient_of_the_loss():
    worker, model_fn = _worker(functools.partial(make_vector_env, "CartPole-v1", 2), n_steps=5, seed=3,
                               space=gym.make("CartPole-v1"))
    weights = [v.numpy() + 0.01 for v in worker.variables]
    worker.set_weights(weights)
    grads, stats = worker.compute_gradients()

    model = model_fn()
    for v, w in zip(model.trainable_variables, weights):
        v.assign(w)
    obs_pair, actions, (rewards, terminated, truncated) = worker.batch()
    obs, next_obs = tf.constant(obs_pair[0]), tf.constant(obs_pair[1])
    T, N = rewards.shape
    values = model.value(tf.reshape(obs, [T * N, -1])).numpy().reshape(T, N)
    nv = model.value(tf.reshape(next_obs, [T * N, -1])).numpy().reshape(T, N)
    _, returns = gae(rewards, values, nv[-1], terminated > 0, truncated > 0, nv, gamma=0.99, lam=1.0)
    with tf.GradientTape() as tape:
        dist, v = model(tf.reshape(obs, [T * N, -1]))
        loss, metrics = a2c_loss(dist, v, actions.reshape(-1), returns.reshape(-1), ent_coef=0.01,
                                 vf_coef=0.5, normalize_advantage=False)
    expected = tape.gradient(loss, model.trainable_variables)
    assert len(grads) == len(expected)
    for g, e in zip(grads, expected):
        assert isinstance(g, np.ndarray)
        np.testing.assert_allclose(g, e.numpy(), rtol=1e-4, atol=1e-6)
    assert stats["loss"] == pytest.approx(float(loss), rel=1e-5)


def test_numpy_acting_uses_the_pushed_weights():
    worker, _ = _worker(functools.partial(make_vector_env, "CartPole-v1", 3), n_steps=2, space=gym.make("CartPole-v1"))
    assert worker.numpy_policy is not None, "an MLP actor-critic must act in numpy"
    weights = [np.random.default_rng(i).normal(size=v.shape).astype(np.float32) for i, v in enumerate(worker.variables)]
    worker.set_weights(weights)
    for v, w in zip(worker.variables, weights):
        v.assign(w)
    obs = np.random.default_rng(5).normal(size=(3, 4)).astype(np.float32)
    tf_logits = worker.model(tf.constant(obs))[0].logits_parameter().numpy()
    np.testing.assert_allclose(worker.numpy_policy(obs).logits, tf_logits, rtol=1e-5, atol=1e-5)


def test_image_observations_act_in_tf_with_concrete_functions():
    agent = A3C("tlrl/Catch-v0", seed=0, n_workers=1, n_envs=2, n_steps=4, net_arch=[16], share_torso=True)
    agent.learn(48)
    worker = agent.workers.local[0]
    assert worker.numpy_policy is None
    # traced once, at construction: a concrete function cannot retrace (other shapes raise)
    assert isinstance(worker.act_fn, (tf.types.experimental.ConcreteFunction, CompiledCall))
    assert isinstance(worker.gradient_fn, (tf.types.experimental.ConcreteFunction, CompiledCall))
    assert agent.num_timesteps == 48


# ----- training ---------------------------------------------------------------------
@pytest.mark.parametrize("n_workers", [1, 2])
def test_a_few_hundred_steps_give_finite_losses(n_workers):
    seen = []

    def callback(agent, info):
        seen.append(info)

    agent = A3C("CartPole-v1", seed=0, n_workers=n_workers, n_envs=2, n_steps=5, net_arch=[16, 16])
    agent.learn(300, callback=callback)
    assert agent.num_timesteps == 300
    assert len(seen) == 30 and seen[-1]["num_timesteps"] == 300
    for info in seen:
        for key in ("loss", "policy_loss", "value_loss", "entropy", "grad_norm", "steps_per_second"):
            assert np.isfinite(info["metrics"][key]), key
    assert {info["worker"] for info in seen} <= set(range(n_workers))
    assert sum(len(i["episode_returns"]) for i in seen) == agent.episode_tracker.episodes > 0
    for w in agent.workers.local:  # fixed shapes: traced once, at construction
        assert isinstance(w.gradient_fn, (tf.types.experimental.ConcreteFunction, CompiledCall))
    assert not _worker_threads()


def test_learn_continues_counting_and_rounds_up_to_whole_rollouts():
    agent = A3C("CartPole-v1", seed=0, n_workers=2, n_steps=4, net_arch=[8])
    agent.learn(10)
    assert agent.num_timesteps == 12
    agent.learn(8)
    assert agent.num_timesteps == 20


def test_callback_returning_false_stops_all_workers():
    calls = []
    agent = A3C("CartPole-v1", seed=0, n_workers=2, n_steps=4, net_arch=[8])
    agent.learn(100_000, callback=lambda a, info: calls.append(1) or len(calls) < 5)
    assert agent.num_timesteps < 200  # the few updates already running when the stop came are kept
    assert not _worker_threads()


@pytest.mark.parametrize("n_workers", [1, 2])
def test_worker_exception_stops_training_and_reaches_the_caller(n_workers):
    agent = A3C(FailingEnv, seed=0, n_workers=n_workers, n_steps=5, net_arch=[8])
    message = rf"worker \d of {n_workers} failed with RuntimeError: simulator crashed"
    with pytest.raises(WorkerError, match=message) as info:
        agent.learn(100_000)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert not _worker_threads()
    assert 0 < agent.num_timesteps < 2000


@pytest.mark.parametrize("n_workers", [1, 2])
def test_exception_in_the_callback_stops_the_workers(n_workers):
    agent = A3C("CartPole-v1", seed=0, n_workers=n_workers, n_steps=4, net_arch=[8])

    def callback(agent, info):
        raise KeyError("logger broke")

    with pytest.raises(KeyError, match="logger broke"):
        agent.learn(100_000, callback=callback)
    assert not _worker_threads()


def test_checkpoints_taken_while_workers_run_are_never_torn(tmp_path, record_published):
    agent = A3C("CartPole-v1", seed=0, n_workers=2, n_steps=2, net_arch=[32, 32])
    published = record_published(agent.learner)
    published[0] = agent.learner.get_weights()
    saves = []

    def callback(agent, info):
        if len(saves) < 3 and info["version"] % 7 == 0:
            path = str(tmp_path / f"s{len(saves)}")
            agent.save(path)  # the workers keep pushing meanwhile
            saves.append(path)

    agent.learn(400, callback=callback)
    assert len(saves) == 3
    for path in saves:
        loaded = A3C.load(path)
        weights = [v.numpy() for v in loaded.network.trainable_variables]
        matches = [version for version, pub in published.items()
                   if all(np.array_equal(a, b) for a, b in zip(weights, pub))]
        assert matches, f"{path} holds weights that were never published (a torn update)"
        assert int(loaded.optimizer.step.numpy()) in matches, "optimizer state and weights are from different updates"


def test_save_load_round_trip_and_continue(tmp_path):
    agent = A3C("CartPole-v1", seed=1, n_workers=1, n_envs=2, n_steps=5, net_arch=[16], learning_rate=1e-3)
    agent.learn(200)
    obs = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    agent.save(str(tmp_path / "a"))
    loaded = A3C.load(str(tmp_path / "a"))
    assert loaded.num_timesteps == 200 and loaded.config == agent.config
    np.testing.assert_array_equal(loaded.act(obs, deterministic=True), agent.act(obs, deterministic=True))
    for a, b in zip(loaded.network.trainable_variables, agent.network.trainable_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert int(loaded.optimizer.step.numpy()) == 20
    loaded.learn(100)
    assert loaded.num_timesteps == 300
    assert not np.array_equal(loaded.network.trainable_variables[0].numpy(),
                              agent.network.trainable_variables[0].numpy())
    assert np.shape(loaded.act(obs[0])) == ()


def test_same_seed_one_worker_is_deterministic():
    def run():
        agent = A3C("CartPole-v1", seed=7, n_workers=1, n_envs=2, n_steps=5, net_arch=[16])
        agent.learn(400)
        return [v.numpy() for v in agent.network.trainable_variables], list(agent.episode_tracker.finished_returns)

    (w1, r1), (w2, r2) = run(), run()
    assert r1 == r2
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)


def test_env_instance_needs_a_single_worker():
    with pytest.raises(ValueError, match="one env per worker"):
        A3C(gym.make("CartPole-v1"), n_workers=2)


def test_bad_hyperparameters_are_named():
    with pytest.raises(ValueError, match="n_steps"):
        A3C("CartPole-v1", n_steps=0)
    with pytest.raises(ValueError, match="n_workers"):
        A3C("CartPole-v1", n_workers=0)


def test_learns_cartpole():
    agent = A3C("CartPole-v1", seed=0, n_workers=1, n_envs=8, n_steps=5, learning_rate=1e-3, ent_coef=0.0,
                net_arch=[64, 64])
    agent.learn(30_000)
    mean, _ = agent.evaluate(5)
    assert mean >= 150, f"A3C reached only {mean} on CartPole after 30k steps"


def test_fused_single_worker_step_equals_gradient_then_apply():
    """One worker that shares the learner's variables fuses gradient and update into one call;
    the result must equal the two-call path (worker copy -> numpy gradients -> learner.apply)."""
    from tlrl.optim import Adam
    from tlrl.runner.gradient import run_local
    from tlrl.runner.learner import Learner

    space = gym.make("CartPole-v1")
    loss_fn = functools.partial(a2c_loss, ent_coef=0.01, vf_coef=0.5, normalize_advantage=False)
    model_fn = functools.partial(ActorCritic, space.observation_space, space.action_space, (16,), "tanh", False)
    results = []
    for fused in (True, False):
        tf.random.set_seed(0)
        shared = model_fn()
        learner = Learner(shared.trainable_variables, Adam(1e-3, eps=1e-5, max_grad_norm=0.5))
        worker = GradientWorker(functools.partial(make_vector_env, "CartPole-v1", 2),
                                (lambda: shared) if fused else model_fn, loss_fn, n_steps=5, gamma=0.99, seed=0)
        run_local(lambda attempt: worker, learner, 200, lambda stats: None, lambda progress: 1e-3)
        assert learner.is_attached(worker) == fused
        results.append(learner.get_weights())
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_learner_apply_flat_equals_apply_and_rejects_a_wrong_shape():
    """Remote workers send packed gradients: `apply_flat` must do what `apply` does on the unpacked list."""
    from tlrl.optim import Adam
    from tlrl.runner.learner import Learner

    grads = [np.full((2, 3), 0.5, np.float32), np.array([1.0, -2.0], np.float32)]
    learners = [Learner([tf.Variable(tf.ones([2, 3])), tf.Variable(tf.zeros([2]))], Adam(0.1)) for _ in range(2)]
    weights, info = learners[0].apply(grads, 0.1)
    flat, flat_info = learners[1].apply_flat(learners[1].layout.pack(grads), 0.1)
    assert info == flat_info and flat.shape == (8,)
    for a, b in zip(weights, learners[1].layout.unpack(flat)):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(weights[0], np.ones([2, 3], np.float32))  # the step did move the weights
    with pytest.raises(ValueError, match=r"flat gradient of shape \(8,\), got \(7,\)"):
        learners[1].apply_flat(np.zeros(7, np.float32), 0.1)


@pytest.mark.parametrize("env_id", ["tlrl/PointMass-v0", "tlrl/GoalGrid-v0"])
def test_box_actions_and_dict_observations_train(env_id):
    agent = A3C(env_id, seed=0, n_workers=2, n_envs=2, n_steps=4, net_arch=[16])
    agent.learn(64)
    assert agent.num_timesteps == 64
    obs = agent.observation_space.sample()
    assert agent.action_space.contains(to_env_action(agent.action_space, agent.act(obs)))


# ----- checkpoints in the middle of a run ---------------------------------------------------
@pytest.mark.parametrize("kw", [dict(n_workers=1), dict(n_workers=3, backend="sync")], ids=["one-worker", "sync-3"])
def test_a_run_cut_and_saved_at_a_boundary_resumes_exactly(kw, tmp_path):
    """What `tlrl train` does at a checkpoint: `cut_episodes()` then `save` in the callback, and the run goes on.
    Loading that save and training to the same target gives the same weights, bit for bit."""
    hp = dict(n_envs=2, n_steps=4, net_arch=[16], learning_rate="lin_1e-3", **kw)
    agent = A3C("CartPole-v1", seed=4, **hp)

    def callback(agent_, info):
        if info["num_timesteps"] >= 200 and not (tmp_path / "ck").exists():
            agent_.cut_episodes()
            agent_.save(str(tmp_path / "ck"))

    agent.learn(480, callback=callback)
    loaded = A3C.load(str(tmp_path / "ck"))
    assert 200 <= loaded.num_timesteps < 480
    loaded.learn(480 - loaded.num_timesteps)
    for a, b in zip(agent.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert int(agent.optimizer.step.numpy()) == int(loaded.optimizer.step.numpy())


def test_discrete_actions_must_start_at_zero():
    with pytest.raises(TypeError, match="start at 0"):
        A3C(ScriptedStartEnv, n_workers=1)


@pytest.mark.parametrize("name", ["tlrl.algorithms.a3c", "tlrl.runner.gradient_worker", "tlrl.runner.host_adam"])
def test_docstring_examples_run(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0, f"{name}: {result}"
