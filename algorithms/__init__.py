"""tlrl's algorithms, found by name through one registry (used by the CLI and the contract tests).

`get_algorithm` also takes ``"package.module:Class"``, a user's own agent class (a composed agent,
docs/compose.md), which resolves only to a subclass of `tlrl.agent.BaseAgent`, checked before
anything is called: importing the module is the only code that runs.

>>> from tlrl.algorithms import REGISTRY
>>> sorted(REGISTRY)
['a3c', 'ddpg', 'dqn', 'ppo', 'sac', 'td3']
>>> get_algorithm("tlrl.algorithms.dqn:DQN") is get_algorithm("dqn")
True
>>> get_algorithm("os:system")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
tlrl.algorithms.AlgorithmSpecError: 'os:system' names a function, not a tlrl agent class ...
"""
from __future__ import annotations

import difflib
import importlib
import inspect
from typing import Any, Dict, Type

from tlrl.named_class import describe_kind, find_named, is_class

#: name -> "module:Class" (imported lazily, so `import tlrl.algorithms` stays cheap).
REGISTRY: Dict[str, str] = {
    "ppo": "tlrl.algorithms.ppo:PPO",
    "dqn": "tlrl.algorithms.dqn:DQN",
    "ddpg": "tlrl.algorithms.ddpg:DDPG",
    "td3": "tlrl.algorithms.td3:TD3",
    "sac": "tlrl.algorithms.sac:SAC",
    "a3c": "tlrl.algorithms.a3c:A3C",
}

_FORMS = ("a registered name (" + ", ".join(sorted(REGISTRY)) + ") or 'package.module:Class' with Class a "
          "subclass of tlrl.agent.BaseAgent")


class AlgorithmSpecError(ValueError):
    """An algorithm name that does not resolve to a tlrl agent class."""


def get_algorithm(name: str) -> Type:
    """The agent class `name` names: a key of `REGISTRY` (case-insensitive) or ``"package.module:Class"``.

    A ``"package.module:Class"`` string (from a config, a run's config.yaml, Python) imports the
    module, which runs its top-level code, then looks the name up without calling anything
    (`tlrl.named_class.find_named`: names, nested ones too, are read with `inspect.getattr_static`,
    so no module ``__getattr__``, descriptor or metaclass hook runs) and returns it only if it is a
    subclass of `tlrl.agent.BaseAgent` with a `Config`. A ``__main__`` module is refused before
    importing it (importing one runs a program).

    Raises:
        AlgorithmSpecError (a ValueError): an unknown name, a module that cannot be imported, a
            missing name, or anything but an agent class (a function, another class, an instance).
    """
    if not isinstance(name, str):
        raise AlgorithmSpecError(f"An algorithm must be named by a string, got {name!r} of type {type(name).__name__}")
    if ":" not in name:
        key = name.lower()
        if key not in REGISTRY:
            close = difflib.get_close_matches(key, REGISTRY, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise AlgorithmSpecError(f"Unknown algorithm {name!r}.{hint} Available: {', '.join(sorted(REGISTRY))}, "
                                     f"or 'package.module:Class' naming your own agent class")
        module, cls = REGISTRY[key].split(":")
        return getattr(importlib.import_module(module), cls)
    return _resolve_class(name)


def _resolve_class(spec: str) -> Type:
    from tlrl.agent import BaseAgent

    cls = find_named(spec, what="algorithm", defines="agent class", error=AlgorithmSpecError,
                     accept=lambda obj: is_class(obj) and issubclass(obj, BaseAgent),
                     refuse=lambda obj: _not_an_agent(spec, obj))
    if cls is BaseAgent:
        raise AlgorithmSpecError(f"{spec!r} names tlrl.agent.BaseAgent itself, the base of every agent; name a "
                                 f"subclass that implements an algorithm.")
    if inspect.getattr_static(cls, "Config", None) is None:
        raise AlgorithmSpecError(f"{spec!r} names the agent class {cls.__module__}.{cls.__qualname__}, which sets "
                                 f"no Config (a dataclass of its hyperparameters); it cannot be built from a config.")
    return cls


def _not_an_agent(spec: str, obj: Any) -> AlgorithmSpecError:
    return AlgorithmSpecError(
        f"{spec!r} names {describe_kind(obj)}, not a tlrl agent class (a subclass of tlrl.agent.BaseAgent). An "
        f"algorithm given as a string (in a config or a run's config.yaml) may only be {_FORMS}, so a data file never "
        f"calls other code."
    )


def __getattr__(name: str):
    for key, target in REGISTRY.items():
        if target.endswith(":" + name):
            return get_algorithm(key)
    raise AttributeError(f"module 'tlrl.algorithms' has no attribute {name!r}")
