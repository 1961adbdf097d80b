"""`tlrl.runner.Runner`: the agent's own loop with envs in subprocesses; docstring examples."""
import doctest
import importlib

import numpy as np
import pytest

from tlrl.algorithms import DQN
from tlrl.runner import Runner

from .helpers import child_pids

SMALL_DQN = dict(n_envs=2, learning_starts=64, buffer_size=1000, batch_size=16, train_freq=4, gradient_steps=1,
                 net_arch=(16,), jit_compile=False)


def test_envs_in_subprocesses_give_the_same_run_as_in_process():
    before = child_pids()

    def run(async_envs):
        agent = DQN("CartPole-v1", seed=4, **SMALL_DQN)
        Runner(agent, backend="sync", async_envs=async_envs).learn(400)
        return agent

    local, remote = run(False), run(True)
    assert remote.num_timesteps == local.num_timesteps == 400
    np.testing.assert_array_equal(remote.replay._obs, local.replay._obs)
    for a, b in zip(remote.q_net.trainable_variables, local.q_net.trainable_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert remote.env is None and child_pids() == before  # the subprocess envs were closed


def test_runner_options_are_checked():
    agent = DQN("CartPole-v1", **SMALL_DQN)
    with pytest.raises(ValueError, match="backend must be one of"):
        Runner(agent, backend="processes")
    with pytest.raises(ValueError, match="async_envs=True applies to the agent's own loop"):
        Runner(agent, backend="thread", workers=2, async_envs=True)
    with pytest.raises(TypeError, match="unknown option"):
        Runner(agent, backend="sync", block_steps=4)
    assert Runner(agent, backend="thread").uses_actors  # one actor on a thread


@pytest.mark.parametrize("name", ["tlrl.runner", "tlrl.runner.pools", "tlrl.runner.apex", "tlrl.runner.apex_actor", "tlrl.runner.gradient",
                                  "tlrl.workers.learner", "tlrl.workers.flat"])
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
