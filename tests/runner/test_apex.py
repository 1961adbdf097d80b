"""Ape-X style actors for off-policy agents: pacing, exploration, weight pulls, faults, shutdown."""
import logging
import threading

import numpy as np
import pytest
import tensorflow as tf

from tlrl.algorithms import DQN, PPO
from tlrl.runner import ApeX, OffPolicyActor, Runner, WorkerError, apex_epsilons

from .helpers import child_pids

CORRIDOR = "runner.helpers:ShortCorridor"  # a custom env, re-imported by name in worker processes
TINY = dict(learning_starts=64, buffer_size=2000, batch_size=16, train_freq=8, gradient_steps=2, net_arch=(16,),
            target_update_interval=64, jit_compile=False)


def _dqn(env=CORRIDOR, seed=0, **overrides):
    return DQN(env, seed=seed, **dict(TINY, **overrides))


def _tlrl_threads():
    return [t for t in threading.enumerate() if t.name.startswith("tlrl-")]


def test_sync_actors_are_deterministic_and_keep_the_agents_update_ratio():
    def run():
        agent = _dqn(seed=3)
        apex = ApeX(agent, workers=2, backend="sync", block_steps=8, pull_every=16)
        apex.learn(512)
        return agent, apex

    (a, apex), (b, _) = run(), run()
    assert a.num_timesteps == 512 and len(a.store.replay) == 512
    # one phase per train_freq vector steps once learning_starts steps are in, as agent.learn does
    assert apex.stats["updates"] == a.n_updates == (512 - 64) // 8 + 1
    for x, y in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(x, y)
    rows = np.arange(512)
    np.testing.assert_array_equal(a.store.replay.gather(rows).action, b.store.replay.gather(rows).action)


def test_blocks_never_join_in_n_step_returns():
    agent = _dqn(n_step=3)
    ApeX(agent, workers=2, backend="sync", block_steps=8).learn(64)
    replay = agent.store.replay
    truncated, terminated = replay._truncated[:64, 0], replay._terminated[:64, 0]  # the flags as stored
    ends = np.arange(7, 64, 8)
    assert np.all(truncated[ends] | terminated[ends])  # every block's last row stops n-step segments
    batch = replay.gather(np.arange(64))
    bootstrapped = batch.discount > 0
    steps = np.round(np.log(batch.discount[bootstrapped]) / np.log(agent.config.gamma)).astype(int)
    room = np.minimum(3, 8 - np.arange(64) % 8)[bootstrapped]  # steps left in the row's block
    assert np.all(steps <= room) and np.any(steps == 3)


def test_each_actor_explores_with_its_own_epsilon():
    assert apex_epsilons(1) == [0.4]
    eps = apex_epsilons(4)
    assert eps[0] == pytest.approx(0.4) and eps[-1] == pytest.approx(0.4 ** 8) and eps == sorted(eps, reverse=True)
    agent = _dqn()
    apex = ApeX(agent, workers=4, backend="sync")
    assert apex.epsilons == eps
    actor = apex._make_factory([1, 2, 3, 4])(2, 0)()
    actor.collect(None, False, 1000, 2000)
    assert actor.agent.epsilon == pytest.approx(eps[2])
    assert ApeX(agent, workers=2, backend="sync", exploration="agent").epsilons == [None, None]


def test_actors_pull_weights_every_k_steps(monkeypatch):
    pulls = []
    original = OffPolicyActor.set_weights

    def counting(self, weights):
        pulls.append(self.agent.num_timesteps)
        original(self, weights)

    monkeypatch.setattr(OffPolicyActor, "set_weights", counting)
    agent = _dqn(learning_starts=16, train_freq=4)
    ApeX(agent, workers=1, backend="sync", block_steps=8, pull_every=32).learn(256)
    # the first block pulls; then one pull per 32 env steps at most (one per 4 blocks), although
    # the learner publishes new weights after every block
    assert len(pulls) == 256 // 32
    assert np.all(np.diff(pulls) >= 32)


def test_pulled_weights_are_the_learners():
    agent = _dqn()
    ApeX(agent, workers=1, backend="sync").learn(128)
    actor = OffPolicyActor(DQN, CORRIDOR, {}, dict(TINY, buffer_size=10), 0, 4)
    actor.set_weights(agent.get_weights())
    obs = np.eye(5, dtype=np.float32)
    np.testing.assert_allclose(actor.agent.numpy_q(obs), agent.q_net(tf.constant(obs)).numpy(), rtol=1e-5, atol=1e-6)
    block, stats = actor.collect(None, False, 1000, 2000)  # a block: [T, n_envs, ...] arrays, as the learner stores
    assert block.obs.shape == (4, 1, 5) and block.reward.dtype == np.float32 and stats["steps"] == 4


def test_two_actors_learn_a_custom_env():
    agent = _dqn(seed=1, learning_starts=200, exploration_fraction=0.3, learning_rate=3e-3)
    Runner(agent, backend="sync", workers=2, block_steps=16).learn(3000)
    mean, _ = agent.evaluate(5)
    assert mean == 1.0, f"Ape-X DQN did not reach the corridor's goal (eval {mean})"


