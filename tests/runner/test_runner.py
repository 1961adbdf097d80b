"""`tlrl.runner.Runner`: the agent's own loop with envs in subprocesses, the runner of a run config (and its
checks), docstring examples."""
import doctest
import importlib

import numpy as np
import pytest

from tlrl.algorithms import DQN, PPO
from tlrl.config import ConfigError, load_config_text
from tlrl.runner import Runner

from .helpers import child_pids

SMALL_DQN = dict(n_envs=2, learning_starts=64, buffer_size=1000, batch_size=16, train_freq=4, gradient_steps=1,
                 net_arch=(16,), jit_compile=False)
CORRIDOR = "runner.helpers:ShortCorridor"


def test_envs_in_subprocesses_give_the_same_run_as_in_process():
    before = child_pids()

    def run(async_envs):
        agent = DQN("CartPole-v1", seed=4, **SMALL_DQN)
        Runner(agent, backend="sync", async_envs=async_envs).learn(400)
        return agent

    local, remote = run(False), run(True)
    assert remote.num_timesteps == local.num_timesteps == 400
    rows = np.arange(400)
    np.testing.assert_array_equal(remote.store.replay.gather(rows).obs, local.store.replay.gather(rows).obs)
    for a, b in zip(remote.get_weights(), local.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert remote.collector.env is None and child_pids() == before  # the subprocess envs were closed
    remote.learn(8)  # the agent's own (in-process) collector again
    assert remote.num_timesteps == 408 and child_pids() == before


def test_runner_options_are_checked():
    agent = DQN("CartPole-v1", **SMALL_DQN)
    with pytest.raises(ValueError, match="backend must be one of"):
        Runner(agent, backend="processes")
    with pytest.raises(ValueError, match="async_envs=True applies to the agent's own loop"):
        Runner(agent, backend="thread", workers=2, async_envs=True)
    with pytest.raises(TypeError, match="unknown option"):
        Runner(agent, backend="sync", block_steps=4)
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        Runner(agent, backend="sync", workers=0)
    assert Runner(agent, backend="thread").uses_actors  # one actor on a thread
    assert Runner(agent).source is None and not Runner(agent, backend="sync").uses_actors  # its own loop


def _config(algo: str, runner: str, env: str = CORRIDOR, hyper: str = "{}"):
    return load_config_text(f"algo: {algo}\nenv: {{id: \"{env}\"}}\ntotal_steps: 1000\nhyperparameters: {hyper}\n"
                            f"runner: {runner}\n", "run.yaml")


def test_from_config_builds_ape_x_actors_with_their_options():
    config = _config("dqn", "{backend: sync, workers: 2, block_steps: 8, pull_every: 16, exploration: agent}")
    assert config.hyperparameters == {}  # runner keys configure the runner, not the algorithm
    agent = DQN(CORRIDOR, seed=0, learning_starts=32, buffer_size=500, batch_size=8, net_arch=(8,), jit_compile=False)
    runner = Runner.from_config(agent, config.runner)
    assert runner.uses_actors and runner.apex.workers == 2 and runner.apex.block_steps == 8
    assert runner.apex.pull_every == 16 and runner.apex.epsilons == [None, None]
    runner.learn(64)
    assert agent.num_timesteps == 64 and len(agent.store.replay) == 64
    own = Runner.from_config(agent, _config("dqn", "{}").runner)  # nothing set: the agent's own loop
    assert own.source is None and not own.async_envs
    assert Runner.from_config(agent, _config("dqn", "{async_envs: true}").runner).async_envs


def test_runner_config_errors_name_the_key_its_line_and_the_fix():
    def error_of(algo, runner):
        with pytest.raises(ConfigError) as info:
            _config(algo, runner)
        return str(info.value)

    msg = error_of("ppo", "{workers: 2}")
    assert msg.startswith("run.yaml, line 5: runner.workers is not supported by PPO") and "n_envs" in msg
    msg = error_of("ppo", "{backend: process}")
    assert "runner.backend 'process' is not supported by PPO" in msg and "async_envs" in msg
    msg = error_of("dqn", "{block_steps: 8}")  # no workers: the agent's own loop
    assert "runner.block_steps is an Ape-X option" in msg and "its own loop" in msg and "remove it" in msg
    assert "runner.pull_every is an Ape-X option" in error_of("ppo", "{pull_every: 8}")
    msg = error_of("dqn", "{backend: thread, async_envs: true}")
    assert "runner.async_envs applies to an algorithm's own loop" in msg and "Ape-X actors" in msg
    assert "runner.worker_timeout applies to workers" in error_of("dqn", "{worker_timeout: 5}")
    assert "must be a positive number of seconds" in error_of("dqn", "{backend: thread, worker_timeout: 0}")
    msg = error_of("dqn", "{backend: process, ray_address: auto}")
    assert "runner.ray_address applies to runner.backend 'ray'" in msg and "set runner.backend: ray" in msg
    msg = error_of("dqn", "{backend: thread, exploration: greedy}")
    assert msg.startswith("run.yaml, line 5: runner.exploration must be one of 'apex', 'agent' or null, got 'greedy'")
    assert "runner.workers must be >= 1" in error_of("dqn", "{workers: 0}")
    with pytest.raises(ConfigError, match=r"--set runner.block_steps: runner.block_steps is an Ape-X option"):
        load_config_text("algo: td3\nenv: Pendulum-v1\ntotal_steps: 100\n", "run.yaml", ["runner.block_steps=4"])
    for algo, env in (("ddpg", "Pendulum-v1"), ("td3", "Pendulum-v1"), ("sac", "Pendulum-v1")):  # every replay agent
        assert _config(algo, "{backend: process, workers: 2, block_steps: 4}", env=env).runner.workers == 2


def test_tlrl_train_runs_ape_x_actor_processes_from_the_runner_section(tmp_path):
    from tlrl.logger import read_metrics
    from tlrl.run_dir import prepare_new
    from tlrl.training import run_training

    before = child_pids()
    config = load_config_text(f"""
algo: dqn
env: {{id: "{CORRIDOR}"}}
total_steps: 512
seed: 0
runner: {{backend: process, workers: 2, block_steps: 16}}
hyperparameters: {{learning_starts: 64, buffer_size: 1000, batch_size: 16, train_freq: 8, net_arch: [16]}}
checkpoint: {{every_steps: 256}}
log: {{progress: false, tensorboard: false, interval: 64}}
eval: {{episodes: 2}}
""")
    run = prepare_new(config, str(tmp_path / "run"))
    summary = run_training(run, progress=False)
    assert summary["num_timesteps"] >= 512 and len(run.agent.store.replay) == summary["num_timesteps"]
    assert run.agent.n_updates > 0 and child_pids() == before  # the actor processes were stopped
    rows = read_metrics(str(tmp_path / "run" / "metrics.csv"))
    assert any(row.get("worker_restarts") == 0 for row in rows), "not trained by Ape-X actors (no worker_restarts)"


def test_ppo_has_no_workers():
    with pytest.raises(TypeError, match="PPO has no asynchronous workers"):
        Runner(PPO("CartPole-v1", n_steps=16, batch_size=16), backend="thread", workers=2)


@pytest.mark.parametrize("name", ["tlrl.runner", "tlrl.runner.pools", "tlrl.runner.apex", "tlrl.runner.apex_actor",
                                  "tlrl.runner.gradient", "tlrl.runner.learner", "tlrl.runner.flat"])
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
