"""`ThreadPool`: the "thread" backend of `tlrl.runner.pools`, one daemon thread per worker.

TF and numpy release the GIL in their kernels, so the small networks of several workers
overlap partly. A thread cannot be stopped from outside, so a worker whose call misses its
deadline is abandoned rather than killed (see `ThreadPool`).
"""
from __future__ import annotations

import itertools
import os
import queue
import threading
import time
from typing import Any, Dict, List, Optional

from tlrl.runner.host import Host, logger
from tlrl.runner.worker_pool import START_TIMEOUT, Event, MakeFactory, WorkerPool, event_of

#: seconds `ThreadPool.close` waits for the calls in flight before leaving their threads running.
THREAD_JOIN_TIMEOUT = 10.0


class ThreadPool(WorkerPool):
    """One daemon thread per worker; `close()` waits for the calls in flight, then joins them all.

    A thread cannot be stopped from outside: one whose call misses its deadline is abandoned
    (it is never sent work or joined again, and closes its worker if the call ever returns),
    and `close()` waits at most `join_timeout` seconds in all, then leaves the threads still in a
    call running as daemon threads, with a warning.

    Args:
        close_workers: close the workers (their envs) on `close()`; False keeps them for reuse.
        name: thread name prefix.
        call_timeout, start_timeout: deadlines of a call (see `WorkerPool`).
        join_timeout: seconds `close()` waits for the calls in flight.
    """

    backend = "thread"

    def __init__(self, make_factory: MakeFactory, n: int, *, close_workers: bool = True, name: str = "tlrl-worker",
                 call_timeout: Optional[float] = None, start_timeout: Optional[float] = START_TIMEOUT,
                 join_timeout: float = THREAD_JOIN_TIMEOUT):
        super().__init__(make_factory, n, call_timeout=call_timeout, start_timeout=start_timeout)
        self.close_workers = close_workers
        self.name = name
        self.join_timeout = float(join_timeout)
        self._outbox: "queue.Queue" = queue.Queue()
        self._inboxes: List[Optional[queue.Queue]] = [None] * n
        self._threads: List[Optional[threading.Thread]] = [None] * n
        self._generation = [0] * n
        self._counter = itertools.count(1)
        self._retired: List[threading.Thread] = []

    def _start(self, i: int) -> None:
        gen = next(self._counter)
        self._generation[i] = gen
        inbox: "queue.Queue" = queue.Queue()
        factory = self.make_factory(i, self.attempts[i])
        thread = threading.Thread(target=self._main, args=(i, gen, factory, inbox),
                                  name=f"{self.name}-{i}", daemon=True)
        self._inboxes[i], self._threads[i] = inbox, thread
        thread.start()

    def _main(self, i: int, gen: int, factory, inbox: "queue.Queue") -> None:
        host = Host(factory)
        close = True
        try:
            while True:
                msg = inbox.get()
                if msg is None or msg == "keep":
                    close = msg is None
                    return
                method, args = msg
                self._outbox.put((i, gen, host.call(method, args)))
        finally:
            if close:
                host.close()

    def _stop(self, i: int, *, close_worker: bool = True) -> None:
        if self._inboxes[i] is not None:
            self._inboxes[i].put(None if close_worker else "keep")
            self._retired.append(self._threads[i])
            self._inboxes[i] = self._threads[i] = None
            self._generation[i] = -1

    def _abandon(self, i: int) -> None:
        thread = self._threads[i]
        if self._inboxes[i] is not None:
            self._inboxes[i].put(None)  # if the call ever returns: close the worker and end
            self._inboxes[i] = self._threads[i] = None
            self._generation[i] = -1  # its late result is dropped
            logger.warning("worker %d's thread %s is stuck in its call and cannot be stopped; it is left running "
                           "as a daemon thread and its worker is not used again", i, thread.name)

    def _close(self) -> None:
        for i in range(self.n):
            self._stop(i, close_worker=self.close_workers)
        deadline = time.monotonic() + self.join_timeout
        for thread in self._retired:
            thread.join(max(deadline - time.monotonic(), 0.0))
            if thread.is_alive():
                logger.warning("worker thread %s did not finish its call within %g s of close(); it is left "
                               "running as a daemon thread", thread.name, self.join_timeout)
        self._retired = []

    def _submit(self, i: int, method: str, args: tuple) -> None:
        self._inboxes[i].put((method, args))

    def _poll(self, timeout: Optional[float]) -> List[Event]:
        events = []
        try:
            item = self._outbox.get(timeout=timeout) if timeout is None or timeout > 0 else self._outbox.get_nowait()
            while True:
                i, gen, out = item
                if gen == self._generation[i]:  # results of a replaced worker are dropped
                    events.append(event_of(i, out))
                item = self._outbox.get_nowait()
        except queue.Empty:
            pass
        return events

    def info(self, i: int) -> Dict[str, Any]:
        thread = self._threads[i]
        return {"pid": os.getpid(), "thread": thread.name if thread is not None else None}
