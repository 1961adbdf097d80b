"""What every driver (`tlrl.runner.gradient`, `tlrl.runner.apex`) shares: the env-step budget
that workers claim work from, the policy that restarts failed workers, and starting a kept pool
ahead of training."""
from __future__ import annotations

import threading
import time
from typing import Callable, Optional

import numpy as np

from tlrl.finite import NonFiniteError
from tlrl.runner.host import logger
from tlrl.runner.worker_pool import Failure, WorkerError, WorkerPool


class StepBudget:
    """Thread-safe env-step budget: work is claimed before it is done, so workers stop once `total`
    steps are claimed (the last claim may overshoot by less than one claim); the claim of work
    that was lost (a failed worker) is released and claimed again by another call."""

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

    def release(self, steps: int) -> None:
        """Give back `steps` claimed for work that was lost."""
        with self._lock:
            self.claimed -= steps


class Restarts:
    """The restart policy of the drivers: restart a failed worker, at most `max_restarts` times per run.

    A worker that fails before completing a single call (in any attempt) is not restarted: it
    would most likely fail again the same way (a bad env spec, an import error), so the run
    stops at once with its error.
    """

    def __init__(self, pool: "WorkerPool", max_restarts: int, what: str = "call"):
        self.pool, self.max_restarts, self.what = pool, int(max_restarts), what
        #: restarts so far.
        self.count = 0

    def handle(self, failure: Failure) -> None:
        """Restart the failed worker, or raise `WorkerError` (from the worker's exception).

        A `NonFiniteError` (an env returned NaN or inf, a gradient was NaN) is not a fault that a
        restart cures: it stops training at once, raised again with the worker named.
        """
        pool, n = self.pool, self.pool.n
        if isinstance(failure.exception, NonFiniteError) or failure.message.startswith("NonFiniteError: "):
            detail = failure.message[len("NonFiniteError: "):] if failure.message.startswith("NonFiniteError: ") \
                else str(failure.exception)
            raise NonFiniteError(f"worker {failure.index} of {n}: {detail}") from failure.exception
        if pool.completed[failure.index] == 0:
            message = (f"{failure.describe(n)} before completing any work, so it was not restarted; training was "
                       f"stopped and all workers were shut down.")
            if failure.kind == "died" and pool.backend == "process":
                message += (" (A worker process that dies at once often means the main script has no "
                            "`if __name__ == '__main__':` guard: spawned workers import it again. See docs/runner.md.)")
        elif self.count >= self.max_restarts:
            message = (f"{failure.describe(n)}; workers were restarted {self.count} times already in this run "
                       f"(max_worker_restarts={self.max_restarts}), so training was stopped and all workers were "
                       f"shut down.")
        else:
            self.count += 1
            logger.warning("%s; its unfinished %s was dropped and the worker restarted (restart %d of at most %d)",
                           failure.describe(n), self.what, self.count, self.max_restarts)
            pool.restart(failure.index)
            return
        if failure.traceback:
            message += f" Worker traceback:\n{failure.traceback}"
        raise WorkerError(message) from failure.exception


def start_pool(pool: "WorkerPool", weights: Callable[[], np.ndarray], method: str, *,
               max_worker_restarts: int = 3) -> float:
    """Start `pool` and wait until every worker has run `method(weights())`; returns the seconds it took.

    Worker processes and Ray actors take seconds to start (importing TF, building the env and
    network, tracing); a kept pool pays that once, here, before training. A worker that fails
    is restarted as in training (`Restarts`); on any error the pool is closed.
    """
    t0 = time.perf_counter()
    restarts = Restarts(pool, max_worker_restarts, what="start")
    try:
        pool.start()
        flat = weights()
        waiting = set(range(pool.n))
        for i in waiting:
            if not pool.busy(i):
                pool.submit(i, method, flat)
        while waiting:
            for ev in pool.poll(timeout=1.0):
                if ev.failure is not None:
                    restarts.handle(ev.failure)
                    pool.submit(ev.index, method, weights())
                else:
                    waiting.discard(ev.index)
    except BaseException:
        pool.close()
        raise
    return time.perf_counter() - t0
