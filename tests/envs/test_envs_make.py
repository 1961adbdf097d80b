"""make_env / make_vector_env: every kind of spec, clear errors for bad ones, SAME_STEP vector envs."""
import importlib

import gymnasium as gym
import numpy as np
import pytest
from conftest import user_module_on_path
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv

from tlrl.envs import CatchEnv, EnvSpecError, GridWorldEnv, check_env, make_env, make_vector_env

USER_MODULE = "tlrl_test_user_envs"
USER_MODULE_SOURCE = '''
"""A user's env package, as a user would write it (it knows nothing about tlrl)."""
import gymnasium as gym
import numpy as np
from gymnasium import spaces


class CounterEnv(gym.Env):
    """Observation: steps left, as float32; any action counts down; ends at 0."""

    metadata = {"render_modes": []}

    def __init__(self, start=5, scale=1.0):
        self.start, self.scale = start, scale
        self.observation_space = spaces.Box(0.0, 100.0, (1,), np.float32)
        self.action_space = spaces.Discrete(2)
        self._left = start

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._left = self.start + int(self.np_random.integers(3))
        return np.array([self._left], np.float32), {}

    def step(self, action):
        self._left -= 1
        return np.array([self._left], np.float32), self.scale * float(action), self._left <= 0, False, {}


def make_counter(start=5):
    return CounterEnv(start=start)


if "tlrl_test_user/Counter-v0" not in gym.registry:
    gym.register(id="tlrl_test_user/Counter-v0", entry_point=CounterEnv, max_episode_steps=20)
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A user module on sys.path (spawned workers inherit sys.path, so they can import it too)."""
    yield from user_module_on_path(tmp_path, monkeypatch, USER_MODULE, USER_MODULE_SOURCE)


# ----- every kind of spec -------------------------------------------------------------------------
def test_registered_id_with_kwargs_makes_a_time_limited_env():
    env = make_env("tlrl/GridWorld-v0", {"size": 3})
    assert env.observation_space.shape == (9,) and env.spec.max_episode_steps == 100
    assert make_env("CartPole-v1").action_space == gym.spaces.Discrete(2)


def test_module_class_string_imports_the_module_and_passes_kwargs(user_module):
    env = make_env(f"{user_module}:CounterEnv", {"start": 7, "scale": 2.0})
    assert type(env).__name__ == "CounterEnv" and env.start == 7 and env.scale == 2.0
    check_env(env)


def test_module_registered_id_string_and_a_python_factory_function_work(user_module):
    # A function is passed as an object; as a string it is refused (tests/envs/test_env_spec_security.py).
    assert make_env(importlib.import_module(user_module).make_counter, {"start": 9}).start == 9
    env = make_env(f"{user_module}:tlrl_test_user/Counter-v0", {"start": 2})
    assert env.spec.id == "tlrl_test_user/Counter-v0" and env.unwrapped.start == 2


def test_env_instance_is_returned_as_is():
    env = GridWorldEnv(size=3)
    assert make_env(env) is env


def test_factory_callables_with_and_without_kwargs():
    assert make_env(lambda: GridWorldEnv(size=3)).size == 3
    assert make_env(GridWorldEnv, {"size": 4}).size == 4
    assert make_env(lambda size=2: GridWorldEnv(size=size), {"size": 6}).size == 6
    assert make_env(CatchEnv, render_mode="rgb_array").render_mode == "rgb_array"


def test_config_mapping_and_env_spec_objects_work():
    env = make_env({"id": "tlrl/Catch-v0", "kwargs": {"rows": 6}})
    assert env.observation_space.shape == (6, 10, 1)
    assert make_env(gym.spec("tlrl/GridWorld-v0"), {"size": 3}).observation_space.shape == (9,)


# ----- bad specs ----------------------------------------------------------------------------------
@pytest.mark.parametrize("bad, suggestion", [
    ("tlrl/GridWorld-v1", "tlrl/GridWorld-v0"),
    ("tlrl/Gridworld-v0", "tlrl/GridWorld-v0"),
    ("CartPol-v1", "CartPole-v1"),
    ("PointMass", "tlrl/PointMass-v0"),
])
def test_unknown_id_lists_close_registered_ids(bad, suggestion):
    with pytest.raises(EnvSpecError) as info:
        make_env(bad)
    message = str(info.value)
    assert f"Unknown environment id {bad!r}" in message
    assert "Did you mean" in message and repr(suggestion) in message
    assert "package.module:Class" in message
    assert isinstance(info.value, ValueError)


def test_unimportable_module_says_how_to_make_it_importable():
    with pytest.raises(EnvSpecError, match=r"Could not import module 'no_such_pkg_tlrl\.envs'.*pip install -e \."):
        make_env("no_such_pkg_tlrl.envs:MyEnv")


def test_missing_class_suggests_close_names(user_module):
    with pytest.raises(EnvSpecError, match=r"has no attribute 'CounterEnb'.*Did you mean: CounterEnv"):
        make_env(f"{user_module}:CounterEnb")


def test_kwargs_the_factory_does_not_take_are_named():
    with pytest.raises(EnvSpecError, match=r"keyword arguments \['size'\].*signature is \(\)"):
        make_env(lambda: GridWorldEnv(), {"size": 3})
    with pytest.raises(EnvSpecError, match=r"\['colour'\]"):
        make_env(GridWorldEnv, {"colour": "red"})


def test_kwargs_for_an_instance_are_rejected():
    with pytest.raises(EnvSpecError, match="cannot be applied to an env instance"):
        make_env(GridWorldEnv(), {"size": 3})


@pytest.mark.parametrize("bad", [42, None, ["tlrl/GridWorld-v0"], "just:", {"name": "x"}])
def test_specs_of_the_wrong_type_or_form_list_the_accepted_forms(bad):
    with pytest.raises(EnvSpecError) as info:
        make_env(bad)
    assert any(w in str(info.value) for w in ("registered id", "package.module:Class", "'id'"))


# ----- vector envs --------------------------------------------------------------------------------
def test_vector_env_uses_same_step_autoreset_and_reports_final_obs():
    venv = make_vector_env("tlrl/Catch-v0", 2, seed=0)
    assert isinstance(venv, SyncVectorEnv)
    assert venv.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    obs, _ = venv.reset(seed=0)
    for t in range(9):  # Catch ends exactly when the ball lands, after 9 steps
        obs, reward, terminated, truncated, info = venv.step(np.ones(2, np.int64))
        if t < 8:
            assert "final_obs" not in info
    assert terminated.all() and not truncated.any() and set(reward) <= {-1.0, 1.0}
    assert info["_final_obs"].all()
    for i in range(2):
        final = info["final_obs"][i]
        assert final[9].sum() == 2 * 255 or final[9].sum() == 255  # ball on the bottom row (on the paddle or not)
        assert final[0].sum() == 0
        assert obs[i, 0].sum() == 255  # already the first observation of the next episode: ball on top
    venv.close()


def test_vector_env_seeds_env_i_with_seed_plus_i():
    venv = make_vector_env("tlrl/PointMass-v0", 3, seed=10)
    obs, _ = venv.reset(seed=10)
    for i in range(3):
        np.testing.assert_array_equal(obs[i], make_env("tlrl/PointMass-v0").reset(seed=10 + i)[0])
    first, _ = make_vector_env("tlrl/PointMass-v0", 3, seed=10).reset()
    second, _ = make_vector_env("tlrl/PointMass-v0", 3, seed=10).reset()
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first[0], first[1])
    a = make_vector_env("tlrl/PointMass-v0", 2, seed=1).action_space.sample()
    b = make_vector_env("tlrl/PointMass-v0", 2, seed=1).action_space.sample()
    np.testing.assert_array_equal(a, b)


def test_vector_env_from_user_class_and_factory(user_module):
    venv = make_vector_env(f"{user_module}:CounterEnv", 2, seed=0, kwargs={"start": 3})
    obs, _ = venv.reset()
    assert obs.shape == (2, 1)
    assert make_vector_env(lambda: CatchEnv(rows=5), 2).single_observation_space.shape == (5, 10, 1)


def test_instance_spec_works_only_for_one_synchronous_env():
    env = GridWorldEnv()
    venv = make_vector_env(env, 1, seed=0)
    assert venv.envs[0] is env
    with pytest.raises(EnvSpecError, match="n_envs=2 copies cannot be made from one env instance"):
        make_vector_env(GridWorldEnv(), 2)
    with pytest.raises(EnvSpecError, match="asynchronous=True cannot use an env instance"):
        make_vector_env(GridWorldEnv(), 1, asynchronous=True)


def test_asynchronous_rejects_unpicklable_factories_with_a_fix():
    with pytest.raises(EnvSpecError, match=r"cannot be pickled.*not a lambda"):
        make_vector_env(lambda: GridWorldEnv(), 2, asynchronous=True)


@pytest.mark.parametrize("n_envs", [0, -1, 1.5, True])
def test_bad_n_envs_is_rejected(n_envs):
    with pytest.raises(ValueError, match="n_envs must be a positive integer"):
        make_vector_env("tlrl/GridWorld-v0", n_envs)


def _trajectory(venv, actions):
    try:
        out = [venv.reset()[0]]
        for a in actions:
            out.extend(venv.step(a)[:4])
        return out
    finally:
        venv.close()


def test_async_spawn_worker_registers_tlrl_ids_and_matches_sync():
    # One worker keeps the test quick: each spawned worker pays for importing tlrl.
    actions = np.array([[1], [1], [2], [2], [0]])
    kwargs = {"size": 3, "slippery": 0.3}
    venv = make_vector_env("tlrl/GridWorld-v0", 1, seed=5, kwargs=kwargs, asynchronous=True)
    assert isinstance(venv, AsyncVectorEnv) and venv.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    got = _trajectory(venv, actions)
    expected = _trajectory(make_vector_env("tlrl/GridWorld-v0", 1, seed=5, kwargs=kwargs), actions)
    for u, v in zip(got, expected):
        np.testing.assert_array_equal(u, v)


def test_async_spawn_workers_import_a_module_class_spec(user_module):
    venv = make_vector_env(f"{user_module}:CounterEnv", 1, seed=0, kwargs={"start": 2}, asynchronous=True)
    try:
        assert isinstance(venv, AsyncVectorEnv)
        obs, _ = venv.reset(seed=0)
        assert obs.shape == (1, 1) and 2 <= obs[0, 0] <= 4
        for _ in range(5):
            obs, reward, terminated, truncated, info = venv.step(np.array([1]))
            if terminated[0]:
                break
        assert terminated[0] and info["final_obs"][0][0] == 0.0
    finally:
        venv.close()
