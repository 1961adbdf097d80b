"""NaN and infinity stop training loudly: refused as hyperparameters before anything is built, caught in
every update's metrics before the callback logs or checkpoints them, and caught in every place training
envs are stepped (PPO's rollout, the off-policy loop, A3C's workers, Ape-X's actors) with the env and step."""
import dataclasses
import math
import re
import typing

import numpy as np
import pytest

from tlrl.algorithms import REGISTRY, get_algorithm
from tlrl.finite import NonFiniteError, check_env_step, check_metrics
from tlrl.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise
from tlrl.runner.host_adam import HostAdam

ALGOS = sorted(REGISTRY)
NAN, INF = float("nan"), float("inf")
BAD_ENV = "nonfinite_envs:GoesBad"  # tests/nonfinite_envs.py
#: algo -> (env, small hyperparameters) for quick runs on CPU.
TINY = {
    "ppo": ("CartPole-v1", dict(n_envs=2, n_steps=16, batch_size=16, n_epochs=1, net_arch=[8], jit_compile=False)),
    "dqn": ("CartPole-v1", dict(learning_starts=16, buffer_size=300, batch_size=8, net_arch=[8], jit_compile=False)),
    "ddpg": ("Pendulum-v1", dict(learning_starts=16, buffer_size=300, batch_size=8, net_arch=[8], jit_compile=False)),
    "td3": ("Pendulum-v1", dict(learning_starts=16, buffer_size=300, batch_size=8, net_arch=[8], jit_compile=False)),
    "sac": ("Pendulum-v1", dict(learning_starts=16, buffer_size=300, batch_size=8, net_arch=[8], jit_compile=False)),
    "a3c": ("CartPole-v1", dict(n_workers=1, n_steps=8, net_arch=[8])),
}


def _has_float(hint) -> bool:
    return hint is float or any(_has_float(a) for a in typing.get_args(hint))


def float_fields(cls):
    hints = typing.get_type_hints(cls.Config)
    return [f.name for f in dataclasses.fields(cls.Config) if _has_float(hints[f.name])]


def test_every_registered_algorithm_is_covered_here():
    assert set(TINY) == set(REGISTRY)


# ----- hyperparameters -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [NAN, INF, -INF], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("algo", ALGOS)
def test_a_non_finite_float_hyperparameter_is_refused_before_anything_is_built(algo, bad):
    cls = get_algorithm(algo)
    names = float_fields(cls)
    assert names, f"{cls.__name__} has no float hyperparameter?"
    for name in names:
        # The env id does not exist: an error about the hyperparameter proves it was checked first.
        with pytest.raises(ValueError) as err:
            cls("no-such-env-v0", **{name: bad})
        message = str(err.value)
        assert repr(name) in message and repr(bad) in message and "finite" in message, message


@pytest.mark.parametrize("algo", ALGOS)
def test_every_float_hyperparameter_declares_its_allowed_range(algo):
    cls = get_algorithm(algo)
    assert set(float_fields(cls)) == set(cls.Config.RANGES)


@pytest.mark.parametrize("algo, name, value, allowed", [
    ("dqn", "learning_rate", 0.0, "> 0"),
    ("dqn", "learning_rate", "lin_nan", "finite"),
    ("ppo", "learning_rate", "lin_inf", "finite"),
    ("ppo", "clip_range", "lin_nan", "finite"),
    ("ppo", "learning_rate", lambda progress: NAN, "> 0"),
    ("a3c", "learning_rate", -1e-3, "> 0"),
    ("a3c", "adam_eps", 0.0, "> 0"),
    ("dqn", "prioritized_eps", 0.0, "> 0"),
    ("ddpg", "tau", 0.0, "in (0, 1]"),
    ("ddpg", "noise_dt", 0.0, "> 0"),
    ("td3", "target_policy_noise", -0.1, ">= 0"),
    ("sac", "ent_coef", -0.1, ">= 0"),
    ("sac", "ent_coef", "auto_nan", ">= 0"),
    ("sac", "learning_rate", "lin_0", "> 0"),
    ("ppo", "clip_range", 0.0, "> 0"),
])
def test_a_float_hyperparameter_out_of_its_range_is_refused_with_the_range(algo, name, value, allowed):
    with pytest.raises(ValueError) as err:
        get_algorithm(algo)("no-such-env-v0", **{name: value})
    assert name in str(err.value) and allowed in str(err.value), str(err.value)


