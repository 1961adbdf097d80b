"""`RayPool`: one Ray actor per worker, on this machine or across a Ray cluster.

`init_ray(address=None)` starts a local Ray instance if none is running: every Ray process of
it listens on 127.0.0.1 only and the dashboard is off (`include_dashboard=False`) unless
asked for. `address="auto"` (or `"host:port"`) joins an existing cluster instead, started
with `ray start --head` (see docs/runner.md). tlrl must be importable on every node.

Actors are placed with Ray's "SPREAD" strategy, so on a cluster the workers go to different
nodes. Each actor reserves `num_cpus` CPUs. Ray's own restarts are off (`max_restarts=0`):
the driver restarts a dead actor itself, so it can count restarts and drop the lost work.
"""
from __future__ import annotations

import os
import pickle
import signal
import sys
from typing import Any, Dict, List, Optional

from tlrl.runner.pools import Event, Failure, Host, MakeFactory, WorkerPool, _event, logger

_LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
_started_here = False


def init_ray(address: Optional[str] = None, **init_kwargs: Any):
    """Make sure Ray is initialized in this process and return the `ray` module.

    Args:
        address: None: reuse the running Ray session, or start a local one bound to
            127.0.0.1, without dashboard and without forwarding worker logs to this
            process (pass `include_dashboard=True` / `log_to_driver=True` to change that).
            Otherwise the address of a running cluster ("auto", "10.0.0.1:6379", "ray://...").
        **init_kwargs: more `ray.init` arguments (e.g. `num_cpus`, `object_store_memory`).

    Starting a local instance sets the environment variable RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
    in this process (inherited by Ray's processes): it is how Ray binds to the loopback
    address only. To join a real cluster later, do it from a fresh process.
    """
    global _started_here
    if address is None and "ray" not in sys.modules:
        os.environ.setdefault(_LOOPBACK_ENV, "0")
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("backend='ray' needs Ray: pip install 'tlrl[ray]' (or pip install 'ray[default]')") from exc
    if ray.is_initialized():
        return ray
    if address is None:
        from ray._private import ray_constants

        os.environ.setdefault(_LOOPBACK_ENV, "0")
        if os.environ[_LOOPBACK_ENV] == "0":
            ray_constants.ENABLE_RAY_CLUSTER = False  # loopback only, even if ray was imported before
        init_kwargs.setdefault("include_dashboard", False)
        init_kwargs.setdefault("log_to_driver", False)
        init_kwargs.setdefault("configure_logging", False)
        ray.init(**init_kwargs)
        _started_here = True
    else:
        init_kwargs.setdefault("log_to_driver", False)
        ray.init(address=address, **init_kwargs)
    return ray


def shutdown_ray() -> None:
    """Shut down the Ray instance that `init_ray` started (a no-op for one started by someone else)."""
    global _started_here
    if _started_here and "ray" in sys.modules:
        import ray

        ray.shutdown()
    _started_here = False


class RayHost:
    """The Ray actor around a worker `Host` (the factory arrives pickled, as for processes)."""

    def __init__(self, payload: bytes, threads: Optional[int]):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from tlrl.runner.process import _limit_tf_threads, unpack_factory

        factory = unpack_factory(payload)
        _limit_tf_threads(threads)
        self.host = Host(factory)

    def call(self, method: str, args: tuple):
        status, payload = self.host.call(method, args)
        if status == "error":
            message, tb, exc = payload
            try:
                pickle.dumps(exc)
            except Exception:  # noqa: BLE001 - send the text only
                exc = None
            payload = (message, tb, exc)
        return status, payload

    def info(self) -> Dict[str, Any]:
        import ray

        return {"pid": os.getpid(), "node_id": ray.get_runtime_context().get_node_id()}

    def close(self) -> None:
        self.host.close()


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
    """

    backend = "ray"

    def __init__(self, make_factory: MakeFactory, n: int, *, address: Optional[str] = None,
                 init_kwargs: Optional[Dict[str, Any]] = None, num_cpus: float = 1.0,
                 threads_per_worker: Optional[int] = 1, scheduling_strategy: Any = "SPREAD"):
        super().__init__(make_factory, n)
        self.ray = init_ray(address, **dict(init_kwargs or {}))
        self._actor_cls = self.ray.remote(RayHost).options(
            num_cpus=num_cpus, max_restarts=0, max_task_retries=0, scheduling_strategy=scheduling_strategy)
        self.threads_per_worker = threads_per_worker
        self._actors: List[Optional[Any]] = [None] * n
        self._info_refs: List[Optional[Any]] = [None] * n
        self._pending: Dict[Any, tuple] = {}  # ObjectRef -> (index, actor)

    def _start(self, i: int) -> None:
        from tlrl.runner.process import pack_factory

        payload = pack_factory(self.make_factory(i, self.attempts[i]), "ray")
        actor = self._actor_cls.remote(payload, self.threads_per_worker)
        self._actors[i] = actor
        self._info_refs[i] = actor.info.remote()

    def _stop(self, i: int) -> None:
        actor = self._actors[i]
        self._actors[i] = self._info_refs[i] = None
        self._pending = {ref: v for ref, v in self._pending.items() if v[0] != i}
        if actor is not None:
            try:
                self.ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already dead
                pass

    def _close(self) -> None:
        actors = [a for a in self._actors if a is not None]
        self._pending = {}
        if actors:
            refs = [a.close.remote() for a in actors]
            try:
                self.ray.wait(refs, num_returns=len(refs), timeout=5.0)
            except Exception:  # noqa: BLE001 - closing is best effort; the kill below is not
                pass
        for a in actors:
            try:
                self.ray.kill(a, no_restart=True)
            except Exception:  # noqa: BLE001 - already dead
                pass
        self._actors = [None] * self.n
        self._info_refs = [None] * self.n

    def _submit(self, i: int, method: str, args: tuple) -> None:
        actor = self._actors[i]
        self._pending[actor.call.remote(method, args)] = (i, actor)

    def _poll(self, timeout: Optional[float]) -> List[Event]:
        if not self._pending:
            return []
        refs = list(self._pending)
        ready, _ = self.ray.wait(refs, num_returns=1, timeout=timeout)
        if not ready:
            return []
        ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0)
        events = []
        exceptions = self.ray.exceptions
        for ref in ready:
            i, actor = self._pending.pop(ref)
            if actor is not self._actors[i]:
                continue  # a replaced actor
            try:
                events.append(_event(i, self.ray.get(ref)))
            except exceptions.RayActorError as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                events.append(Event(i, failure=Failure(i, "died", f"(Ray actor) died: {first}")))
            except exceptions.RayError as exc:
                events.append(Event(i, failure=Failure(i, "raised", f"{type(exc).__name__}: {exc}", "", None)))
        return events

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
