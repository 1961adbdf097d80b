"""A string env spec (from a config, agent.json or Python) resolves only to a gymnasium.Env subclass or a
registered id, checked before anything is called; factories stay available as Python objects."""
import os
import sys
import textwrap

import gymnasium as gym
import pytest
from conftest import user_module_on_path

from tlrl.config import ConfigError, load_config_text
from tlrl.envs import EnvSpecError, GridWorldEnv, make_env, make_vector_env, resolve_env_id

MODULE = "tlrl_test_spec_envs"
SOURCE = '''
import gymnasium as gym
import numpy as np
from gymnasium import spaces


class LineEnv(gym.Env):
    def __init__(self, length=4):
        self.length = length
        self.observation_space = spaces.Box(0.0, 1.0, (1,), np.float32)
        self.action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action):
        return np.zeros(1, np.float32), 0.0, True, False, {}


class BrokenEnv(gym.Env):
    def __init__(self):
        self.observation_space = self.no_such_attribute


def make_line(length=4):
    return LineEnv(length)


LINE = LineEnv()

if "tlrl_test_spec/Line-v0" not in gym.registry:
    gym.register(id="tlrl_test_spec/Line-v0", entry_point=LineEnv, max_episode_steps=10)
'''


@pytest.fixture
def spec_module(tmp_path, monkeypatch):
    yield from user_module_on_path(tmp_path, monkeypatch, MODULE, SOURCE)


# ----- what a string may name ----------------------------------------------------------------------
@pytest.mark.parametrize("spec, kwargs, found", [
    ("subprocess:run", "args", "a function"),
    ("os:system", "command", "a function"),
])
def test_a_string_naming_a_function_is_refused_before_it_is_called(spec, kwargs, found, tmp_path):
    marker = tmp_path / "MARKER"
    value = ["sh", "-c", f"touch {marker}"] if kwargs == "args" else f"touch {marker}"
    with pytest.raises(EnvSpecError) as info:
        make_env(spec, {kwargs: value})
    message = str(info.value)
    assert f"{spec!r} names {found}, not a gymnasium.Env subclass" in message
    assert "registered Gymnasium id" in message and "from Python" in message
    assert not marker.exists()


def test_a_class_that_is_not_an_env_is_refused():
    with pytest.raises(EnvSpecError, match=r"'collections:OrderedDict' names the class collections.OrderedDict, "
                                           r"not a gymnasium.Env subclass"):
        make_env("collections:OrderedDict")


def test_a_string_naming_an_env_instance_or_factory_function_is_refused(spec_module):
    with pytest.raises(EnvSpecError, match=r"names a LineEnv object, not a gymnasium.Env subclass"):
        make_env(f"{spec_module}:LINE")
    with pytest.raises(EnvSpecError, match=r"names a function, not a gymnasium.Env subclass"):
        make_env(f"{spec_module}:make_line", {"length": 3})


def test_vector_envs_refuse_a_bad_string_in_the_parent_before_any_worker_starts(tmp_path):
    marker = tmp_path / "MARKER"
    for asynchronous in (False, True):
        with pytest.raises(EnvSpecError, match="names a function"):
            make_vector_env("subprocess:run", 1, kwargs={"args": ["sh", "-c", f"touch {marker}"]},
                            asynchronous=asynchronous)
    assert not marker.exists()


def test_env_classes_registered_ids_and_python_factories_still_work(spec_module):
    module = sys.modules.get(spec_module) or __import__(spec_module)
    assert resolve_env_id(f"{spec_module}:LineEnv") is module.LineEnv
    assert make_env(f"{spec_module}:LineEnv", {"length": 7}).length == 7
    assert resolve_env_id(f"{spec_module}:tlrl_test_spec/Line-v0") == "tlrl_test_spec/Line-v0"
    assert make_env(f"{spec_module}:tlrl_test_spec/Line-v0").spec.max_episode_steps == 10
    assert resolve_env_id("CartPole-v1") == "CartPole-v1"
    assert make_env(module.make_line, {"length": 5}).length == 5
    assert make_env(lambda: GridWorldEnv(size=3)).size == 3
    assert make_env(module.LINE) is module.LINE


