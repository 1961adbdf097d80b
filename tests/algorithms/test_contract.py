"""Contract tests run over every agent: one registry, same guarantees.

Every registered algorithm and the composed agent of scripts/compose_agent.py (a user's class, named
`"compose_agent:DiscreteSAC"` as a config would) get a tiny configuration here; an agent class in
algorithms/ that is not in the registry (or an agent without a tiny configuration) fails
`test_every_algorithm_is_registered`.
"""
import importlib
import os
import pkgutil
import sys

import numpy as np
import pytest
import tensorflow as tf

from tlrl.compiled import CompiledCall

from tlrl.algorithms import REGISTRY, get_algorithm

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))  # the composed agent's module, as PYTHONPATH=scripts gives it
COMPOSED = "compose_agent:DiscreteSAC"

# name (registry key or "module:Class") -> (env id, tiny hyperparameters, steps to train)
TINY = {
    "ppo": ("CartPole-v1", dict(n_envs=2, n_steps=16, batch_size=16, n_epochs=2), 64),
    "dqn": ("CartPole-v1", dict(learning_starts=32, buffer_size=500, batch_size=16, train_freq=4, gradient_steps=2,
                                net_arch=[16, 16]), 96),
    "ddpg": ("Pendulum-v1", dict(learning_starts=32, buffer_size=500, batch_size=16, net_arch=[16, 16]), 64),
    "td3": ("Pendulum-v1", dict(learning_starts=32, buffer_size=500, batch_size=16, net_arch=[16, 16]), 64),
    "sac": ("Pendulum-v1", dict(learning_starts=32, buffer_size=500, batch_size=16, net_arch=[16, 16]), 64),
    "a3c": ("CartPole-v1", dict(n_workers=1, n_steps=8, net_arch=[16, 16]), 64),
    COMPOSED: ("CartPole-v1", dict(learning_starts=32, buffer_size=500, batch_size=16, train_freq=4,
                                   gradient_steps=2), 96),
}
AGENTS = sorted(REGISTRY) + [COMPOSED]


def _agent_classes_in_algorithms():
    """(module file, class name) of every agent class defined in algorithms/."""
    from tlrl.agent import BaseAgent

    import tlrl.algorithms as package

    found = []
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"tlrl.algorithms.{info.name}")
        found += [(info.name, name) for name, obj in vars(module).items()
                  if isinstance(obj, type) and issubclass(obj, BaseAgent) and obj.__module__ == module.__name__]
    return found


def test_every_algorithm_is_registered():
    registered = {v.split(":")[1] for v in REGISTRY.values()}
    classes = _agent_classes_in_algorithms()
    assert len(classes) >= len(REGISTRY)
    for file, cls in classes:
        assert cls in registered, f"{cls} in algorithms/{file}.py is not in tlrl.algorithms.REGISTRY"
    assert set(TINY) == set(AGENTS), "every registered algorithm (and the composed agent) needs a tiny config in TINY"


def test_the_composed_agent_resolves_like_a_config_names_it():
    from tlrl.agent import BaseAgent

    assert issubclass(get_algorithm(COMPOSED), BaseAgent)


@pytest.fixture(params=AGENTS)
def algo(request):
    return request.param


def _make(algo, seed=0):
    env_id, hp, steps = TINY[algo]
    return get_algorithm(algo)(env_id, seed=seed, **hp), steps


def _checkpoint_tensors(agent, directory):
    """Every tensor the agent checkpoints, keyed by its checkpoint path (save, then read back)."""
    agent.save(directory)
    reader = tf.train.load_checkpoint(os.path.join(directory, "ckpt", "agent"))
    keys = sorted(k for k in reader.get_variable_to_shape_map() if "OBJECT_GRAPH" not in k)
    return {k: reader.get_tensor(k) for k in keys}


def _assert_same_tensors(a, b, why):
    assert a.keys() == b.keys(), why
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=f"{why}: {k}")


def test_save_load_round_trip_is_bit_exact(algo, tmp_path):
    agent, steps = _make(algo)
    agent.learn(steps)
    obs = np.stack([agent.observation_space.sample() for _ in range(5)])
    before = agent.act(obs, deterministic=True)
    saved = _checkpoint_tensors(agent, str(tmp_path / "a"))
    loaded = type(agent).load(str(tmp_path / "a"))
    np.testing.assert_array_equal(loaded.act(obs, deterministic=True), before)
    assert loaded.num_timesteps == agent.num_timesteps
    _assert_same_tensors(saved, _checkpoint_tensors(loaded, str(tmp_path / "b")), f"{algo} restore != save")


