"""`ProcessPool`: one spawned process per worker, talking over a pipe.

The worker factory is pickled in the parent (so an unpicklable env or network factory fails
at once, with a message saying what to pass instead) and unpickled in the child, which
imports the modules it names: env ids, "package.module:Class" envs and tlrl's own envs work
there as they do here. Only plain data crosses the pipe: method names, numpy arrays, floats,
lists (never TF objects).

Failures. A call that raises comes back as a `Failure` of kind "raised" (with the child's
traceback). A child that dies (killed by a signal, out of memory, a crash in native code) is
seen through its process sentinel and reported as kind "died". Children ignore SIGINT and
SIGTERM (blocked from the moment they are spawned until they ignore them), so a Ctrl-C, or a
SIGTERM that a scheduler (Slurm, systemd) sends to every process of the job, reaches only the
parent, which then stops the run and closes the pool; a child whose parent vanished sees its
pipe close and exits.

Pre-started children. `prestart(n)` spawns worker processes before their factory is known: they
import what workers need (TF: seconds) while this process goes on (`tlrl train` builds the agent
meanwhile), and the next pools take them instead of spawning (`ProcessPool`). Those that no pool
takes are stopped at exit (`stop_spares`).

A child that misses a call's deadline (`call_timeout`, see `tlrl.runner.pools`) is killed
at once (SIGKILL) and reported as kind "timeout".

Closing sends every child a stop message, waits up to `join_timeout` seconds, then kills
(SIGKILL) whatever is left, and joins every process (each join bounded too; a process that
survives SIGKILL, stuck in the kernel, is named in a warning): no child outlives `close()`.
"""
from __future__ import annotations

import atexit
import contextlib
import importlib
import multiprocessing as mp
import multiprocessing.connection as mpc
import os
import pickle
import signal
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from tlrl.runner.host import Host, limit_tf_threads, logger, pack_factory, serve_calls, unpack_factory
from tlrl.runner.worker_pool import START_TIMEOUT, Event, Failure, MakeFactory, WorkerPool, event_of

_KILL_WAIT_SECONDS = 2.0  # the bound on each join after SIGKILL
_PARENTS_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # the learner's to handle; its workers ignore them
#: what a pre-started child imports while it waits for its factory (TF, TFP and tlrl's worker side).
PRELOAD = ("tlrl.runner.gradient_worker",)
_spares: List[Tuple[Any, Any, Optional[int]]] = []  # (process, parent's end of its pipe, threads) not taken yet


@contextlib.contextmanager
def _parents_signals_blocked():
    """Block SIGINT and SIGTERM in this thread while a child is spawned, as multiprocessing's resource
    tracker does: the child inherits the mask, so a signal sent to the process group while it starts up
    stays pending until `_child_main` ignores it. A signal sent to this process meanwhile is not lost:
    another thread takes it, or it waits here until unblocked."""
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()  # every spawn needs it, and starting it unblocks these signals
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _PARENTS_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _child_main(conn, payload: Optional[bytes], threads: Optional[int], preload: Sequence[str] = ()) -> None:
    """Entry point of a worker process: build the worker, then serve calls until told to stop. A pre-started
    child (`payload` None) imports `preload` first, then waits for its factory (None or a closed pipe: exit)."""
    for sig in _PARENTS_SIGNALS:  # Ctrl-C and a scheduler's SIGTERM are the parent's to handle
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _PARENTS_SIGNALS)  # blocked at spawn; pending ones are dropped
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if payload is None:
        for module in preload:
            try:
                importlib.import_module(module)
            except Exception:  # noqa: BLE001 - the factory's own imports report what is missing
                pass
        limit_tf_threads(threads)
        try:
            payload = conn.recv()
        except (EOFError, OSError):
            payload = None
        if payload is None:
            os._exit(0)
    factory = unpack_factory(payload)
    limit_tf_threads(threads)
    host = Host(factory)
    try:
        serve_calls(conn, host.call)
    finally:
        host.close()
    # Told to stop (or the parent is gone): leave now. A normal interpreter exit tears TF down,
    # which took 1.4-3.5 s here, and `close()` would wait for it (then terminate the child).
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed stream: nothing to flush
            pass
    os._exit(0)