def test_exploration_noise_refuses_a_nan_sigma_or_mean():
    with pytest.raises(ValueError, match="sigma must be finite"):
        NormalActionNoise(sigma=NAN, shape=(2,))
    with pytest.raises(ValueError, match="mean must be finite"):
        OrnsteinUhlenbeckActionNoise(sigma=0.1, shape=(2,), mean=INF)
    with pytest.raises(ValueError, match="theta"):
        OrnsteinUhlenbeckActionNoise(sigma=0.1, shape=(2,), dt=NAN)


# ----- the asynchronous learner's Adam --------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [NAN, INF])
def test_host_adam_refuses_a_non_finite_gradient_and_changes_nothing(bad):
    adam = HostAdam(3, beta1=0.9, beta2=0.999, eps=1e-8, max_grad_norm=0.5)
    weights = np.ones(3, np.float32)
    adam.apply(np.full(3, 0.1, np.float32), weights, learning_rate=0.01)
    before = weights.copy(), adam.m.copy(), adam.v.copy(), adam.step
    with pytest.raises(NonFiniteError, match="did not apply it"):
        adam.apply(np.array([0.1, bad, 0.1], np.float32), weights, learning_rate=0.01)
    for now, then in zip((weights, adam.m, adam.v), before[:3]):
        np.testing.assert_array_equal(now, then)
    assert adam.step == before[3]


# ----- metrics of an update -------------------------------------------------------------------------------------
def test_check_metrics_names_the_step_and_every_bad_metric_and_skips_nan_by_definition():
    check_metrics({"loss": 1.0, "explained_variance": NAN, "n_updates": 3}, step=64, owner="PPO")
    with pytest.raises(NonFiniteError) as err:
        check_metrics({"loss": NAN, "grad_norm": INF, "q_mean": 2.0}, step=64, owner="DQN")
    message = str(err.value)
    assert "DQN" in message and "env step 64" in message and "loss = nan" in message and "grad_norm = inf" in message
    assert "q_mean" not in message and "learning rate" in message and "reward" in message


def _recording():
    calls = []

    def callback(agent, info):
        calls.append(dict(info["metrics"]))

    return calls, callback


@pytest.mark.parametrize("algo", ALGOS)
def test_an_update_that_overflows_the_weights_stops_training_before_its_callback(algo):
    env, kwargs = TINY[algo]
    agent = get_algorithm(algo)(env, seed=0, **dict(kwargs, learning_rate=1e38))  # finite, but absurd
    calls, callback = _recording()
    with pytest.raises(NonFiniteError, match="env step"):
        agent.learn(400, callback=callback)
    for metrics in calls:  # whatever the callback saw (and could have checkpointed) was finite
        assert all(math.isfinite(v) for k, v in metrics.items() if k != "explained_variance"), metrics
    agent.close()


def test_a_reward_that_blows_up_stops_dqn_at_the_update_that_sees_it():
    from tlrl.algorithms import DQN

    agent = DQN(BAD_ENV, seed=0, env_kwargs={"after": 60, "what": "reward", "value": 1e30}, loss="mse",
                **TINY["dqn"][1])
    calls, callback = _recording()
    with pytest.raises(NonFiniteError) as err:
        agent.learn(2000, callback=callback)
    message = str(err.value)
    assert "DQN: the update at env step" in message and re.search(r"loss = (inf|nan)", message), message
    step = int(message.split("env step ")[1].split()[0])
    updates = [m for m in calls if m]  # (before learning_starts the callback also runs, with no metrics)
    assert step > 60 and len(updates) == (step - 16) // 4  # every earlier update reached the callback, not this one
    assert all(math.isfinite(m["loss"]) for m in updates)


