"""`RayPool`: one Ray actor per worker, on this machine or across a Ray cluster.

`init_ray(address=None)` starts a local Ray instance if none is running: every Ray process of
it listens on 127.0.0.1 only and the dashboard is off (`include_dashboard=False`) unless
asked for. `address="auto"` (or `"host:port"`) joins an existing cluster instead, started
with `ray start --head` (see docs/runner.md). tlrl must be importable on every node.

Actors are placed with Ray's "SPREAD" strategy, so on a cluster the workers go to different
nodes. Each actor reserves `num_cpus` CPUs. Ray's own restarts are off (`max_restarts=0`):
the driver restarts a dead actor itself, so it can count restarts and drop the lost work.

How calls travel. Ray places, starts and kills the actors and reports the death of one that
never connected; the calls themselves go over one direct socket per actor, with the protocol
of `ProcessPool`'s pipe (`tlrl.runner.host.serve_calls`: pickled `(method, args)` out, a
`Host.call` result back). Why: a plain Ray actor call (submit, `ray.get`) costs the learner
several times the CPU and wall time of a call over the socket (`scripts/bench_async.py
--channel` measures both to the same actor class in one run; BENCHMARKS.md), and on a small
machine the learner's CPU per update is what limits A3C's scaling.

Pre-started actors (`tlrl.runner.ray_host.prestart`, called by `tlrl train`) are taken before
new ones are created.

The socket (`tlrl.runner.ray_channel`): an authenticated listener on an ephemeral port with
a fresh random key, bound to 127.0.0.1 for a local Ray, else the driver's node address; each
actor connects in its long-running `serve` task and says who it is (worker index and
generation), so the connection of a replaced actor is never taken for its successor's. Calls
submitted before an actor has connected wait in the pool and are sent when it does.

Failures. An actor that dies after connecting closes its socket: "died". One that dies before
(or whose constructor fails) is seen through its `serve` task's object reference, which the
pool checks (`ray.wait(..., timeout=0)`) while a busy worker has not connected yet. A busy,
connected actor whose node vanished without closing the socket is found the same way, with
Ray, once a second (`_DEATH_CHECK_SECONDS`), and by TCP keepalive; one that stops answering,
or stops in the middle of a message, misses the call's deadline (`call_timeout`) and is
killed (`ray.kill`).
"""
from __future__ import annotations

import itertools
import multiprocessing.connection as mpc
import os
import pickle
import signal
import time
from typing import Any, Dict, List, Optional, Tuple

from tlrl.runner.host import logger, pack_factory
from tlrl.runner.ray_host import RayHost, actor_options, take_spare
from tlrl.runner.ray_init import init_ray, shutdown_ray, started_here  # noqa: F401 - re-exported
from tlrl.runner.ray_channel import BACKLOG, MESSAGE_SECONDS, CallListener
from tlrl.runner.worker_pool import START_TIMEOUT, Event, Failure, MakeFactory, WorkerPool, event_of

_START_CHECK_SECONDS = 0.1  # how often poll checks busy actors that have not connected yet
_DEATH_CHECK_SECONDS = 1.0  # how often poll asks Ray whether busy connected actors are still alive
_CLOSE_SECONDS = 5.0  # how long close() waits for the actors to close their workers


