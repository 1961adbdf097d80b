"""Worker pools (sync, thread, process): calls, failures, restarts, clean shutdown; the restart policy."""
import logging
import os
import signal
import time

import pytest

from tlrl.runner import Failure, Restarts, StepBudget, WorkerError, make_pool

from .helpers import alive, child_pids, toy_factory

LOCAL = ["sync", "thread", "process"]


def _collect(pool, n_events, timeout=30.0):
    events, deadline = [], time.monotonic() + timeout
    while len(events) < n_events and time.monotonic() < deadline:
        events += pool.poll(timeout=1.0)
    return events


@pytest.mark.parametrize("backend", LOCAL)
def test_calls_come_back_per_worker_and_close_leaves_nothing_running(backend):
    before = child_pids()
    pool = make_pool(backend, toy_factory, 2)
    with pool:
        pool.start()
        for i in range(2):
            pool.submit(i, "echo", [i, "x"])
        with pytest.raises(RuntimeError, match="already has a call in flight"):
            pool.submit(0, "echo", 1)
        events = _collect(pool, 2)
        assert sorted(ev.index for ev in events) == [0, 1]
        for ev in events:
            assert ev.failure is None and ev.value == {"index": ev.index, "attempt": 0, "calls": 1, "x": [ev.index, "x"]}
        assert pool.completed == [1, 1] and not pool.busy(0)
        pool.submit(1, "echo", 2)
        (ev,) = _collect(pool, 1)
        assert ev.value["calls"] == 2  # the same worker object, with its state
    assert child_pids() == before


@pytest.mark.parametrize("backend", LOCAL)
def test_a_raising_call_is_a_failure_with_the_workers_traceback_and_restart_gives_a_fresh_worker(backend):
    with make_pool(backend, toy_factory, 2) as pool:
        pool.start()
        pool.submit(1, "fail", "env exploded")
        (ev,) = _collect(pool, 1)
        assert ev.index == 1 and ev.failure.kind == "raised"
        assert ev.failure.message == "RuntimeError: env exploded"
        assert "in fail" in ev.failure.traceback
        assert isinstance(ev.failure.exception, RuntimeError)
        pool.restart(1)
        pool.submit(1, "echo", None)
        (ev,) = _collect(pool, 1)
        assert ev.value["attempt"] == 1 and ev.value["calls"] == 1


def test_a_killed_process_is_reported_as_died_and_can_be_replaced():
    before = child_pids()
    with make_pool("process", toy_factory, 2) as pool:
        pool.start()
        pool.submit(0, "pid")
        pool.submit(1, "sleep", 30.0)
        (ev,) = _collect(pool, 1)
        assert ev.index == 0
        pool.kill(1)
        (ev,) = _collect(pool, 1)
        assert ev.index == 1 and ev.failure.kind == "died" and "killed by SIGKILL" in ev.failure.message
        old = pool.info(1)["pid"]
        pool.restart(1)
        pool.submit(1, "pid")
        (ev,) = _collect(pool, 1)
        assert ev.value != old and not alive(old)
    assert child_pids() == before


def test_a_process_worker_ignores_sigterm_so_a_signal_to_the_whole_process_group_reaches_only_the_learner():
    """Slurm and systemd send SIGTERM to every process of the job: workers that died of it were counted as
    failed (and restarted, or the run failed) before `tlrl train` could save its checkpoint."""
    with make_pool("process", toy_factory, 1) as pool:
        pool.start()
        pid = pool.info(0)["pid"]
        os.kill(pid, signal.SIGTERM)  # while it starts up (before it runs any code of ours)
        pool.submit(0, "pid")
        (ev,) = _collect(pool, 1)
        assert ev.failure is None and ev.value == pid
        pool.submit(0, "sleep", 1.0)
        os.kill(pid, signal.SIGTERM)
        os.kill(pid, signal.SIGINT)
        (ev,) = _collect(pool, 1)
        assert ev.failure is None and ev.value == pid and alive(pid)


