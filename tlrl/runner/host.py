"""The worker's side of every backend: build a worker from its factory and answer calls on it.

`Host` runs next to a worker (in the caller's thread, a thread, a process or a Ray actor) and
never raises: a call's outcome comes back as `("ok", value)` or `("error", (message,
traceback, exception))`. `serve_calls` is the loop of a remote worker (a process over its
pipe, a Ray actor over its socket), `pack_factory`/`unpack_factory` carry the worker factory
to it, and `limit_tf_threads` sizes TF's thread pools there. Nothing here imports TF.
"""
from __future__ import annotations

import logging
import pickle
import sys
import traceback
from typing import Any, Callable, Optional, Sequence, Tuple

logger = logging.getLogger("tlrl.runner")


def describe_exception(exc: BaseException) -> Tuple[str, str]:
    """`("TypeName: message", formatted traceback)` of an exception."""
    return f"{type(exc).__name__}: {exc}", "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


class Host:
    """Builds a worker from its factory and runs calls on it; never raises.

    `call` returns `("ok", value)` or `("error", (message, traceback, exception or None))`. A
    factory that raised makes every call return its error, so construction failures travel
    the same way as call failures.
    """

    def __init__(self, factory: Callable[[], Any]):
        self.worker = None
        self.build_error = None
        try:
            self.worker = factory()
        except Exception as exc:  # noqa: BLE001 - reported by the first call
            self.build_error = ("error", describe_exception(exc) + (exc,))

    def call(self, method: str, args: Sequence[Any]) -> Tuple[str, Any]:
        if self.build_error is not None:
            return self.build_error
        try:
            return "ok", getattr(self.worker, method)(*args)
        except Exception as exc:  # noqa: BLE001 - handed to the driver, which decides
            return "error", describe_exception(exc) + (exc,)

    def close(self) -> None:
        close = getattr(self.worker, "close", None)
        if callable(close):
            try:
                close()
            except Exception:  # noqa: BLE001 - closing is best effort
                logger.debug("closing a worker raised", exc_info=True)


def serve_calls(conn, call: Callable[[str, tuple], Tuple[str, Any]]) -> None:
    """Answer the calls that arrive on `conn` until told to stop: the loop of every remote worker.

    Receives `(method, args)`, sends back `call(method, args)` (a `Host.call` result). `None`
    stops the loop, and so does a closed connection (the learner is gone). A result that cannot
    be pickled goes back as an error saying so. Used by a process over its pipe and by a Ray
    actor over its socket (`tlrl.runner.ray_pool`), so both speak the same protocol.
    """
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):  # the learner is gone
            return
        if msg is None:
            return
        out = call(*msg)
        try:
            conn.send(out)
        except (BrokenPipeError, OSError):
            return
        except Exception as exc:  # noqa: BLE001 - the result (or exception) did not pickle
            conn.send(("error", (f"{type(exc).__name__}: the result of {msg[0]} could not be sent to the "
                                 f"learner ({exc})", "", None)))


def limit_tf_threads(threads: Optional[int]) -> None:
    """Set TF's thread pools before TF runs anything (a no-op if TF is not imported)."""
    if threads is None:
        return
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TF already initialized in this process
        pass


def pack_factory(factory, backend: str) -> bytes:
    """The worker factory as bytes for the worker's process or actor, or a TypeError saying what can travel.

    The bytes go straight from this process to the worker it starts (never through a file),
    as `multiprocessing` itself would send them."""
    try:
        return pickle.dumps(factory)
    except Exception as exc:  # noqa: BLE001 - explain what can travel to a process
        where = "its process" if backend == "process" else "a Ray actor"
        raise TypeError(
            f"backend={backend!r} sends each worker's factory to {where}, but {factory!r} cannot be pickled "
            f"({type(exc).__name__}: {exc}). Use an env id or 'package.module:Class' string (or a class or "
            f"function defined at the top level of an importable module) instead of a lambda, a local class "
            f"or an env instance."
        ) from exc


def unpack_factory(payload: bytes):
    """`pack_factory`'s factory, rebuilt in the worker; one that cannot be rebuilt (e.g. a module that
    does not import there) becomes a factory raising that error, reported by the first call."""
    try:
        return pickle.loads(payload)
    except Exception as exc:  # noqa: BLE001 - reported by the first call
        return _Raise(describe_exception(exc)[0])


class _Raise:
    """A factory that raises the error met while unpickling the real one."""

    def __init__(self, message: str):
        self.message = message

    def __call__(self):
        raise RuntimeError(f"the worker factory could not be rebuilt in the worker process: {self.message}")