def test_same_seed_gives_identical_training(algo, tmp_path):
    a, steps = _make(algo, seed=3)
    a.learn(steps)
    b, _ = _make(algo, seed=3)
    b.learn(steps)
    _assert_same_tensors(_checkpoint_tensors(a, str(tmp_path / "a")), _checkpoint_tensors(b, str(tmp_path / "b")),
                         f"{algo}: two runs with seed 3 differ")


def test_unknown_hyperparameter_is_named(algo):
    env_id, _, _ = TINY[algo]
    with pytest.raises(TypeError, match="lerning_rate"):
        get_algorithm(algo)(env_id, lerning_rate=0.1)


def test_wrong_type_hyperparameter_is_named(algo):
    env_id, _, _ = TINY[algo]
    with pytest.raises(TypeError, match="gamma"):
        get_algorithm(algo)(env_id, gamma="high")


def test_loading_another_algorithms_save_fails_clearly(algo, tmp_path):
    agent, steps = _make(algo)
    agent.save(str(tmp_path / "a"))
    other = next(n for n in AGENTS if get_algorithm(n) is not type(agent))
    with pytest.raises(ValueError, match=f"holds a {type(agent).__name__} agent"):
        get_algorithm(other).load(str(tmp_path / "a"))


def test_corrupt_checkpoint_fails_clearly(algo, tmp_path):
    agent, steps = _make(algo)
    path = tmp_path / "a"
    agent.save(str(path))
    for f in (path / "ckpt").iterdir():
        if f.name.startswith("agent.data"):
            data = f.read_bytes()
            f.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt|truncated"):
        type(agent).load(str(path))


def _compiled_functions(obj, depth=0, seen=None):
    """Every compiled function reachable from the agent's attributes (three levels deep, through lists and
    dicts), by attribute path: `tf.function`s (which could retrace) and concrete functions (which cannot:
    a new one appearing, e.g. for a new number of gradient steps, is a retrace)."""
    seen = set() if seen is None else seen
    found = {}
    if id(obj) in seen or depth > 3:
        return found
    seen.add(id(obj))
    if isinstance(obj, dict):
        items = [(str(k), v) for k, v in obj.items()]
    elif isinstance(obj, (list, tuple)):
        items = [(str(i), v) for i, v in enumerate(obj)]
    elif hasattr(obj, "__dict__") and type(obj).__module__.startswith(("tlrl", "algorithms", "compose_agent")):
        items = list(vars(obj).items())
    else:
        return found
    for name, value in items:
        if isinstance(value, (tf.types.experimental.ConcreteFunction, CompiledCall)) or \
                hasattr(value, "experimental_get_tracing_count"):
            found[name] = value
        elif not isinstance(value, (np.ndarray, tf.Variable, tf.Tensor)):
            found.update({f"{name}.{k}": v for k, v in _compiled_functions(value, depth + 1, seen).items()})
    return found


def _traces(functions):
    """What changes when something retraces: a tf.function's tracing count; the set of concrete functions."""
    return {k: (f.experimental_get_tracing_count() if hasattr(f, "experimental_get_tracing_count") else id(f))
            for k, f in functions.items()}


def test_no_retracing_in_steady_state(algo):
    agent, steps = _make(algo)
    agent.learn(steps)
    obs = np.stack([agent.observation_space.sample() for _ in range(3)])
    agent.act(obs, deterministic=True)
    agent.act(obs)
    before = _traces(_compiled_functions(agent))
    assert before, f"{algo}: found no compiled function to check"
    agent.learn(2 * steps)
    agent.act(obs, deterministic=True)
    agent.act(obs[0], deterministic=True)
    agent.act(obs)
    after = _traces(_compiled_functions(agent))
    assert after == before, f"{algo} retraced in steady state: {before} -> {after}"


def test_saved_model_export_gives_the_same_actions(algo, tmp_path):
    from tlrl.export import export_saved_model

    agent, steps = _make(algo)
    agent.learn(steps)
    obs = np.stack([agent.observation_space.sample() for _ in range(4)])
    out = export_saved_model(agent, str(tmp_path / "model"))
    served = tf.saved_model.load(out).signatures["serving_default"](observations=tf.constant(obs, tf.float32))
    np.testing.assert_allclose(served["actions"].numpy().reshape(agent.act(obs, True).shape),
                               agent.act(obs, deterministic=True), rtol=1e-5, atol=1e-5)
