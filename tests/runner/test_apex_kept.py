"""Kept Ape-X actors (`keep_workers=True`): one pool serves every `learn` call until `close()`."""
import threading

import numpy as np
import pytest

from tlrl.runner import ApeX, OffPolicyActor, Runner

from .helpers import alive, child_pids
from .test_apex import _dqn  # the tiny DQN on the custom corridor env


def test_kept_actor_processes_serve_every_learn_call_until_close():
    before = child_pids()
    agent = _dqn()
    apex = ApeX(agent, workers=2, backend="process", block_steps=16, keep_workers=True)
    assert apex.start_workers() > 0 and apex.start_workers() == 0.0  # the second call finds them running
    pool = apex.pool
    pids = [pool.info(i)["pid"] for i in range(2)]
    assert all(alive(p) for p in pids) and pool.completed == [1, 1]  # each took the weights, nothing else yet
    apex.learn(256)
    apex.learn(256)  # the same processes, not new ones
    assert apex.pool is pool and [pool.info(i)["pid"] for i in range(2)] == pids and all(alive(p) for p in pids)
    # 512 env steps in blocks of 16 vector steps x 1 env, plus the two weight loads
    assert agent.num_timesteps == 512 and sum(pool.completed) == 2 + 512 // 16 and len(agent.store.replay) == 512
    assert agent.n_updates > 0
    apex.close()
    assert child_pids() == before and not any(alive(p) for p in pids)


def test_kept_actors_take_the_learners_weights_at_each_learn_call(monkeypatch):
    received = []
    original = OffPolicyActor.set_weights

    def recording(self, weights):
        received.append([np.array(w) for w in weights])
        original(self, weights)

    monkeypatch.setattr(OffPolicyActor, "set_weights", recording)
    agent = _dqn()
    apex = ApeX(agent, workers=1, backend="thread", block_steps=16, pull_every=10_000, keep_workers=True)
    apex.learn(128)
    agent.set_weights([w + 1.0 for w in agent.get_weights()])  # changed between the calls (as a restore would)
    expected = agent.get_weights()
    received.clear()
    apex.learn(16)
    apex.close()
    # the kept actor's first block of the new call pulled the changed weights (pull_every alone would not)
    assert len(received) == 1
    for got, want in zip(received[0], expected):
        np.testing.assert_array_equal(got, want)


def test_kept_actors_are_stopped_by_an_error_in_training():
    before = child_pids()
    agent = _dqn()
    apex = ApeX(agent, workers=2, backend="process", block_steps=16, keep_workers=True)
    apex.learn(128)
    pids = [apex.pool.info(i)["pid"] for i in range(2)]

    def callback(agent_, info):
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        apex.learn(256, callback=callback)
    assert not apex.pool.running and child_pids() == before and not any(alive(p) for p in pids)
    apex.learn(128)  # a new pool
    assert apex.pool.running and [apex.pool.info(i)["pid"] for i in range(2)] != pids
    apex.close()
    assert child_pids() == before


def test_runner_passes_keep_workers_and_close_stops_the_actors():
    agent = _dqn()
    runner = Runner(agent, backend="thread", workers=2, block_steps=16, keep_workers=True)
    runner.learn(128)
    pool = runner.apex.pool
    runner.learn(128)
    assert runner.apex.pool is pool and pool.running and agent.num_timesteps == 256
    runner.close()
    assert not pool.running and not [t for t in threading.enumerate() if t.name.startswith("tlrl-")]


def test_start_workers_needs_keep_workers():
    with pytest.raises(ValueError, match=r"keep_workers=False \(build it with keep_workers=True\)"):
        ApeX(_dqn(), workers=2, backend="thread").start_workers()
