"""Opening a run directory, a saved agent or a config never runs code named in it: `tlrl eval/export/train
--resume` take the env from the validated config.yaml and refuse an agent.json that disagrees; the `tlrl`
command finds env modules in the current directory like `python -m`, with plain errors."""
import glob
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from .conftest import tiny_config, train_tiny_run
from tlrl.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BROKEN_ENV = '''
import gymnasium as gym


class BrokenEnv(gym.Env):
    def __init__(self, length: int = 8):
        self.observation_space = self.spaces_not_set_yet
'''


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    return train_tiny_run(tmp_path_factory, "ppo", total_steps=128, every=64, interval=64)


def _edit_agent_json(run, **changes):
    files = glob.glob(os.path.join(run, "checkpoints", "step_*", "agent", "agent.json"))
    assert files
    for file in files:
        with open(file) as fh:
            meta = json.load(fh)
        meta.update(changes)
        with open(file, "w") as fh:
            json.dump(meta, fh)


def _command(name, run):
    return {"eval": ["eval", str(run)], "export": ["export", str(run)],
            "resume": ["train", "--resume", str(run), "--no-progress"]}[name]


# ----- a run directory whose agent.json names a function ------------------------------------------------------
@pytest.mark.parametrize("command", ["eval", "export", "resume"])
def test_an_agent_json_naming_a_function_is_refused_and_never_called(command, finished_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    marker = tmp_path / "MARKER"
    _edit_agent_json(run, env="subprocess:run", env_kwargs={"args": ["sh", "-c", f"touch {marker}"]})
    assert main(_command(command, run)) == 2
    err = capsys.readouterr().err
    assert "'subprocess:run'" in err and "'CartPole-v1'" in err and "config.yaml" in err
    assert "Traceback" not in err
    assert not marker.exists()


@pytest.mark.parametrize("env, env_kwargs", [("CartPole-v1", {"sutton_barto_reward": True}),
                                             ("tlrl/GridWorld-v0", {})])
def test_an_agent_json_whose_env_disagrees_with_the_config_is_refused(env, env_kwargs, finished_run, tmp_path,
                                                                      capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    _edit_agent_json(run, env=env, env_kwargs=env_kwargs)
    assert main(["eval", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"{env!r}" in err and f"{env_kwargs}" in err and "'CartPole-v1' (kwargs {})" in err
    assert "disagree" in err and "Traceback" not in err


def test_an_agent_json_whose_hyperparameters_disagree_with_the_config_is_refused(finished_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    for path in glob.glob(os.path.join(run, "checkpoints", "step_*", "agent", "agent.json")):
        with open(path) as fh:
            meta = json.load(fh)
        meta["config"]["gamma"] = 0.5
        with open(path, "w") as fh:
            json.dump(meta, fh)
    assert main(["eval", str(run)]) == 2
    err = capsys.readouterr().err
    assert "gamma" in err and "disagree" in err and "Traceback" not in err


def _edit_agent_config(run, edit):
    for path in glob.glob(os.path.join(run, "checkpoints", "step_*", "agent", "agent.json")):
        with open(path) as fh:
            meta = json.load(fh)
        edit(meta)
        with open(path, "w") as fh:
            json.dump(meta, fh)


def test_an_agent_json_from_before_a_hyperparameter_existed_still_loads(finished_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    _edit_agent_config(run, lambda meta: meta["config"].pop("gae_lambda"))  # as written by an older tlrl
    assert main(["eval", str(run), "--episodes", "1"]) == 0
    capsys.readouterr()
    with open(run / "config.yaml") as fh:  # but not when the run's config set that hyperparameter otherwise
        text = fh.read()
    (run / "config.yaml").write_text(text.replace("hyperparameters:", "hyperparameters:\n  gae_lambda: 0.5", 1))
    assert main(["eval", str(run), "--episodes", "1"]) == 2
    assert "gae_lambda" in capsys.readouterr().err


def test_an_agent_json_cannot_skip_the_check_by_listing_hyperparameters_as_unsaved_functions(finished_run, tmp_path,
                                                                                          capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)

    def edit(meta):
        meta["config"]["gamma"] = 0.5
        meta["callables_not_saved"] = ["gamma"]

    _edit_agent_config(run, edit)
    assert main(["eval", str(run)]) == 2
    err = capsys.readouterr().err
    assert "['gamma'] were not saved" in err and "disagree" in err


def test_an_untouched_run_still_evaluates_and_exports(finished_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    assert main(["eval", str(run), "--episodes", "1"]) == 0
    assert main(["export", str(run)]) == 0


# ----- a saved agent outside a run directory -------------------------------------------------------------------
def test_algo_load_of_a_saved_agent_resolves_its_env_string_safely(tmp_path):
    from tlrl.algorithms import PPO
    from tlrl.envs import EnvSpecError

    agent = PPO("CartPole-v1", seed=0, n_envs=1, n_steps=8, batch_size=8, net_arch=(8,), jit_compile=False)
    agent.save(str(tmp_path / "agent"))
    assert PPO.load(str(tmp_path / "agent")).num_timesteps == 0
    marker = tmp_path / "MARKER"
    with open(tmp_path / "agent" / "agent.json") as fh:
        meta = json.load(fh)
    meta.update(env="subprocess:run", env_kwargs={"args": ["sh", "-c", f"touch {marker}"]})
    with open(tmp_path / "agent" / "agent.json", "w") as fh:
        json.dump(meta, fh)
    with pytest.raises(EnvSpecError, match=r"'subprocess:run' names a function, not a gymnasium.Env subclass"):
        PPO.load(str(tmp_path / "agent"))
    meta.update(env={"id": "subprocess:run"})
    with open(tmp_path / "agent" / "agent.json", "w") as fh:
        json.dump(meta, fh)
    with pytest.raises(ValueError, match="'env' must be a string or null"):
        PPO.load(str(tmp_path / "agent"))
    assert not marker.exists()


# ----- configs ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id, kwargs", [("subprocess:run", "{args: [sh, -c, 'touch MARKER']}"),
                                            ("os:system", "{command: 'touch MARKER'}")])
def test_train_refuses_a_config_env_naming_a_function(env_id, kwargs, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    config = tiny_config("ppo").replace("id: CartPole-v1", f"id: {env_id}\n  kwargs: {kwargs}")
    (tmp_path / "config.yaml").write_text(config)
    assert main(["train", "config.yaml", "--run-dir", "run", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{env_id!r} names a function, not a gymnasium.Env subclass" in err and "Traceback" not in err
    assert not (tmp_path / "MARKER").exists() and os.listdir(tmp_path / "run") == ["error.txt"]


def test_an_env_whose_constructor_raises_is_a_plain_error(tmp_path, monkeypatch, capsys):
    (tmp_path / "tlrl_test_broken_env.py").write_text(BROKEN_ENV)
    monkeypatch.syspath_prepend(str(tmp_path))
    config = tiny_config("ppo").replace("id: CartPole-v1", "id: 'tlrl_test_broken_env:BrokenEnv'")
    (tmp_path / "config.yaml").write_text(config)
    try:
        assert main(["train", str(tmp_path / "config.yaml"), "--run-dir", str(tmp_path / "run"),
                     "--no-progress"]) == 2
    finally:
        sys.modules.pop("tlrl_test_broken_env", None)
    err = capsys.readouterr().err
    assert "'tlrl_test_broken_env:BrokenEnv'" in err and "AttributeError" in err and "spaces_not_set_yet" in err
    assert "Traceback" not in err


# ----- the tlrl command finds env modules in the current directory --------------------------------------------------
def _tlrl_command():
    """The installed console script (which, unlike `python -m`, does not put the current directory on
    sys.path by itself), or `python -P -m tlrl`, which behaves the same."""
    script = os.path.join(os.path.dirname(sys.executable), "tlrl")
    return [script] if os.path.isfile(script) else [sys.executable, "-P", "-m", "tlrl"]


def _readme_custom_env():
    """The README's `mypkg/envs.py` and the `env:` section of its YAML custom-env example."""
    with open(os.path.join(ROOT, "README.md")) as fh:
        readme = fh.read()
    module = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if b.startswith("# mypkg/envs.py"))
    env = next(b for b in re.findall(r"```yaml\n(.*?)```", readme, re.S) if "mypkg.envs:MyEnv" in b)
    return module, env


def test_the_readme_custom_env_config_runs_from_the_folder_that_holds_mypkg(tmp_path):
    module, env_section = _readme_custom_env()
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "mypkg" / "envs.py").write_text(module)
    rest = tiny_config("ppo", total_steps=64, every=64, interval=64).split("hyperparameters:", 1)[1]
    rest = rest.replace("deterministic: true", "deterministic: false")  # MyEnv has no time limit
    (tmp_path / "ok.yaml").write_text("algo: ppo\n" + env_section + "hyperparameters:" + rest)
    (tmp_path / "missing.yaml").write_text("algo: ppo\n" + env_section.replace("mypkg", "otherpkg")
                                           + "hyperparameters:" + rest)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    ok = subprocess.run(_tlrl_command() + ["train", "ok.yaml", "--run-dir", "run", "--no-progress"], cwd=tmp_path,
                        env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["env"] == "mypkg.envs:MyEnv"
    missing = subprocess.run(_tlrl_command() + ["train", "missing.yaml", "--run-dir", "run2", "--no-progress"],
                             cwd=tmp_path, env=env, capture_output=True, text=True)
    assert missing.returncode == 2
    assert "Could not import module 'otherpkg.envs'" in missing.stderr
    assert f"current directory ({tmp_path})" in missing.stderr and "PYTHONPATH (not set)" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_an_agent_json_naming_another_algorithm_is_refused(finished_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    _edit_agent_json(run, algo="os:system")
    assert main(["eval", str(run)]) == 2
    err = capsys.readouterr().err
    assert "holds a os:system agent, not PPO" in err and "Traceback" not in err