_ENV_LOCK = threading.Lock()
_BLAS_THREADS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def _child_environment(threads: Optional[int]):
    """The environment a child is spawned with: BLAS thread pools of `threads` threads (unless set already).

    numpy is imported before any code of ours runs in the child, so its BLAS reads these at
    spawn. As Ray does for its actors (OMP_NUM_THREADS = the actor's CPUs), each worker gets
    small thread pools instead of one BLAS thread per core: N workers on a machine with few
    cores would otherwise start N x cores threads for matrix products of a few KB.
    """
    if threads is None:
        yield
        return
    with _ENV_LOCK:
        added = [k for k in _BLAS_THREADS if k not in os.environ]
        for k in added:
            os.environ[k] = str(threads)
        try:
            yield
        finally:
            for k in added:
                os.environ.pop(k, None)


def _wait_exit(procs, timeout: float) -> list:
    """Wait until every process has exited or `timeout` s have passed; returns those still running."""
    deadline = time.monotonic() + timeout
    running = [p for p in procs if p.exitcode is None]
    while running and time.monotonic() < deadline:
        mpc.wait([p.sentinel for p in running], timeout=max(deadline - time.monotonic(), 0.0))
        running = [p for p in running if p.exitcode is None]
    return running


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def _spawn(ctx, args: tuple, name: str, threads: Optional[int]):
    """Spawn `_child_main(child end, *args)`; returns the process and the parent's end of the pipe."""
    parent, child = ctx.Pipe(duplex=True)
    proc = ctx.Process(target=_child_main, args=(child, *args), name=name, daemon=True)
    with _child_environment(threads), _parents_signals_blocked():
        proc.start()
    child.close()
    return proc, parent


def prestart(n: int, *, threads_per_worker: Optional[int] = 1, preload: Sequence[str] = PRELOAD,
             name: str = "tlrl-worker") -> List[int]:
    """Start `n` worker processes now, before their factory is known (see the module docstring); the next
    `ProcessPool`s with the same `threads_per_worker` take them. Returns their pids."""
    ctx = mp.get_context("spawn")
    if not _spares:
        atexit.register(stop_spares)  # (registering twice is harmless: the second call finds none)
    pids = []
    for _ in range(int(n)):
        proc, parent = _spawn(ctx, (None, threads_per_worker, tuple(preload)), f"{name}-spare", threads_per_worker)
        _spares.append((proc, parent, threads_per_worker))
        pids.append(proc.pid)
    return pids


def _take_spare(threads: Optional[int]):
    """A live pre-started `(process, conn)` with `threads` TF threads, or None."""
    for k, (proc, conn, spare_threads) in enumerate(_spares):
        if spare_threads == threads and proc.is_alive():
            del _spares[k]
            return proc, conn
    return None


def stop_spares() -> None:
    """Stop the pre-started processes that no pool took (they only import modules: killed at once)."""
    while _spares:
        proc, conn, _ = _spares.pop()
        conn.close()
        proc.kill()
        proc.join(timeout=_KILL_WAIT_SECONDS)