def test_close_stops_a_worker_in_the_middle_of_a_call():
    """The worker ignores SIGTERM: close() kills it (SIGKILL) once the grace period is over."""
    before = child_pids()
    pool = make_pool("process", toy_factory, 1)
    pool.join_timeout = 0.5
    pool.start()
    pool.submit(0, "pid")
    assert len(_collect(pool, 1)) == 1
    pool.submit(0, "sleep", 600.0)
    (proc,) = pool._procs
    pool.close()
    assert proc.exitcode == -signal.SIGKILL  # killed in its call, not waited for
    assert child_pids() == before


def test_a_worker_that_cannot_be_built_fails_its_first_call():
    make = lambda i, attempt: toy_factory(i, attempt, fail_on_build=True)  # noqa: E731 - in-process only
    with make_pool("thread", make, 1) as pool:
        pool.start()
        pool.submit(0, "echo", 1)
        (ev,) = _collect(pool, 1)
        assert ev.failure.message == "ValueError: cannot build worker 0"


def test_process_workers_need_picklable_factories():
    make = lambda i, attempt: (lambda: None)  # noqa: E731
    with make_pool("process", make, 1) as pool:
        with pytest.raises(TypeError, match="cannot be pickled.*'package.module:Class'"):
            pool.start()


def test_unknown_backend_is_named():
    with pytest.raises(ValueError, match="'sync', 'thread', 'process', 'ray'"):
        make_pool("mpi", toy_factory, 1)


def test_step_budget_claims_and_releases():
    budget = StepBudget(10)
    assert [budget.claim(4), budget.claim(4), budget.claim(4), budget.claim(4)] == [0, 4, 8, None]
    budget.release(4)
    assert budget.claim(4) == 8


class _FakePool:
    backend, n = "process", 2

    def __init__(self):
        self.completed, self.restarted = [1, 0], []

    def restart(self, i):
        self.restarted.append(i)


def test_restart_policy_restarts_up_to_the_limit_then_raises_from_the_workers_exception(caplog):
    pool = _FakePool()
    policy = Restarts(pool, 2, what="rollout")
    exc = RuntimeError("boom")
    failure = Failure(0, "raised", "RuntimeError: boom", "Traceback ...", exc)
    with caplog.at_level(logging.WARNING, logger="tlrl.runner"):
        policy.handle(failure)
        policy.handle(failure)
    assert pool.restarted == [0, 0] and policy.count == 2
    assert "worker 0 of 2 failed with RuntimeError: boom; its unfinished rollout was dropped" in caplog.text
    with pytest.raises(WorkerError, match=r"worker 0 of 2 failed with RuntimeError: boom; workers were restarted 2 "
                                          r"times already in this run \(max_worker_restarts=2\)") as info:
        policy.handle(failure)
    assert info.value.__cause__ is exc and "Traceback ..." in str(info.value)


def test_a_worker_that_never_completed_work_is_not_restarted():
    pool = _FakePool()
    with pytest.raises(WorkerError, match=r"worker 1 of 2 \(process 7\) was killed by SIGKILL before completing any "
                                          r"work.*__name__ == '__main__'"):
        Restarts(pool, 5).handle(Failure(1, "died", "(process 7) was killed by SIGKILL"))
    assert pool.restarted == []


def test_closing_a_process_pool_lets_every_idle_worker_exit_by_itself():
    """Idle workers told to stop exit with code 0; none is terminated for lack of waiting (close used to
    signal the others as soon as the first had exited)."""
    for n in (1, 3):
        pool = make_pool("process", toy_factory, n)
        pool.start()
        for i in range(n):
            pool.submit(i, "echo", i)
        assert len(_collect(pool, n)) == n
        procs = list(pool._procs)
        pool.close()
        assert [p.exitcode for p in procs] == [0] * n


