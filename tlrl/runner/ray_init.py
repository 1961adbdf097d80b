"""Ray in this process: `init_ray` starts a local instance bound to 127.0.0.1 (or joins a cluster), `shutdown_ray`
stops the one it started. Used by the Ray pool (`tlrl.runner.ray_pool`) and its pre-started actors."""
from __future__ import annotations

import os
import sys
from typing import Any, Optional

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
    in this process (inherited by Ray's processes) before Ray is imported: it is how Ray binds to
    the loopback address only. Ray reads it when imported, so if `ray` was imported before with
    another value, a local instance would listen on the machine's network address, and this
    raises a RuntimeError saying what to do instead. To join a real cluster later, do it from a
    fresh process.
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
        os.environ.setdefault(_LOOPBACK_ENV, "0")
        if os.environ[_LOOPBACK_ENV] == "0":
            _check_loopback(ray)
        init_kwargs.setdefault("include_dashboard", False)
        init_kwargs.setdefault("log_to_driver", False)
        init_kwargs.setdefault("configure_logging", False)
        ray.init(**init_kwargs)
        _started_here = True
    else:
        init_kwargs.setdefault("log_to_driver", False)
        ray.init(address=address, **init_kwargs)
    return ray


def _check_loopback(ray) -> None:
    """Raise unless a local Ray started now would take 127.0.0.1 as its node address (see `init_ray`)."""
    from ray.util import get_node_ip_address

    node = get_node_ip_address()  # before ray.init: the address a new local instance would listen on
    if node != "127.0.0.1":
        raise RuntimeError(
            f"Ray was imported before {_LOOPBACK_ENV}=0 was set, so a local Ray started now would listen on this "
            f"machine's network address {node}, not on 127.0.0.1 only. Set {_LOOPBACK_ENV}=0 in the environment "
            f"before importing ray (or let tlrl import it), start Ray yourself with ray.init() (tlrl then uses "
            f"that instance), or pass ray_address to join a running cluster.")


def started_here() -> bool:
    """Whether `init_ray` started the running local Ray instance (bound to 127.0.0.1)."""
    return _started_here


def shutdown_ray() -> None:
    """Shut down the Ray instance that `init_ray` started (a no-op for one started by someone else)."""
    global _started_here
    if _started_here and "ray" in sys.modules:
        import ray

        ray.shutdown()
    _started_here = False

