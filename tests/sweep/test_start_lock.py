"""Workers whose trials finish together start no trial past the budget: deciding that a trial may start and
creating it happen under the study's start lock (`tlrl.sweep.start_lock`). Before the lock, two workers that
finished at once both saw room for one more trial: `n_trials: 3` on two workers ended with 4 complete."""
import multiprocessing
import threading
import time

from tlrl.sweep.spec import load_sweep
from tlrl.sweep.start_lock import StartLock
from tlrl.sweep.study import create_or_join, default_storage, open_storage
from tlrl.sweep.worker import Budget

from .helpers import write_sweep

N_TRIALS, WORKERS = 3, 2
BARRIER_WAIT = 5.0
SWEEP = f"""\
search_space:
  learning_rate: {{type: loguniform, low: 1.0e-4, high: 3.0e-3}}
budget: {{n_trials: {N_TRIALS}}}
sampler: {{type: random, seed: 0}}
"""


class NoLock:
    """What the workers did before the start lock (kept to show that the test catches the race)."""

    def acquire(self):
        pass

    def release(self):
        pass


def _trial(trial) -> float:
    time.sleep(0.3)
    return trial.suggest_float("learning_rate", 1e-4, 3e-3, log=True)


class DecideTogether(Budget):
    """`Budget` whose decision after a worker's first trial waits (up to `BARRIER_WAIT` s) until the other worker
    has made the same decision: both decide before either starts the next trial, which is the race, made certain
    instead of left to timing. Under the start lock the other worker cannot decide meanwhile (it waits for the
    lock), so the wait ends at its timeout and the decisions are made one after another."""

    def __init__(self, spec, stop, lock, barrier):
        super().__init__(spec, stop, lock)
        self.barrier, self.decisions = barrier, 0

    def state(self, study) -> str:
        state = super().state(study)
        self.decisions += 1
        if self.decisions == 2:  # the first is run_trials' own, before any trial; the second follows trial one
            try:
                self.barrier.wait(BARRIER_WAIT)
            except threading.BrokenBarrierError:
                pass
        return state


def _worker(spec, url: str, index: int, locked: bool, barrier) -> None:
    from tlrl.sweep.study import load_study
    from tlrl.sweep.trial import StopRequest
    from tlrl.sweep.worker import run_trials

    study = load_study(spec, open_storage(url, spec.failures), index)
    stop = StopRequest()
    lock = StartLock(url, spec.name) if locked else NoLock()
    barrier.wait(60)  # both imported and connected: their first trials run side by side
    run_trials(study, _trial, DecideTogether(spec, stop, lock, barrier), lock, stop, wait=0.1)


def _run(tmp_path, locked: bool):
    sweep_file = write_sweep(tmp_path, SWEEP)
    spec = load_sweep(sweep_file)
    url = default_storage(str(tmp_path))
    study = create_or_join(spec, open_storage(url, spec.failures))
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(WORKERS)
    procs = [context.Process(target=_worker, args=(spec, url, i, locked, barrier)) for i in range(WORKERS)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0
    return [t.state.name for t in study.get_trials()]


def test_workers_that_finish_together_start_no_trial_past_the_budget(tmp_path):
    states = _run(tmp_path, locked=True)
    assert states == ["COMPLETE"] * N_TRIALS, states


def test_without_the_lock_they_do(tmp_path):
    """The race this guards against is real here (so the test above can fail): without the lock, workers
    that finish together start more trials than the budget."""
    states = _run(tmp_path, locked=False)
    assert len(states) > N_TRIALS and set(states) == {"COMPLETE"}, states


def _waits_for(first: StartLock, second: StartLock) -> bool:
    """Whether `second.acquire()` waits while `first` holds the lock, and gets it once `first` releases it."""
    import threading

    first.acquire()
    got = threading.Event()
    thread = threading.Thread(target=lambda: (second.acquire(), got.set()))
    thread.start()
    waited = not got.wait(0.5)
    first.release()
    thread.join(10)
    return waited and got.is_set()


def test_the_lock_excludes_on_sqlite(tmp_path):
    url = default_storage(str(tmp_path))
    with StartLock(url, "a") as first, StartLock(url, "a") as second:
        assert _waits_for(first, second)


def test_the_lock_excludes_on_postgresql(postgres_url):
    with StartLock(postgres_url, "a") as first, StartLock(postgres_url, "a") as second, \
            StartLock(postgres_url, "b") as other:
        assert _waits_for(first, second)
        other.acquire()  # another study's lock is another lock
        assert other.held
