"""A sweep worker: one process that pulls trials from the study's storage and runs them, one at a time, until the
budget is spent. `tlrl sweep` runs one in its own process (`--workers 1`), starts N of these as processes
(`python -m tlrl.sweep.worker DIR --index I`) or as Ray tasks; any number of `tlrl sweep` processes on other
machines add theirs. Optuna's `Study.optimize` is the loop (no scheduling of our own):

- the budget (`Budget`) counts the finished (complete and pruned) trials and those running now in any process;
  a worker decides that a trial may start, and Optuna creates it, under the study's `StartLock`
  (`tlrl.sweep.start_lock`), so N workers that finish together do not start trials past it. A worker whose
  budget is filled by trials still running elsewhere waits for them. Trials whose worker died (no heartbeat
  for `failures.grace_period`) are failed first and queued again by the storage's retry callback
  (`tlrl.sweep.study`); they run before any new one, so the study ends with `n_trials` finished;
- a trial that raises fails with its error recorded (`catch=(Exception,)`), and the sweep goes on; after
  `budget.max_failed` such failures it stops;
- Ctrl-C or SIGTERM: the running trial's training stops at its next boundary (`tlrl.training`), the trial is
  failed as interrupted, the worker stops, and the storage stays consistent (signals between trials are held
  until the trial's storage calls are done). A second Ctrl-C aborts.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from typing import Optional

from tlrl.sweep.trial import StopRequest, TrialRunner

#: Environment variable that carries the storage URL to worker processes (not their command line: a password).
STORAGE_ENV = "TLRL_SWEEP_STORAGE"
#: Exit codes after Ctrl-C / SIGTERM (as `tlrl train`).
EXIT_SIGNAL = {"SIGINT": 130, "SIGTERM": 143}


class HeldSignals:
    """SIGINT and SIGTERM set a `StopRequest` instead of raising anywhere; a second SIGINT raises
    KeyboardInterrupt (abort). Inside a trial's training, `tlrl.training.StopFlag` takes over and gives them back."""

    def __init__(self, stop: StopRequest):
        self.stop = stop
        self.previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self.handle)
        return self

    def handle(self, signum, frame):
        if self.stop.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.stop.set(signal.Signals(signum).name)
        try:
            os.write(2, f"\ntlrl sweep: {self.stop.signal} received: no trial or seed starts after this one "
                        f"(Ctrl-C again to abort)\n".encode())
        except OSError:
            pass

    def __exit__(self, *exc):
        for sig, previous in self.previous.items():
            signal.signal(sig, previous)
        return False


class Budget:
    """Whether trials should start: `state(study)` is 'run', 'wait' (the finished and running trials fill the
    budget, but some are still running, perhaps in a worker that died) or 'done'. It first fails trials whose
    worker died (the storage queues them again). As an Optuna callback, after each trial, it takes the study's
    start lock and stops the study unless the state is 'run'; if it is, the lock stays held until the next
    trial exists (`ReleaseOnStart`)."""

    def __init__(self, spec, stop: StopRequest, lock=None):
        import optuna

        self.spec, self.stop, self.optuna, self.lock = spec, stop, optuna, lock
        self.deadline = None if spec.budget.timeout is None else time.monotonic() + spec.budget.timeout
        self.reason: Optional[str] = None

    def state(self, study) -> str:
        self.optuna.storages.fail_stale_trials(study)
        trials = study.get_trials(deepcopy=False)
        failed = [t for t in trials if t.state.name == "FAIL" and "error" in t.user_attrs]
        finished = sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
        running = sum(t.state.name == "RUNNING" for t in trials)
        n = self.spec.budget.n_trials
        self.reason = None
        if self.stop.requested:
            self.reason = f"stopped by {self.stop.signal}"
        elif len(failed) >= self.spec.budget.max_failed:
            self.reason = (f"{len(failed)} trials failed with an error (budget.max_failed); the last: trial "
                           f"{failed[-1].number}: {failed[-1].user_attrs['error']}")
        elif self.deadline is not None and time.monotonic() >= self.deadline:
            self.reason = "budget.timeout reached"
        elif self.spec.sampler.type == "grid" and study.sampler.is_exhausted(study) and not running:
            self.reason = "every combination of the grid has run"
        elif n is not None and finished >= n:
            self.reason = "budget reached"
        if self.reason:
            return "done"
        return "wait" if n is not None and finished + running >= n else "run"

    def remaining(self) -> Optional[float]:
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def __call__(self, study, trial) -> None:
        if self.lock is not None:
            self.lock.acquire()
        if self.state(study) != "run":
            study.stop()
            if self.lock is not None:
                self.lock.release()