class ProcessPool(WorkerPool):
    """Workers in spawned processes (see the module docstring).

    Args:
        make_factory: `(index, attempt) -> picklable zero-argument worker factory`.
        n: number of workers.
        name: process name prefix.
        threads_per_worker: TF intra/inter-op threads in each child (None: TF's default).
        join_timeout: seconds `close()` waits for a child to finish its call and exit before
            terminating it.
        call_timeout, start_timeout: deadlines of a call (see `WorkerPool`).
    """

    backend = "process"

    def __init__(self, make_factory: MakeFactory, n: int, *, name: str = "tlrl-worker",
                 threads_per_worker: Optional[int] = 1, join_timeout: float = 2.0,
                 call_timeout: Optional[float] = None, start_timeout: Optional[float] = START_TIMEOUT):
        super().__init__(make_factory, n, call_timeout=call_timeout, start_timeout=start_timeout)
        self.name = name
        self.threads_per_worker = threads_per_worker
        self.join_timeout = join_timeout
        self._ctx = mp.get_context("spawn")
        self._procs: List[Optional[Any]] = [None] * n
        self._conns: List[Optional[Any]] = [None] * n

    def _start(self, i: int) -> None:
        payload = pack_factory(self.make_factory(i, self.attempts[i]), "process")
        spare = _take_spare(self.threads_per_worker)
        if spare is not None:  # pre-started: it has imported TF already
            proc, parent = spare
            try:
                parent.send(payload)
            except OSError:  # it died meanwhile
                parent.close()
                spare = None
        if spare is None:
            proc, parent = _spawn(self._ctx, (payload, self.threads_per_worker), f"{self.name}-{i}",
                                  self.threads_per_worker)
        self._procs[i], self._conns[i] = proc, parent

    def _stop(self, i: int) -> None:
        self._shut_down([i], timeout=2.0)

    def _abandon(self, i: int) -> None:
        self._shut_down([i], timeout=0.0)  # killed now: it is stuck in its call

    def _reap(self, pairs, timeout: float) -> None:
        """Wait up to `timeout` s for the processes to exit, then SIGKILL the rest (they ignore SIGTERM);
        join all (bounded)."""
        procs = [p for p, _ in pairs]
        for p in _wait_exit(procs, timeout):
            p.kill()
        for p in procs:
            p.join(timeout=_KILL_WAIT_SECONDS)
            if p.exitcode is None:
                logger.warning("worker process %s did not exit after SIGKILL (stuck in the kernel?); "
                               "it is left behind", p.pid)
        for _, conn in pairs:
            conn.close()

    def _close(self) -> None:
        self._shut_down(range(self.n), timeout=self.join_timeout)

    def _shut_down(self, indices, timeout: float) -> None:
        """Send the stop message to these children, then reap them (`_reap`)."""
        pairs = []
        for i in indices:
            proc, conn = self._procs[i], self._conns[i]
            self._procs[i] = self._conns[i] = None
            if proc is None:
                continue
            try:
                conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            pairs.append((proc, conn))
        if pairs:
            self._reap(pairs, timeout=timeout)

    def _submit(self, i: int, method: str, args: tuple) -> None:
        try:
            self._conns[i].send((method, args))
        except (BrokenPipeError, OSError):
            pass  # the child is dead: its sentinel reports it at the next poll

    def _poll(self, timeout: Optional[float]) -> List[Event]:
        watch: Dict[Any, int] = {}
        for i in range(self.n):
            if self._busy[i] and self._procs[i] is not None:
                watch[self._conns[i]] = i
                watch[self._procs[i].sentinel] = i
        if not watch:
            return []
        ready = mpc.wait(list(watch), timeout=timeout)
        events: Dict[int, Event] = {}
        for obj in ready:
            i = watch[obj]
            if i in events:
                continue
            conn, proc = self._conns[i], self._procs[i]
            try:
                if conn.poll():
                    events[i] = event_of(i, conn.recv())
                    continue
            except (EOFError, OSError, pickle.UnpicklingError):
                pass
            proc.join(timeout=1.0)
            code = proc.exitcode
            how = f"was killed by {_signal_name(code)}" if code is not None and code < 0 else \
                f"exited unexpectedly with code {code}"
            events[i] = Event(i, failure=Failure(i, "died", f"(process {proc.pid}) {how}"))
        return list(events.values())

    def info(self, i: int) -> Dict[str, Any]:
        proc = self._procs[i]
        return {"pid": proc.pid if proc is not None else None}

    def kill(self, i: int) -> None:
        proc = self._procs[i]
        if proc is not None and proc.pid is not None:
            os.kill(proc.pid, signal.SIGKILL)
