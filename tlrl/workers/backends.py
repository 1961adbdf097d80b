"""Drive `GradientWorker`s against a `Learner`: inline (one worker) or on threads.

Every backend runs the same loop per worker: claim a rollout's worth of the step budget,
compute gradients with the current local weights, push them to the learner, pull the fresh
weights it returns, report. Reports reach `on_update` in the caller's thread, so callbacks
(logging, saving a checkpoint) never run on a worker thread.

A later process or Ray backend reuses the worker as is: it only exchanges numpy arrays.
"""
from __future__ import annotations

import queue
import threading
import traceback
from typing import Any, Callable, Dict, Optional, Sequence

from tlrl.workers.learner import Learner
from tlrl.workers.worker import GradientWorker

OnUpdate = Callable[[Dict[str, Any]], Optional[bool]]


class WorkerError(RuntimeError):
    """A worker raised; training was stopped. The worker's exception is the `__cause__`."""


class StepBudget:
    """Thread-safe env-step budget: a rollout is claimed before it is run, so workers stop
    once `total` steps are claimed (the last claim may overshoot by less than one rollout)."""

    def __init__(self, total: int):
        self.total = int(total)
        self.claimed = 0
        self._lock = threading.Lock()

    def claim(self, steps: int) -> Optional[int]:
        """Claim `steps`; returns the steps claimed before this claim, or None if the budget is spent."""
        with self._lock:
            if self.claimed >= self.total:
                return None
            before = self.claimed
            self.claimed += steps
            return before


def _worker_loop(worker: GradientWorker, learner: Learner, budget: StepBudget, stop: threading.Event,
                 learning_rate: Callable[[float], float], report: Callable[[Dict[str, Any]], None], index: int) -> None:
    worker.set_weights(learner.get_weights())
    while not stop.is_set():
        before = budget.claim(worker.steps_per_rollout)
        if before is None:
            return
        lr = float(learning_rate(before / max(budget.total, 1)))
        if learner.is_attached(worker):  # same variables: gradient and update in one compiled call
            stats = learner.train(worker, lr)
        else:
            grads, stats = worker.compute_gradients()
            weights, info = learner.apply(grads, lr)
            worker.set_weights(weights)
            stats.update(info)
        stats.update(worker=index, learning_rate=lr)
        report(stats)


def run_inline(worker: GradientWorker, learner: Learner, total_steps: int, on_update: OnUpdate,
               learning_rate: Callable[[float], float]) -> None:
    """One worker in the caller's thread: synchronous n-step actor-critic, deterministic with a seed.

    If the worker's model is the learner's (`learner.attach(worker)` done here), each rollout
    costs one compiled call (gradient and update fused).

    As with threads, an exception of the worker is raised as a `WorkerError`; one raised by
    `on_update` propagates unchanged.
    """
    stop = threading.Event()
    raised: list = []

    def report(stats):
        try:
            if on_update(stats) is False:
                stop.set()
        except BaseException as exc:  # noqa: BLE001 - re-raised below, unwrapped
            raised.append(exc)
            stop.set()

    if not learner.is_attached(worker) and [id(v) for v in worker.variables] == [id(v) for v in learner.variables]:
        learner.attach(worker)
    try:
        _worker_loop(worker, learner, StepBudget(total_steps), stop, learning_rate, report, 0)
    except Exception as exc:
        raise WorkerError(f"worker 0 of 1 failed with {type(exc).__name__}: {exc}; training was stopped") from exc
    if raised:
        raise raised[0]


def run_threads(workers: Sequence[GradientWorker], learner: Learner, total_steps: int, on_update: OnUpdate,
                learning_rate: Callable[[float], float], *, name: str = "tlrl-worker") -> None:
    """Each worker on its own thread, pushing gradients asynchronously (A3C's Hogwild!-style order,
    but each update applied whole, under the learner's lock).

    `on_update(stats)` runs in the caller's thread for every applied update; returning False
    stops training. If a worker raises, the others are stopped and joined and a `WorkerError`
    naming the worker is raised from its exception. No thread outlives this call.
    """
    budget, stop = StepBudget(total_steps), threading.Event()
    inbox: "queue.Queue" = queue.Queue()

    def target(i: int, worker: GradientWorker) -> None:
        try:
            _worker_loop(worker, learner, budget, stop, learning_rate, lambda s: inbox.put(("update", i, s)), i)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            stop.set()
            inbox.put(("error", i, (exc, traceback.format_exc())))
        finally:
            inbox.put(("done", i, None))

    threads = [threading.Thread(target=target, args=(i, w), name=f"{name}-{i}", daemon=True)
               for i, w in enumerate(workers)]
    error = None
    try:
        for t in threads:
            t.start()
        running = len(threads)
        while running:
            try:
                kind, i, payload = inbox.get(timeout=0.5)
            except queue.Empty:
                continue
            if kind == "done":
                running -= 1
            elif kind == "error":
                if error is None:
                    error = (i, payload)
            elif error is None and on_update(payload) is False:
                stop.set()
    finally:
        stop.set()
        for t in threads:
            if t.is_alive():
                t.join()
    if error is not None:
        i, (exc, tb) = error
        raise WorkerError(
            f"worker {i} of {len(workers)} failed with {type(exc).__name__}: {exc}; training was stopped and all "
            f"workers joined. Worker traceback:\n{tb}"
        ) from exc