# ----- deadlines ------------------------------------------------------------------------------------------------
def _wait_thread_gone(thread, timeout=30.0):  # the timeout only guards against a hang
    thread.join(timeout)
    return not thread.is_alive()


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_a_call_past_its_deadline_fails_the_silent_worker_which_is_stopped_and_replaced(backend, tmp_path, caplog):
    """Before deadlines, `poll(None)` on a worker stuck in its call waited forever."""
    before = child_pids()
    release = str(tmp_path / "release")
    # a deadline the healthy worker's toy calls (microseconds) meet even on a loaded machine; the blocked one
    # waits forever anyway
    with make_pool(backend, toy_factory, 2, call_timeout=3.0) as pool:
        pool.start()
        for i in range(2):
            pool.submit(i, "pid")
        pids = {ev.index: ev.value for ev in _collect(pool, 2)}
        stuck = pool._threads[1] if backend == "thread" else None
        pool.submit(1, "block", release)  # hangs, as an env.step that never returns
        pool.submit(0, "echo", "meanwhile")
        events = []
        with caplog.at_level(logging.WARNING, logger="tlrl.runner"):
            while len(events) < 2:
                events += pool.poll(None)  # no timeout of our own: the deadline ends the wait
        by_index = {ev.index: ev for ev in events}
        assert by_index[0].value["x"] == "meanwhile"
        failure = by_index[1].failure
        assert failure.kind == "timeout"
        assert failure.describe(2) == "worker 1 of 2 did not answer within 3 s (worker_timeout) and was stopped"
        assert not pool.busy(1)
        if backend == "process":
            assert not alive(pids[1])  # killed at once (it ignores SIGTERM)
        else:
            assert stuck.is_alive() and "is stuck in its call and cannot be stopped" in caplog.text
        pool.restart(1)
        pool.submit(1, "echo", None)
        (ev,) = _collect(pool, 1)
        assert ev.value["attempt"] == 1 and ev.value["calls"] == 1
    assert child_pids() == before
    if backend == "thread":  # abandoned, not joined by close(); it ends once its call returns
        assert stuck.is_alive()
        open(release, "w").close()
        assert _wait_thread_gone(stuck)


def test_a_workers_first_call_which_builds_it_gets_the_start_allowance():
    with make_pool("thread", toy_factory, 1, call_timeout=0.2) as pool:
        pool.start_timeout = 60.0
        pool.start()
        pool.submit(0, "sleep", 0.5)  # the first call: longer than call_timeout, within start_timeout
        (ev,) = _collect(pool, 1)
        assert ev.failure is None
        pool.submit(0, "sleep", 0.5)
        (ev,) = _collect(pool, 1)
        assert ev.failure.kind == "timeout" and "within 0.2 s" in ev.failure.message
        pool.restart(0)
        pool.submit(0, "sleep", 0.5)  # a restarted worker is built again: the allowance again
        (ev,) = _collect(pool, 1)
        assert ev.failure is None


def test_thread_pool_close_waits_a_bounded_time_for_calls_in_flight(tmp_path, caplog):
    release = str(tmp_path / "release")
    pool = make_pool("thread", toy_factory, 1)  # no call deadline: close() still returns
    pool.join_timeout = 0.5
    pool.start()
    pool.submit(0, "block", release)
    thread = pool._threads[0]
    with caplog.at_level(logging.WARNING, logger="tlrl.runner"):
        pool.close()
    assert thread.is_alive() and "did not finish its call within 0.5 s of close(); it is left running" in caplog.text
    open(release, "w").close()
    assert _wait_thread_gone(thread)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), True, "60"])
def test_a_deadline_must_be_a_positive_number_of_seconds(bad):
    with pytest.raises(ValueError, match="call_timeout must be a positive number of seconds"):
        make_pool("thread", toy_factory, 1, call_timeout=bad)


def test_pre_started_processes_are_taken_by_the_next_pools_and_the_rest_stopped_at_the_end():
    """`prestart` (what `tlrl train` does while it builds the agent): the children import what workers need
    before their factory is known; a pool sends them their factory instead of spawning new ones."""
    from tlrl.runner.process import prestart, stop_spares

    before = child_pids()
    pids = prestart(3, preload=())
    assert len(pids) == 3 and all(alive(p) for p in pids)
    with make_pool("process", toy_factory, 2) as pool:
        pool.start()
        assert sorted(pool.info(i)["pid"] for i in range(2)) == sorted(pids[:2])
        for i in range(2):
            pool.submit(i, "echo", i)
        events = _collect(pool, 2)
        assert sorted(ev.value["x"] for ev in events) == [0, 1]
        pool.submit(0, "fail", "boom")
        (ev,) = _collect(pool, 1)
        pool.restart(0)  # a fresh process (or the third spare)
        pool.submit(0, "echo", "again")
        (ev,) = _collect(pool, 1)
        assert ev.value["attempt"] == 1
    stop_spares()
    assert child_pids() == before
