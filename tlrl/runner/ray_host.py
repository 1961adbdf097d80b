"""The Ray actor around a worker `Host` (`RayHost`), and actors pre-started before their factory is known.

`prestart(n)` starts a local Ray instance (or joins `address`) and `n` actors at once: they import what
workers need (TF: seconds) while this process goes on (`tlrl train` imports TF and builds the agent
meanwhile), then wait for a factory. The next `RayPool` with the same actor options takes them
(`take_spare`) and sends each its factory (`RayHost.setup`); spares it cannot use are killed, so
they never hold CPUs that a pool's own actors wait for. As `tlrl.runner.process.prestart` for processes.
"""
from __future__ import annotations

import importlib
import multiprocessing.connection as mpc
import os
import pickle
from typing import Any, Dict, List, Optional, Sequence, Tuple

from tlrl.runner.host import Host, limit_tf_threads, serve_calls, unpack_factory
from tlrl.runner.ray_channel import connect

#: what a pre-started actor imports while it waits for its factory (TF, TFP and tlrl's worker side).
PRELOAD = ("tlrl.runner.gradient_worker",)
_spares: List[Tuple[Any, Tuple]] = []  # (actor handle, its options key) not taken yet


class RayHost:
    """The Ray actor around a worker `Host` (the factory arrives pickled, as for processes): built with
    its factory, or with none (a pre-started actor, given one by `setup`)."""

    def __init__(self, payload: Optional[bytes], threads: Optional[int], preload: Sequence[str] = ()):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        for module in preload:
            importlib.import_module(module)
        limit_tf_threads(threads)
        self.host: Optional[Host] = None
        if payload is not None:
            self.setup(payload)

    def setup(self, payload: bytes) -> None:
        """Build the worker `Host` from the pickled factory (a pre-started actor's first call)."""
        self.host = Host(unpack_factory(payload))

    def call(self, method: str, args: tuple):
        """`Host.call`, with an exception that cannot be pickled replaced by its text."""
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

    def serve(self, address: Tuple[str, int], authkey: bytes, hello: Tuple[int, int]) -> None:
        """Connect to the learner, say who this is (`hello`), then answer its calls until it says stop
        or hangs up; the worker is closed at the end. Runs for the actor's whole life."""
        try:
            conn = connect(address, authkey)
        except (OSError, EOFError, mpc.AuthenticationError) as exc:
            self.host.close()
            raise ConnectionError(f"the Ray actor could not connect to the learner at {address[0]}:{address[1]} "
                                  f"({type(exc).__name__}: {exc}); every node must be able to reach the "
                                  f"driver's address") from exc
        try:
            conn.send(hello)
            serve_calls(conn, self.call)
        finally:
            conn.close()
            self.host.close()


def actor_options(num_cpus: float = 1.0, scheduling_strategy: Any = "SPREAD",
                  worker_niceness: Optional[int] = 0) -> Dict[str, Any]:
    """The `ray.remote(...).options` of worker actors (see `tlrl.runner.ray_pool.RayPool`)."""
    options: Dict[str, Any] = dict(num_cpus=num_cpus, max_restarts=0, max_task_retries=0,
                                   scheduling_strategy=scheduling_strategy)
    if worker_niceness is not None:
        options["runtime_env"] = {"env_vars": {"RAY_worker_niceness": str(int(worker_niceness))}}
    return options


def _key(options: Dict[str, Any], threads: Optional[int]) -> Tuple:
    return repr(sorted(options.items())), threads


def prestart(n: int, *, address: Optional[str] = None, init_kwargs: Optional[Dict[str, Any]] = None,
             threads_per_worker: Optional[int] = 1, preload: Sequence[str] = PRELOAD, **options: Any) -> None:
    """Start Ray (`tlrl.runner.ray_init.init_ray(address, **init_kwargs)`) and `n` worker actors now, before
    their factory is known; the next `RayPool`s with the same `threads_per_worker` and `options`
    (`actor_options`' arguments) take them."""
    from tlrl.runner.ray_init import init_ray

    ray = init_ray(address, **dict(init_kwargs or {}))
    opts = actor_options(**options)
    cls = ray.remote(RayHost).options(**opts)
    for _ in range(int(n)):
        _spares.append((cls.remote(None, threads_per_worker, tuple(preload)), _key(opts, threads_per_worker)))


def spares() -> List[Tuple[Any, Tuple]]:
    """The pre-started actors no pool has taken yet, with their options key (a copy)."""
    return list(_spares)


def take_spare(ray, options: Dict[str, Any], threads: Optional[int]) -> Optional[Any]:
    """A pre-started actor with these `options` and `threads`, or None; spares that do not match are killed
    (they would hold CPUs that this pool's own actors need)."""
    key = _key(options, threads)
    while _spares:
        actor, spare_key = _spares.pop(0)
        if spare_key == key:
            return actor
        try:
            ray.kill(actor, no_restart=True)
        except Exception:  # noqa: BLE001 - already gone
            pass
    return None