def test_a_nested_class_is_read_without_running_descriptors(spec_module, tmp_path):
    (tmp_path / "tlrl_test_spec_nested.py").write_text(textwrap.dedent('''
        import gymnasium as gym

        class Holder:
            class Inner(gym.Env):
                pass

            @property
            def boom(self):
                raise RuntimeError("ran")

            @classmethod
            def factory(cls):
                raise RuntimeError("ran")
    '''))
    try:
        assert resolve_env_id("tlrl_test_spec_nested:Holder.Inner").__name__ == "Inner"
        with pytest.raises(EnvSpecError, match="names a property object"):
            resolve_env_id("tlrl_test_spec_nested:Holder.boom")
        with pytest.raises(EnvSpecError, match="names a classmethod object"):
            resolve_env_id("tlrl_test_spec_nested:Holder.factory")
    finally:
        sys.modules.pop("tlrl_test_spec_nested", None)


# ----- clear errors --------------------------------------------------------------------------------
def test_a_constructor_that_raises_names_the_spec_and_the_original_error(spec_module):
    with pytest.raises(EnvSpecError) as info:
        make_env(f"{spec_module}:BrokenEnv")
    message = str(info.value)
    assert f"'{spec_module}:BrokenEnv'" in message
    assert "AttributeError" in message and "no_such_attribute" in message
    assert isinstance(info.value.__cause__, AttributeError)


def test_an_import_failure_says_where_python_searched(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", "/somewhere/else")
    with pytest.raises(EnvSpecError) as info:
        make_env("no_such_pkg_tlrl_sec.envs:MyEnv")
    message = str(info.value)
    assert "Could not import module 'no_such_pkg_tlrl_sec.envs'" in message
    assert f"current directory ({os.getcwd()})" in message and "PYTHONPATH (/somewhere/else)" in message


def test_a_module_that_fails_while_importing_is_named(tmp_path, monkeypatch):
    (tmp_path / "tlrl_test_spec_syntax.py").write_text("def broken(:\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(EnvSpecError, match=r"Importing module 'tlrl_test_spec_syntax'.*SyntaxError"):
        make_env("tlrl_test_spec_syntax:MyEnv")


def test_a_module_that_exits_while_importing_is_an_env_spec_error_not_an_exit(tmp_path, monkeypatch):
    (tmp_path / "tlrl_test_spec_exits.py").write_text("raise SystemExit(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(EnvSpecError, match=r"Importing module 'tlrl_test_spec_exits'.*SystemExit"):
        make_env("tlrl_test_spec_exits:MyEnv")


@pytest.mark.parametrize("spec", ["venv.__main__:X", "unittest.__main__:TestProgram"])
def test_a_main_module_is_refused_before_it_is_imported(spec):
    import sys

    module = spec.split(":")[0]
    sys.modules.pop(module, None)
    with pytest.raises(EnvSpecError, match="__main__ module"):
        make_env(spec)
    assert module not in sys.modules  # never imported: importing it would run the program


# ----- configs use the same resolver ---------------------------------------------------------------
@pytest.mark.parametrize("env_id, kwargs, found", [
    ("subprocess:run", "{args: [sh, -c, 'touch MARKER']}", "a function"),
    ("os:system", "{command: 'touch MARKER'}", "a function"),
    ("collections:OrderedDict", "{}", "the class collections.OrderedDict"),
])
def test_a_config_env_id_naming_anything_but_an_env_class_is_a_config_error(env_id, kwargs, found, tmp_path,
                                                                             monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = f"algo: ppo\nenv:\n  id: {env_id}\n  kwargs: {kwargs}\ntotal_steps: 100\n"
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "run.yaml")
    message = str(info.value)
    assert "line 3" in message and f"{env_id!r} names {found}, not a gymnasium.Env subclass" in message
    assert not (tmp_path / "MARKER").exists()


def test_a_config_may_name_an_env_class_or_a_module_registered_id(spec_module):
    for env_id in (f"{spec_module}:LineEnv", f"{spec_module}:tlrl_test_spec/Line-v0"):
        config = load_config_text(f"algo: ppo\nenv:\n  id: '{env_id}'\ntotal_steps: 100\n", "run.yaml")
        assert config.env.id == env_id
    assert "tlrl_test_spec/Line-v0" in gym.registry


@pytest.mark.parametrize("algo, message", [
    ("subprocess.run", r"unknown algorithm .* Available: a3c, ddpg, dqn, ppo, sac, td3"),
    ("os:system", r"'os:system' names a function, not a tlrl agent class"),  # more in tests/test_compose_agent.py
])
def test_a_config_algo_resolves_only_to_a_registered_name_or_an_agent_class(algo, message):
    with pytest.raises(ConfigError, match=r"line 1: .*" + message):
        load_config_text(f"algo: '{algo}'\nenv: CartPole-v1\ntotal_steps: 100\n", "run.yaml")
