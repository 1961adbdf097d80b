"""The worker-pool interface: N stateful workers behind one API, and the "sync" pool (`InlinePool`).

A *worker* is any object built by a zero-argument factory (an A3C `GradientWorker`, an Ape-X
actor). The pool builds worker `i` where it lives (its thread, its process, its Ray actor)
from `make_factory(i, attempt)` (in a `tlrl.runner.host.Host`), runs one method call at a
time on it (`submit`), and hands results and failures back to the caller (`poll`). The
drivers (`tlrl.runner.gradient`, `tlrl.runner.apex`) are written once against this
interface, so every backend behaves the same: results arrive in the caller's thread, a
failure names the worker, `restart(i)` replaces a failed worker with a fresh one (its
unfinished call is dropped), and `close()` stops everything. `tlrl.runner.pools.make_pool`
picks the backend.

Deadlines. With `call_timeout` (the drivers' `worker_timeout`), a call that has not answered
within that many seconds is a failure of kind "timeout": the pool stops the silent worker at
once (a process is terminated, then killed; a Ray actor is killed; a thread, which cannot be
stopped, is abandoned as a daemon thread and never used or joined again) and the driver
restarts it like a dead one. A worker's first call also builds it (a process imports TF and
traces its functions, seconds), so it gets `start_timeout` (default `START_TIMEOUT`) if that
is longer. The deadline is a timeout on the wait `poll` does anyway: nothing is added per call.
Calls of the "sync" backend run in the caller's thread and have no deadline.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from tlrl.runner.host import Host

BACKENDS: Tuple[str, ...] = ("sync", "thread", "process", "ray")

#: `(index, attempt) -> zero-argument factory of worker `index``; attempt counts restarts (0 first).
MakeFactory = Callable[[int, int], Callable[[], Any]]

#: seconds a worker's first call may take at least: it also builds the worker (a process or Ray actor
#: starts, imports TF, builds its env and network, traces; 5-9 s on a loaded 2-core machine).
START_TIMEOUT = 300.0


def check_timeout(value: Optional[float], name: str = "worker_timeout") -> Optional[float]:
    """`value` as a float number of seconds, or None (no deadline); a ValueError naming `name` otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number of seconds (or None for no deadline), got {value!r}")
    return float(value)


@dataclasses.dataclass
class Failure:
    """What went wrong with a worker: it `"raised"` an exception, its process/actor `"died"`, or it
    did not answer a call within its deadline (`"timeout"`, and it was stopped)."""

    index: int
    kind: str
    message: str
    traceback: str = ""
    exception: Optional[BaseException] = None

    def describe(self, n_workers: int) -> str:
        what = f"failed with {self.message}" if self.kind == "raised" else self.message
        return f"worker {self.index} of {n_workers} {what}"


@dataclasses.dataclass
class Event:
    """The outcome of one submitted call: `value` if it returned, else `failure`."""

    index: int
    value: Any = None
    failure: Optional[Failure] = None


class WorkerError(RuntimeError):
    """A worker failed and was not restarted (or could not be); training was stopped and all workers shut down.

    The worker's exception, when it raised one that could be sent back, is the `__cause__`.
    """


def event_of(index: int, out: Tuple[str, Any]) -> Event:
    """The `Event` of a `Host.call` result."""
    status, payload = out
    if status == "ok":
        return Event(index, value=payload)
    message, tb, exc = payload
    return Event(index, failure=Failure(index, "raised", message, tb, exc))


