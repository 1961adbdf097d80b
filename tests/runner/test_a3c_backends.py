"""A3C's gradient workers on every backend: restarts after a kill or an exception, clean shutdown, config."""
import logging
import os
import signal
import threading

import numpy as np
import pytest

from tlrl.algorithms import A3C
from tlrl.runner import Runner, WorkerError

from .helpers import alive, child_pids

CORRIDOR = "runner.helpers:ShortCorridor"  # a custom env, re-imported by name in worker processes
SMALL = dict(n_steps=5, n_envs=2, net_arch=(16,))


def _a3c_threads():
    return [t for t in threading.enumerate() if t.name.startswith("tlrl-a3c-worker")]


def test_killed_worker_process_is_restarted_and_checkpoints_stay_consistent(tmp_path, caplog, record_published):
    before = child_pids()
    agent = A3C(CORRIDOR, seed=0, n_workers=2, backend="process", **SMALL)
    published, pids, saved = record_published(agent.learner), {}, []

    def callback(agent_, info):
        pool = agent_.workers.pool
        # Kill the first worker that has delivered twice (one that never worked is not restarted):
        # which one that is depends on which process finished importing TF first.
        busy = [i for i in range(pool.n) if pool.completed[i] >= 2]
        if not pids and busy:
            pids["killed"], pids["index"] = pool.info(busy[0])["pid"], busy[0]
            pool.kill(busy[0])
        if pids and not saved and info["version"] >= 10 + min(published):
            agent_.save(str(tmp_path / "mid"))  # the other worker keeps computing meanwhile
            saved.append(info["version"])

    with caplog.at_level(logging.WARNING, logger="tlrl.runner"):
        agent.learn(3000, callback=callback)
    assert agent.num_timesteps >= 3000 and saved
    assert f"worker {pids['index']} of 2 (process" in caplog.text and "killed by SIGKILL" in caplog.text
    assert "its unfinished rollout was dropped and the worker restarted (restart 1 of at most 3)" in caplog.text
    assert child_pids() == before and not alive(pids["killed"])
    loaded = A3C.load(str(tmp_path / "mid"))
    weights = [v.numpy() for v in loaded.network.trainable_variables]
    version = int(loaded.optimizer.step.numpy())
    assert all(np.array_equal(a, b) for a, b in zip(weights, published[version])), "a torn checkpoint"


@pytest.mark.parametrize("how", ["ctrl-c", "learner exception"])
def test_ctrl_c_or_an_exception_in_the_learner_stops_every_worker_process(how):
    import tensorflow as tf

    from tlrl.optim import Adam
    from tlrl.runner import make_pool
    from tlrl.runner.gradient import run_gradient_workers
    from tlrl.runner.learner import Learner

    from .helpers import toy_gradient_factory  # workers without TF: the shutdown path is the driver's

    before = child_pids()
    learner = Learner([tf.Variable(tf.zeros([3]))], Adam(1e-3))
    pool = make_pool("process", toy_gradient_factory(3), 2)
    calls = []

    def on_update(stats):
        calls.append(stats["version"])
        if len(calls) >= 100:  # fail, not hang, if the interrupt never arrives
            raise AssertionError(f"training went on after the {how} ({len(calls)} updates; SIGINT handler "
                                 f"{signal.getsignal(signal.SIGINT)!r}, blocked {signal.pthread_sigmask(signal.SIG_BLOCK, [])})")
        if len(calls) == 5:
            if how == "ctrl-c":
                os.kill(os.getpid(), signal.SIGINT)  # as a terminal's Ctrl-C; workers ignore it
            else:
                learner.apply_flat = None  # the learner breaks: the next update raises TypeError

    # Python's own Ctrl-C handler, whatever this process inherited: a shell starts a background job without job
    # control (`cmd &` in a script, `nohup ... &`) with SIGINT ignored, and Python keeps it so.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt if how == "ctrl-c" else TypeError):
            run_gradient_workers(pool, learner, 10**9, on_update, lambda p: 1e-3, steps_per_rollout=10)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert child_pids() == before
    assert 5 <= len(calls) < 100