def test_callback_false_stops_and_exceptions_stop_all_actor_threads():
    agent = _dqn()
    seen = []

    def stop_at_3(agent_, info):
        seen.append(info)
        return False if len(seen) == 3 else None

    ApeX(agent, workers=2, backend="thread").learn(100_000, callback=stop_at_3)
    assert len(seen) == 3 and agent.num_timesteps < 2000 and not _tlrl_threads()
    assert {"num_timesteps", "metrics", "episode_returns", "progress", "n_updates"} <= set(seen[0])
    # before learning_starts a boundary has no update (empty metrics), as in agent.learn
    assert all(bool(info["metrics"]) == (info["n_updates"] > 0) for info in seen)
    trained = [info for info in seen if info["n_updates"]]
    assert trained and {"loss", "steps_per_second", "updates_per_second", "worker_restarts"} <= set(trained[0]["metrics"])

    def broken(agent_, info):
        raise KeyError("logger broke")

    with pytest.raises(KeyError, match="logger broke"):
        ApeX(agent, workers=2, backend="thread").learn(100_000, callback=broken)
    assert not _tlrl_threads()


def test_a_raising_actor_is_restarted_then_the_run_fails_with_its_error(caplog):
    agent = _dqn("runner.helpers:FailingEnv")
    with caplog.at_level(logging.WARNING, logger="tlrl.runner"):
        with pytest.raises(WorkerError, match=r"worker \d of 2 failed with RuntimeError: simulator crashed; workers "
                                              r"were restarted 2 times") as info:
            ApeX(agent, workers=2, backend="thread", block_steps=16, max_worker_restarts=2).learn(100_000)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert caplog.text.count("its unfinished block was dropped and the worker restarted") == 2
    assert not _tlrl_threads()


def test_killed_actor_process_is_restarted_and_the_run_completes(tmp_path, caplog):
    before = child_pids()
    agent = _dqn()
    apex = ApeX(agent, workers=2, backend="process", block_steps=16)
    saved = []

    killed = []

    def callback(agent_, info):
        if not killed and apex.pool.completed[1] >= 2:  # a worker that never worked is not restarted
            killed.append(info["n_updates"])
            apex.pool.kill(1)
        if killed and not saved and info["n_updates"] >= killed[0] + 3:
            agent_.save(str(tmp_path / "mid"))  # between updates: consistent while actors run
            saved.append(agent_.get_weights() + [agent_.num_timesteps])

    with caplog.at_level(logging.WARNING, logger="tlrl.runner"):
        apex.learn(1024, callback=callback)
    assert agent.num_timesteps >= 1024 and apex.stats["restarts"] == 1
    assert "worker 1 of 2 (process" in caplog.text and "killed by SIGKILL" in caplog.text
    assert child_pids() == before
    loaded = DQN.load(str(tmp_path / "mid"))
    for v, w in zip(loaded.get_weights(), saved[0]):
        np.testing.assert_array_equal(v, w)
    assert loaded.num_timesteps == saved[0][-1]


def test_ddpg_runs_with_actors():
    from tlrl.algorithms import DDPG

    agent = DDPG("Pendulum-v1", seed=0, learning_starts=64, buffer_size=1000, batch_size=16, net_arch=(16,),
                 jit_compile=False)
    ApeX(agent, workers=2, backend="thread", block_steps=16).learn(256)
    assert agent.num_timesteps == 256 and agent.n_updates > 0


def test_what_cannot_run_with_actors_is_refused():
    import gymnasium as gym

    with pytest.raises(TypeError, match="off-policy agents"):
        ApeX(PPO("CartPole-v1", n_steps=16, batch_size=16), backend="thread")
    with pytest.raises(TypeError, match="PPO has no asynchronous"):
        Runner(PPO("CartPole-v1", n_steps=16, batch_size=16), backend="process")
    with pytest.raises(ValueError, match="not an env instance"):
        ApeX(DQN(gym.make("CartPole-v1")), backend="thread")


def test_free_running_learner_runs_or_skips_every_due_phase_with_prioritized_replay():
    agent = _dqn(prioritized=True, n_step=2)
    apex = ApeX(agent, workers=2, backend="thread", block_steps=8, max_update_lag=None)
    apex.learn(512)
    due = (512 - 64) // 8 + 1  # phases agent.learn would run
    assert apex.stats["updates"] + apex.stats["skipped_updates"] == due
    assert apex.stats["updates"] == agent.n_updates >= 1 and not _tlrl_threads()


def test_an_actor_whose_env_hangs_forever_is_stopped_at_the_deadline_and_restarted(tmp_path, caplog):
    """One actor's env step blocks for good (runner.helpers.HangingEnv): before `worker_timeout` the learner
    waited for its block forever."""
    from .helpers import release_and_wait_for_threads

    agent = _dqn("runner.helpers:HangingEnv", env_kwargs={"flag_dir": str(tmp_path), "hang_after": 120})
    # a deadline that a healthy actor meets even on a loaded machine; the hung one waits forever anyway
    apex = ApeX(agent, workers=2, backend="thread", block_steps=16, worker_timeout=6.0)
    try:
        with caplog.at_level(logging.WARNING, logger="tlrl.runner"):
            apex.learn(512)
        assert agent.num_timesteps == 512 and apex.stats["restarts"] >= 1
        assert (tmp_path / "claimed").exists(), "no env hung: the test tested nothing"
        assert ("did not answer within 6 s (worker_timeout) and was stopped; its unfinished block was dropped "
                "and the worker restarted (restart 1 of at most 3)") in caplog.text
    finally:
        assert release_and_wait_for_threads(str(tmp_path), "tlrl-")
    with pytest.raises(ValueError, match="worker_timeout must be a positive number of seconds"):
        ApeX(agent, workers=2, backend="thread", worker_timeout=0)