# ----- the interface ---------------------------------------------------------------------------
class WorkerPool:
    """`n` workers built by `make_factory(i, attempt)`; one call in flight per worker.

    Use: `start()`, then `submit(i, method, *args)` and `poll(timeout)` for the `Event`s,
    `restart(i)` after a failure, and `close()` at the end (also as a context manager).

    Args:
        make_factory: `(index, attempt) -> zero-argument worker factory`.
        n: number of workers.
        call_timeout: seconds a call may take before its worker counts as failed ("timeout")
            and is stopped (None: no deadline). See the module docstring.
        start_timeout: the deadline of a worker's first call (which builds it), if longer.
    """

    backend: str = ""

    def __init__(self, make_factory: MakeFactory, n: int, *, call_timeout: Optional[float] = None,
                 start_timeout: Optional[float] = START_TIMEOUT):
        if n < 1:
            raise ValueError(f"a worker pool needs at least one worker, got {n}")
        self.make_factory = make_factory
        self.n = int(n)
        self.call_timeout = check_timeout(call_timeout, "call_timeout")
        self.start_timeout = check_timeout(start_timeout, "start_timeout")
        #: restarts of each worker so far.
        self.attempts = [0] * self.n
        #: calls completed by each worker (all attempts).
        self.completed = [0] * self.n
        self._busy = [False] * self.n
        self._answered = [False] * self.n  # the current attempt has answered a call (it is built)
        self._deadline: List[Optional[float]] = [None] * self.n
        self._started = False
        self._closed = False

    # lifecycle
    def start(self) -> None:
        """Start every worker; a no-op if the pool is running already (pools can be kept across runs)."""
        if self._closed:
            raise RuntimeError(f"this {self.backend!r} worker pool was closed; make a new one")
        if self._started:
            return
        self._started = True
        for i in range(self.n):
            self._start(i)

    @property
    def running(self) -> bool:
        """Started and not closed: `submit` can be called."""
        return self._started and not self._closed

    def restart(self, i: int) -> None:
        """Replace worker `i` by a fresh one (its unfinished call is dropped)."""
        self._stop(i)
        self._busy[i] = self._answered[i] = False
        self._deadline[i] = None
        self.attempts[i] += 1
        self._start(i)

    def close(self) -> None:
        """Stop every worker (idempotent); nothing started by the pool survives it."""
        if self._closed:
            return
        self._closed = True
        self._close()

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # calls
    def busy(self, i: int) -> bool:
        return self._busy[i]

    def submit(self, i: int, method: str, *args: Any) -> None:
        """Run `worker_i.method(*args)`; its outcome comes back from `poll`."""
        if self._busy[i]:
            raise RuntimeError(f"worker {i} already has a call in flight")
        self._busy[i] = True
        limit = self._limit(i)
        self._deadline[i] = None if limit is None else time.monotonic() + limit
        self._submit(i, method, args)

    def poll(self, timeout: Optional[float] = None) -> List[Event]:
        """Outcomes of finished calls (and failures of busy workers, missed deadlines included),
        waiting up to `timeout` seconds for the first (None: until one arrives or a deadline
        passes). May return an empty list."""
        soonest = min((d for d, busy in zip(self._deadline, self._busy) if busy and d is not None), default=None)
        if soonest is not None:  # wake up for the deadline
            left = max(soonest - time.monotonic(), 0.0)
            timeout = left if timeout is None else min(timeout, left)
        events = self._poll(timeout)
        for ev in events:
            self._busy[ev.index] = False
            self._deadline[ev.index] = None
            self._answered[ev.index] = True
            if ev.failure is None:
                self.completed[ev.index] += 1
        if soonest is not None and time.monotonic() >= soonest:  # after the answers that arrived in time
            events += self._expire()
        return events

    def _limit(self, i: int) -> Optional[float]:
        """The deadline in seconds of worker `i`'s next call (None: no deadline)."""
        if self.call_timeout is None:
            return None
        if self._answered[i]:
            return self.call_timeout
        return max(self.call_timeout, self.start_timeout or 0.0)

    def _expire(self) -> List[Event]:
        """Stop the busy workers whose deadline has passed; their "timeout" failures."""
        now, events = time.monotonic(), []
        for i in range(self.n):
            deadline = self._deadline[i]
            if not self._busy[i] or deadline is None or now < deadline:
                continue
            limit = self._limit(i)
            what = (f"did not answer within {limit:g} s (worker_timeout)" if self._answered[i] else
                    f"did not start and answer its first call within {limit:g} s")
            self._abandon(i)
            self._busy[i], self._deadline[i] = False, None
            events.append(Event(i, failure=Failure(i, "timeout", f"{what} and was stopped")))
        return events

    # to implement
    def _start(self, i: int) -> None:
        raise NotImplementedError

    def _stop(self, i: int) -> None:
        raise NotImplementedError

    def _abandon(self, i: int) -> None:
        """Stop worker `i` at once, without waiting for its call (it missed its deadline)."""
        self._stop(i)

    def _close(self) -> None:
        raise NotImplementedError

    def _submit(self, i: int, method: str, args: tuple) -> None:
        raise NotImplementedError

    def _poll(self, timeout: Optional[float]) -> List[Event]:
        raise NotImplementedError

    def info(self, i: int) -> Dict[str, Any]:
        """Where worker `i` runs: `pid`, and `node_id` for Ray."""
        return {"pid": os.getpid()}

    def kill(self, i: int) -> None:
        """Kill worker `i` abruptly, as a crash would (processes and Ray actors only; for tests)."""
        raise NotImplementedError(f"the {self.backend!r} backend cannot kill a worker")


# ----- in the caller's thread --------------------------------------------------------------------
class InlinePool(WorkerPool):
    """Workers in the caller's thread: `poll` runs the oldest submitted call and returns its outcome.

    Args:
        close_workers: close the workers (their envs) on `close()`; False keeps them for reuse.
    """

    backend = "sync"

    def __init__(self, make_factory: MakeFactory, n: int, *, close_workers: bool = True):
        super().__init__(make_factory, n)
        self.close_workers = close_workers
        self._hosts: List[Optional[Host]] = [None] * n
        self._queue: List[Tuple[int, str, tuple]] = []

    def _start(self, i: int) -> None:
        self._hosts[i] = Host(self.make_factory(i, self.attempts[i]))

    def _stop(self, i: int) -> None:
        self._queue = [q for q in self._queue if q[0] != i]
        if self._hosts[i] is not None:
            self._hosts[i].close()
            self._hosts[i] = None

    def _close(self) -> None:
        self._queue = []
        if self.close_workers:
            for host in self._hosts:
                if host is not None:
                    host.close()
        self._hosts = [None] * self.n

    def _submit(self, i: int, method: str, args: tuple) -> None:
        self._queue.append((i, method, args))

    def _poll(self, timeout: Optional[float]) -> List[Event]:
        if not self._queue:
            return []
        i, method, args = self._queue.pop(0)
        return [event_of(i, self._hosts[i].call(method, args))]


def check_backend(backend: str) -> None:
    """Raise a ValueError naming the valid backends unless `backend` is one."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(repr(b) for b in BACKENDS)}, got {backend!r}")