# ----- env steps ---------------------------------------------------------------------------------------------------
def _learn(kind, env_kwargs, steps=400):
    from tlrl.algorithms import A3C, DQN, PPO
    from tlrl.runner import ApeX

    if kind == "ppo":
        return PPO(BAD_ENV, seed=0, env_kwargs=env_kwargs, **TINY["ppo"][1]).learn(steps)
    if kind == "dqn":
        return DQN(BAD_ENV, seed=0, env_kwargs=env_kwargs, **TINY["dqn"][1]).learn(steps)
    if kind in ("a3c", "a3c-threads"):
        workers = 1 if kind == "a3c" else 2
        agent = A3C(BAD_ENV, seed=0, env_kwargs=env_kwargs, **dict(TINY["a3c"][1], n_workers=workers,
                                                                     backend="thread", max_worker_restarts=5))
        try:
            return agent.learn(steps)
        finally:
            agent.close()
    agent = DQN(BAD_ENV, seed=0, env_kwargs=env_kwargs, **TINY["dqn"][1])
    return ApeX(agent, workers=1, backend="sync", block_steps=8).learn(steps)


@pytest.mark.parametrize("kind, step", [("ppo", 122), ("dqn", 61), ("a3c", 61), ("a3c-threads", 61), ("apex", 61)])
def test_a_nan_observation_stops_every_training_loop_naming_the_env_and_the_step(kind, step):
    # after 60 steps: the 50 steps of `check_env` on the probe env at construction see nothing wrong
    with pytest.raises(NonFiniteError) as err:
        _learn(kind, {"after": 60, "what": "obs"})
    message = str(err.value)
    assert "env 0 of" in message and "nonfinite_envs:GoesBad" in message, message
    assert "non-finite observation" in message and f"at env step {step}." in message, message


@pytest.mark.parametrize("what, value, words, step", [
    ("reward", NAN, "non-finite reward: nan", 61),
    ("reward", -INF, "non-finite reward: -inf", 61),
    ("final_obs", INF, "non-finite final observation: inf", 80),  # only the obs that ends an episode
])
def test_a_nan_reward_or_final_observation_is_reported_with_the_env_and_step(what, value, words, step):
    with pytest.raises(NonFiniteError) as err:
        _learn("dqn", {"after": 60, "what": what, "value": value})
    assert words in str(err.value) and f"at env step {step}." in str(err.value), str(err.value)


def test_the_env_check_skips_integer_observations_and_names_a_dict_key():
    class Vec:
        num_envs = 2

    check_env_step(Vec(), 10, np.array([[1, 2], [3, 4]]), np.zeros(2))
    with pytest.raises(NonFiniteError, match=r"env 1 of 2 \(Vec\) .*key 'pos'.*at env step 10"):
        check_env_step(Vec(), 10, {"pos": np.array([[0.0], [NAN]]), "id": np.array([1, 2])}, np.zeros(2))



@pytest.mark.parametrize("name", ["tlrl.finite", "tlrl.hyperparams", "tlrl.schedules", "tlrl.noise"])
def test_docstring_examples_run(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


@pytest.mark.parametrize("algo", ["PPO", "DQN"])
def test_a_nan_in_the_first_observation_of_the_training_envs_stops_training_before_any_step(algo):
    import tlrl.algorithms
    from nonfinite_envs import BadReset

    agent = getattr(tlrl.algorithms, algo)(BadReset, seed=0)
    BadReset.bad = True
    try:
        with pytest.raises(NonFiniteError, match=r"env 0 of 1 .*observation.*nan at env step 0"):
            agent.learn(64)
    finally:
        BadReset.bad = False
    assert agent.num_timesteps == 0