class ReleaseOnStart:
    """The objective `objective`, called once its trial exists: it first releases the start lock that the worker
    (or `Budget`, after the previous trial) took when it decided that this trial may start."""

    def __init__(self, objective, lock):
        self.objective, self.lock = objective, lock

    def __call__(self, trial):
        self.lock.release()
        return self.objective(trial)


def run_trials(study, objective, budget: Budget, lock, stop: StopRequest, *, out=None, wait: float = 5.0) -> None:
    """Run trials of `study` with `objective` until `budget` says 'done' (waiting while trials that fill it run
    elsewhere); whether a trial may start is decided, and the trial made, under `lock` (`StartLock`)."""
    out = out or sys.stderr
    said = False
    while True:
        lock.acquire()
        state = budget.state(study)
        if state == "run":
            try:
                study.optimize(ReleaseOnStart(objective, lock), timeout=budget.remaining(), catch=(Exception,),
                               callbacks=[budget, TrialLine(out)])
            finally:
                lock.release()
            said = False
            continue
        lock.release()
        if state == "done":
            return
        if not said:
            print("tlrl sweep: waiting for the trials still running in other workers", file=out, flush=True)
            said = True
        _sleep(wait, stop)


def run_worker(sweep_dir: str, storage_url: str, index: int = 0, *, out=None) -> int:
    """Run trials of the sweep in `sweep_dir` from `storage_url` until its budget is spent (waiting for trials
    that run in other workers: one whose worker dies runs again here); the exit code (0, or 130 / 143 after
    Ctrl-C / SIGTERM)."""
    from tlrl.sweep.start_lock import StartLock
    from tlrl.sweep.study import load_study, open_storage
    from tlrl.sweep.sweep_dir import load_dir

    out = out or sys.stderr
    spec = load_dir(sweep_dir)
    study = load_study(spec, open_storage(storage_url, spec.failures), index)
    stop = StopRequest()
    with HeldSignals(stop), StartLock(storage_url, spec.name) as lock:
        budget = Budget(spec, stop, lock)
        try:
            run_trials(study, TrialRunner(spec, sweep_dir, stop), budget, lock, stop, out=out,
                       wait=min(spec.failures.heartbeat_interval, 5))
        except KeyboardInterrupt:
            stop.set("SIGINT")
        if budget.reason and not stop.requested:
            print(f"tlrl sweep: {budget.reason}", file=out, flush=True)
    return EXIT_SIGNAL.get(stop.signal, 130) if stop.requested else 0


def _sleep(seconds: float, stop: StopRequest) -> None:
    end = time.monotonic() + seconds
    while not stop.requested and time.monotonic() < end:
        time.sleep(0.2)


class TrialLine:
    """One line on `out` per finished trial: its number, state, value or error, values and worker."""

    def __init__(self, out):
        self.out = out

    def __call__(self, study, trial) -> None:
        attrs = trial.user_attrs
        what = {"COMPLETE": f"objective {trial.value:.2f}" if trial.value is not None else "",
                "PRUNED": f"pruned at step {trial.last_step}",
                "FAIL": f"interrupted ({attrs['interrupted']})" if "interrupted" in attrs else
                f"failed: {attrs.get('error', 'see the log above')}"}.get(trial.state.name, trial.state.name.lower())
        values = ", ".join(f"{k}={_short(v)}" for k, v in trial.params.items())
        print(f"tlrl sweep: trial {trial.number} {what} ({values}) [{attrs.get('worker', '?')}]", file=self.out,
              flush=True)


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def watch_parent(parent: int, every: float = 1.0) -> None:
    """End this process (SIGKILL: its trial runs again, after the grace period) if process `parent` goes away,
    so a worker never outlives the `tlrl sweep` that started it."""
    def watch():
        while os.getppid() == parent:
            time.sleep(every)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="tlrl-sweep-parent-watch", daemon=True).start()


def main(argv=None) -> int:
    """`python -m tlrl.sweep.worker SWEEP_DIR --index I [--parent PID]` (the storage URL in $TLRL_SWEEP_STORAGE)."""
    parser = argparse.ArgumentParser(prog="python -m tlrl.sweep.worker", description="one worker of a tlrl sweep")
    parser.add_argument("sweep_dir")
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--parent", type=int, help="stop when this process (the tlrl sweep) is gone")
    args = parser.parse_args(argv)
    from tlrl.quiet_import import hide_tensorflow_startup_log
    from tlrl.sweep.spec import SweepError

    hide_tensorflow_startup_log()
    if args.parent:
        watch_parent(args.parent)
    try:
        return run_worker(args.sweep_dir, os.environ[STORAGE_ENV], args.index)
    except SweepError as exc:
        print(f"tlrl sweep worker {args.index}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