class RayPool(WorkerPool):
    """Workers in Ray actors (see the module docstring).

    Args:
        make_factory: `(index, attempt) -> picklable zero-argument worker factory`.
        n: number of workers.
        address: cluster to join (None: local instance, see `init_ray`).
        init_kwargs: more `ray.init` arguments.
        num_cpus: CPUs each actor reserves.
        threads_per_worker: TF intra/inter-op threads in each actor (None: TF's default).
        scheduling_strategy: Ray scheduling strategy of the actors ("SPREAD" by default).
        worker_niceness: the actors' `nice` value (`RAY_worker_niceness` in their runtime env);
            None leaves Ray's default of 15. 0 by default: at 15 an actor gets a small share of
            a core the learner also uses (Ape-X on this 2-core machine: 1.4-1.7k env steps/s
            against 2.1-2.2k for a process actor), while worker processes run at the learner's 0.
        call_timeout, start_timeout: deadlines of a call (see `WorkerPool`); a result that stops
            half-way is dropped after `call_timeout` per read (`MESSAGE_SECONDS` without one).
    """

    backend = "ray"

    def __init__(self, make_factory: MakeFactory, n: int, *, address: Optional[str] = None,
                 init_kwargs: Optional[Dict[str, Any]] = None, num_cpus: float = 1.0,
                 threads_per_worker: Optional[int] = 1, scheduling_strategy: Any = "SPREAD",
                 worker_niceness: Optional[int] = 0, call_timeout: Optional[float] = None,
                 start_timeout: Optional[float] = START_TIMEOUT):
        super().__init__(make_factory, n, call_timeout=call_timeout, start_timeout=start_timeout)
        self.ray = init_ray(address, **dict(init_kwargs or {}))
        self._options = actor_options(num_cpus, scheduling_strategy, worker_niceness)
        self._actor_cls = self.ray.remote(RayHost).options(**self._options)
        self.threads_per_worker = threads_per_worker
        self._listener: Optional[CallListener] = None
        self._generations = itertools.count(1)
        self._generation = [0] * n
        self._actors: List[Optional[Any]] = [None] * n
        self._info_refs: List[Optional[Any]] = [None] * n
        self._serve_refs: List[Optional[Any]] = [None] * n
        self._conns: List[Optional[Any]] = [None] * n
        self._queued: List[Optional[tuple]] = [None] * n  # a call submitted before the actor connected
        self._next_death_check = 0.0

    @property
    def listen_address(self) -> Optional[Tuple[str, int]]:
        """`(host, port)` the actors connect to (None before `start()`)."""
        return self._listener.address if self._listener is not None else None

    def _bind_host(self) -> str:
        if started_here():
            return "127.0.0.1"
        from ray.util import get_node_ip_address

        return get_node_ip_address()

    def _start(self, i: int) -> None:
        payload = pack_factory(self.make_factory(i, self.attempts[i]), "ray")
        if self._listener is None:
            self._listener = CallListener(self._bind_host(), backlog=max(self.n, BACKLOG),
                                          message_seconds=self.call_timeout or MESSAGE_SECONDS)
        self._generation[i] = generation = next(self._generations)
        actor = take_spare(self.ray, self._options, self.threads_per_worker)  # pre-started (`ray_host.prestart`)
        if actor is None:
            actor = self._actor_cls.remote(payload, self.threads_per_worker)
        else:
            actor.setup.remote(payload)  # an actor runs its calls in order: before info and serve
        self._actors[i] = actor
        self._info_refs[i] = actor.info.remote()  # before serve, which occupies the actor for good
        self._serve_refs[i] = actor.serve.remote(self._listener.address, self._listener.authkey, (i, generation))

    def _stop(self, i: int) -> None:
        actor, conn = self._actors[i], self._conns[i]
        self._actors[i] = self._info_refs[i] = self._serve_refs[i] = self._conns[i] = self._queued[i] = None
        self._generation[i] = 0
        if conn is not None:
            conn.close()
        if actor is not None:
            try:
                self.ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already dead
                pass

    def _close(self) -> None:
        serving = []
        for i, conn in enumerate(self._conns):
            if conn is not None:
                try:
                    conn.send(None)  # after its call in flight, the actor closes its worker and returns
                    serving.append(self._serve_refs[i])
                except OSError:
                    pass
        if serving:
            try:
                self.ray.wait(serving, num_returns=len(serving), timeout=_CLOSE_SECONDS)
            except Exception:  # noqa: BLE001 - closing is best effort; the kill below is not
                pass
        for i in range(self.n):
            self._stop(i)
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def _submit(self, i: int, method: str, args: tuple) -> None:
        conn = self._conns[i]
        if conn is None:
            self._queued[i] = (method, args)
            return
        try:
            conn.send((method, args))
        except OSError:
            pass  # the actor is dead: its closed socket reports it at the next poll

    def _adopt(self) -> None:
        """Take the actors' new connections: the current generation's are kept (and sent their queued
        call), those of replaced actors closed."""
        for index, generation, conn in self._listener.take():
            if 0 <= index < self.n and generation == self._generation[index] and self._conns[index] is None:
                self._conns[index] = conn
                msg, self._queued[index] = self._queued[index], None
                if msg is not None:
                    try:
                        conn.send(msg)
                    except OSError:
                        pass  # reported at the next poll
            else:
                conn.close()

    def _poll(self, timeout: Optional[float]) -> List[Event]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            busy = [i for i in range(self.n) if self._busy[i] and self._actors[i] is not None]
            if not busy:
                return []
            if any(self._conns[i] is None for i in busy):
                self._adopt()
            watch = {self._conns[i]: i for i in busy if self._conns[i] is not None}
            waiting = [i for i in busy if self._conns[i] is None]
            if waiting:
                events = self._unconnected_deaths(waiting)
                if events:
                    return events
            now = time.monotonic()
            left = None if deadline is None else max(deadline - now, 0.0)
            nap = _START_CHECK_SECONDS if waiting else max(self._next_death_check - now, 0.0)
            left = nap if left is None else min(left, nap)
            ready = mpc.wait([*watch, self._listener.wakeup] if waiting else list(watch), timeout=left)
            events = [self._receive(watch[c]) for c in ready if c in watch]
            if watch and time.monotonic() >= self._next_death_check:  # Ray knows of deaths a socket may not show
                self._next_death_check = time.monotonic() + _DEATH_CHECK_SECONDS
                answered = {ev.index for ev in events}
                events += self._connected_deaths([i for i in watch.values() if i not in answered])
            if events or (deadline is not None and time.monotonic() >= deadline):
                return events

    def _receive(self, i: int) -> Event:
        try:
            return event_of(i, self._conns[i].recv())
        except (EOFError, OSError, pickle.UnpicklingError) as exc:
            self._conns[i].close()
            self._conns[i] = None
            what = ("it stopped in the middle of a message" if isinstance(exc, BlockingIOError) else
                    f"its connection to the learner closed ({type(exc).__name__})")
            return self._died(i, self._serve_refs[i], what, wait=1.0)

    def _connected_deaths(self, indices: List[int]) -> List[Event]:
        """Failures of connected actors that Ray reports ended (e.g. their node is gone) while their socket is open."""
        if not indices:
            return []
        refs = {self._serve_refs[i]: i for i in indices}
        done, _ = self.ray.wait(list(refs), num_returns=len(refs), timeout=0)
        events = []
        for ref in done:
            i = refs[ref]
            self._conns[i].close()
            self._conns[i] = None
            events.append(self._died(i, ref, "Ray reports its task ended", wait=0.0))
        return events

    def _unconnected_deaths(self, waiting: List[int]) -> List[Event]:
        """Failures of busy actors that ended (died, or failed to connect) before connecting."""
        refs = {self._serve_refs[i]: i for i in waiting}
        done, _ = self.ray.wait(list(refs), num_returns=len(refs), timeout=0)
        return [self._died(refs[ref], ref, "it ended before connecting to the learner", wait=0.0) for ref in done]

    def _died(self, i: int, serve_ref: Any, fallback: str, wait: float) -> Event:
        """The "died" failure of worker `i`, with Ray's reason when its `serve` task has one within `wait` s."""
        reason = fallback
        try:
            done, _ = self.ray.wait([serve_ref], timeout=wait)
            if done:
                self.ray.get(done[0])
        except self.ray.exceptions.RayTaskError as exc:  # serve raised (e.g. could not connect)
            cause = getattr(exc, "cause", None)
            reason = f"{type(cause).__name__}: {cause}" if cause is not None else _first_line(exc)
        except self.ray.exceptions.RayError as exc:  # the actor died (killed, crashed, constructor failed)
            reason = _first_line(exc)
        return Event(i, failure=Failure(i, "died", f"(Ray actor) died: {reason}"))

    def info(self, i: int) -> Dict[str, Any]:
        ref = self._info_refs[i]
        if ref is None:
            return {"pid": None, "node_id": None}
        return self.ray.get(ref)

    def kill(self, i: int) -> None:
        pid = self.info(i)["pid"]
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:  # on another machine, or gone already
            logger.warning("worker %d (pid %s) is not a local process; asking Ray to kill its actor", i, pid)
            self.ray.kill(self._actors[i], no_restart=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