def test_a_raising_worker_is_restarted_and_the_run_reaches_its_target(caplog):
    agent = A3C("runner.helpers:FailingEnv", seed=0, n_workers=2, backend="thread", max_worker_restarts=10,
                env_kwargs={"fail_after": 100}, **SMALL)
    with caplog.at_level(logging.WARNING, logger="tlrl.runner"):
        agent.learn(600)
    assert agent.num_timesteps >= 600
    assert caplog.text.count("failed with RuntimeError: simulator crashed; its unfinished rollout was dropped") >= 2
    assert not _a3c_threads()
    with pytest.raises(WorkerError, match=r"restarted 1 times already in this run \(max_worker_restarts=1\)"):
        A3C("runner.helpers:FailingEnv", seed=0, n_workers=2, backend="sync", max_worker_restarts=1,
            env_kwargs={"fail_after": 100}, **SMALL).learn(100_000)


def test_sync_backend_runs_several_workers_deterministically():
    def run():
        agent = A3C(CORRIDOR, seed=5, n_workers=3, backend="sync", **SMALL)
        agent.learn(300)
        return agent

    a, b = run(), run()
    assert a.num_timesteps == b.num_timesteps == 300 and a.learner.version == 30
    for x, y in zip(a.network.trainable_variables, b.network.trainable_variables):
        np.testing.assert_array_equal(x.numpy(), y.numpy())


def test_backend_comes_from_the_argument_the_runner_or_the_config(tmp_path):
    from tlrl.config import load_config_text

    agent = A3C(CORRIDOR, n_workers=2, **SMALL)
    assert agent.config.backend == "thread"
    config = load_config_text(f"""
algo: a3c
env: {{id: "{CORRIDOR}"}}
total_steps: 100
runner: {{backend: process, workers: 3}}
""")
    assert config.runner.backend == "process" and config.hyperparameters["n_workers"] == 3
    with pytest.raises(ValueError, match="backend must be one of 'sync', 'thread', 'process', 'ray'"):
        A3C(CORRIDOR, backend="mpi")
    runner = Runner(agent, backend="sync")
    runner.learn(40)
    assert agent.num_timesteps == 40 and agent.config.backend == "thread"  # the runner's choice is per call
    with pytest.raises(ValueError, match="n_workers=2; build it with n_workers=4"):
        Runner(agent, backend="thread", workers=4)


def test_kept_worker_processes_serve_every_learn_call_until_close():
    before = child_pids()
    agent = A3C(CORRIDOR, seed=0, n_workers=2, backend="process", keep_workers=True, **SMALL)
    assert agent.start_workers() > 0 and agent.start_workers() == 0.0  # the second call finds them running
    pool = agent.workers.pool
    pids = [pool.info(i)["pid"] for i in range(2)]
    assert all(alive(p) for p in pids) and pool.completed == [1, 1]  # each took the weights, nothing else yet
    agent.learn(200)
    agent.learn(200)  # the same processes, not new ones
    assert agent.workers.pool is pool and [pool.info(i)["pid"] for i in range(2)] == pids
    assert all(alive(p) for p in pids) and agent.num_timesteps >= 400
    # every call after the first (taking the weights) was one applied update
    assert pool.completed[0] + pool.completed[1] - 2 == agent.learner.version
    agent.close()
    assert child_pids() == before and not any(alive(p) for p in pids)


def test_started_workers_serve_the_next_learn_call_and_stop_at_its_end():
    before = child_pids()
    agent = A3C(CORRIDOR, seed=0, n_workers=2, backend="process", **SMALL)
    assert agent.start_workers() > 0
    pool = agent.workers.pool
    agent.learn(100)
    assert agent.workers.pool is pool and not pool.running and child_pids() == before
    agent.learn(100)  # a new pool for this call
    assert agent.workers.pool is not pool and not agent.workers.pool.running and child_pids() == before


def test_kept_workers_are_stopped_by_an_error_in_training():
    before = child_pids()
    agent = A3C(CORRIDOR, seed=0, n_workers=2, backend="process", keep_workers=True, **SMALL)
    agent.learn(100)
    pids = [agent.workers.pool.info(i)["pid"] for i in range(2)]

    def callback(agent_, info):
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        agent.learn(100, callback=callback)
    assert not agent.workers.pool.running and child_pids() == before and not any(alive(p) for p in pids)
    agent.learn(100)  # a new pool
    assert agent.workers.pool.running and [agent.workers.pool.info(i)["pid"] for i in range(2)] != pids
    agent.close()
    assert child_pids() == before


