"""Worker pools: N stateful workers behind one interface (`tlrl.runner.worker_pool.WorkerPool`), in the
caller's thread, on threads, in processes or in Ray actors; `make_pool` picks one.

Backends:

- `"sync"` (`tlrl.runner.worker_pool.InlinePool`): every worker lives in the caller's thread
  and a call runs when results are polled, oldest first. Deterministic; no parallelism.
- `"thread"` (`tlrl.runner.thread_pool.ThreadPool`): one thread per worker. TF and numpy
  release the GIL in their kernels, so small networks overlap partly.
- `"process"` (`tlrl.runner.process.ProcessPool`): one spawned process per worker; messages
  are pickled numpy arrays over a pipe. Real parallelism; a killed process is detected.
- `"ray"` (`tlrl.runner.ray_pool.RayPool`): one Ray actor per worker, on this machine or a
  cluster (Ray itself is imported only when such a pool is made).

Imports point one way: `host` (the worker's side) <- `worker_pool` (the interface) <- the
backends <- this module <- the drivers (`gradient`, `apex`).
"""
from __future__ import annotations

from typing import Any, Dict, Optional

from tlrl.runner.host import Host, describe_exception, logger
from tlrl.runner.process import ProcessPool
from tlrl.runner.ray_pool import RayPool
from tlrl.runner.thread_pool import ThreadPool
from tlrl.runner.worker_pool import (BACKENDS, START_TIMEOUT, Event, Failure, InlinePool, MakeFactory, WorkerError,
                                     WorkerPool, check_backend, check_timeout)

__all__ = ["BACKENDS", "START_TIMEOUT", "Event", "Failure", "Host", "InlinePool", "MakeFactory", "ProcessPool",
           "RayPool", "ThreadPool", "WorkerError", "WorkerPool", "check_backend", "check_timeout",
           "describe_exception", "logger", "make_pool"]


def make_pool(backend: str, make_factory: MakeFactory, n: int, *, close_workers: bool = True,
              name: str = "tlrl-worker", ray_address: Optional[str] = None,
              ray_init_kwargs: Optional[Dict[str, Any]] = None, num_cpus: float = 1.0,
              threads_per_worker: Optional[int] = 1, call_timeout: Optional[float] = None) -> WorkerPool:
    """The pool of `backend` ("sync", "thread", "process" or "ray") for `n` workers.

    Args:
        backend: where the workers run (see the module docstring).
        make_factory: `(index, attempt) -> zero-argument worker factory`; for "process" and
            "ray" the factory must be picklable (module-level classes and functions,
            `functools.partial` of them, env ids or "package.module:Class" strings).
        close_workers: in-process backends: close the workers on `close()` (False: the
            caller keeps and reuses them). Remote workers are always closed.
        ray_address: "ray": join this cluster (e.g. "auto" or "10.0.0.1:6379"); None starts
            (or reuses) a local Ray instance bound to 127.0.0.1 without a dashboard.
        ray_init_kwargs: extra `ray.init` arguments.
        num_cpus: "ray": CPUs each actor reserves.
        threads_per_worker: "process" and "ray": TF intra- and inter-op threads of each worker
            (None: TF's default). One thread suits small networks, several workers per core.
        call_timeout: seconds a call may take before its worker counts as failed and is stopped
            (None: no deadline; "sync" calls have none). See `tlrl.runner.worker_pool`.
    """
    if backend == "sync":
        return InlinePool(make_factory, n, close_workers=close_workers)
    if backend == "thread":
        return ThreadPool(make_factory, n, close_workers=close_workers, name=name, call_timeout=call_timeout)
    if backend == "process":
        return ProcessPool(make_factory, n, name=name, threads_per_worker=threads_per_worker,
                           call_timeout=call_timeout)
    if backend == "ray":
        return RayPool(make_factory, n, address=ray_address, init_kwargs=ray_init_kwargs, num_cpus=num_cpus,
                       threads_per_worker=threads_per_worker, call_timeout=call_timeout)
    raise ValueError(f"unknown backend {backend!r}; use one of {', '.join(repr(b) for b in BACKENDS)}")