def test_start_workers_needs_remote_workers():
    with pytest.raises(ValueError, match="set backend='process' or 'ray'"):
        A3C(CORRIDOR, n_workers=2, backend="thread", **SMALL).start_workers()


def test_tlrl_train_runs_on_one_set_of_worker_processes_through_checkpoints_and_stops_them_at_the_end(tmp_path):
    """No flag needed: the run is one `learn` call, checkpoints are taken at its boundaries."""
    from tlrl.config import load_config_text
    from tlrl.run_dir import prepare_new
    from tlrl.training import run_training

    before = child_pids()
    config = load_config_text(f"""
algo: a3c
env: {{id: "{CORRIDOR}"}}
total_steps: 400
seed: 0
runner: {{backend: process, workers: 2}}
hyperparameters: {{n_steps: 5, n_envs: 2, net_arch: [16]}}
checkpoint: {{every_steps: 100}}
log: {{progress: false}}
eval: {{episodes: 2}}
""")
    run = prepare_new(config, str(tmp_path / "run"))
    summary = run_training(run, progress=False)
    assert summary["num_timesteps"] >= 400 and len(os.listdir(tmp_path / "run" / "checkpoints")) >= 4
    pool = run.agent.workers.pool
    assert pool.backend == "process" and not pool.running and child_pids() == before
    # one pool served every update of the run: each call it completed was one applied update
    assert sum(pool.completed) == run.agent.learner.version == run.agent.n_updates


def test_kept_workers_of_another_backend_are_stopped_when_the_runner_switches():
    before = child_pids()
    agent = A3C(CORRIDOR, seed=0, n_workers=2, backend="process", keep_workers=True, **SMALL)
    agent.learn(100)
    pids = [agent.workers.pool.info(i)["pid"] for i in range(2)]
    Runner(agent, backend="thread").learn(100)  # the runner's backend for this call
    assert child_pids() == before and not any(alive(p) for p in pids)
    agent.close()


@pytest.mark.parametrize("backend", ["process", "thread"])
def test_a_worker_whose_env_hangs_forever_is_stopped_at_the_deadline_and_restarted(backend, tmp_path, caplog):
    """One env's step blocks for good in one worker (runner.helpers.HangingEnv): before `worker_timeout`
    the learner waited for it forever."""
    from .helpers import release_and_wait_for_threads

    before = child_pids()
    # a deadline that a healthy worker meets even on a loaded machine; the hung one waits forever anyway
    agent = A3C("runner.helpers:HangingEnv", seed=0, n_workers=2, backend=backend, worker_timeout=6.0,
                env_kwargs={"flag_dir": str(tmp_path), "hang_after": 40}, **SMALL)
    try:
        with caplog.at_level(logging.WARNING, logger="tlrl.runner"):
            agent.learn(600)
        assert agent.num_timesteps >= 600
        assert (tmp_path / "claimed").exists(), "no env hung: the test tested nothing"
        assert ("did not answer within 6 s (worker_timeout) and was stopped; its unfinished rollout was dropped "
                "and the worker restarted (restart 1 of at most 3)") in caplog.text
        if backend == "process":
            assert not alive(int((tmp_path / "claimed").read_text()))
            assert child_pids() == before
    finally:
        assert release_and_wait_for_threads(str(tmp_path), "tlrl-a3c-worker")


def test_worker_timeout_is_validated():
    for bad in (0, -5.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="worker_timeout"):
            A3C(CORRIDOR, n_workers=2, worker_timeout=bad, **SMALL)
    assert A3C(CORRIDOR, n_workers=2, worker_timeout=None, **SMALL).config.worker_timeout is None
    agent = A3C(CORRIDOR, n_workers=2, **SMALL)
    assert agent.config.worker_timeout == 60.0
    with pytest.raises(ValueError, match="worker_timeout must be a positive number of seconds"):
        Runner(agent, backend="thread", worker_timeout=-1)
    Runner(agent, backend="thread", worker_timeout=5).learn(20)
    assert agent.config.worker_timeout == 60.0  # the runner's value is for its calls only
