"""tlrl's algorithms, found by name through one registry (used by the CLI and the contract tests).

`get_algorithm` also takes ``"package.module:Class"``, a user's own agent class (a composed agent,
docs/compose.md), which resolves only to a subclass of `tlrl.agent.BaseAgent`, checked before
anything is called: importing the module is the only code that runs.

>>> from tlrl.algorithms import REGISTRY
>>> sorted(REGISTRY)
['a3c', 'ddpg', 'dqn', 'ppo', 'td3']
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
import types
from typing import Any, Dict, Type

#: name -> "module:Class" (imported lazily, so `import tlrl.algorithms` stays cheap).
REGISTRY: Dict[str, str] = {
    "ppo": "tlrl.algorithms.ppo:PPO",
    "dqn": "tlrl.algorithms.dqn:DQN",
    "ddpg": "tlrl.algorithms.ddpg:DDPG",
    "td3": "tlrl.algorithms.td3:TD3",
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
    (classes nested in classes are read with `inspect.getattr_static`, so no descriptor or
    metaclass hook runs) and returns it only if it is a subclass of `tlrl.agent.BaseAgent` with a
    `Config`. A ``__main__`` module is refused before importing it (importing one runs a program).

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
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr or ":" in attr:
        raise AlgorithmSpecError(f"Algorithm {spec!r} is not of the form 'package.module:Class'.")
    if "__main__" in module_name.split("."):  # importing `pkg.__main__` runs a program
        raise AlgorithmSpecError(f"Algorithm {spec!r} names a __main__ module, which runs a program when imported; "
                                 f"name the module that defines the agent class (e.g. move it into my_agents.py).")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise AlgorithmSpecError(f"Could not import module {module_name!r} of algorithm {spec!r}: {exc}. Add the "
                                     f"folder that holds it to PYTHONPATH (or install its package); worker processes "
                                     f"need to import it too.") from exc
        raise AlgorithmSpecError(f"Importing module {module_name!r} of algorithm {spec!r} failed: it needs "
                                 f"{exc.name!r}, which is not installed ({exc}).") from exc
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - top-level code can raise anything, exit() included
        raise AlgorithmSpecError(f"Importing module {module_name!r} of algorithm {spec!r} failed: "
                                 f"{type(exc).__name__}: {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        if not (_is_module(obj) or _is_class(obj)):  # never look inside an instance or a function
            raise _not_an_agent(spec, obj)
        try:
            obj = inspect.getattr_static(obj, part)  # no module __getattr__, descriptor or metaclass hook runs
        except AttributeError:
            names = [n for n in vars(module) if not n.startswith("_")]
            close = difflib.get_close_matches(attr, names, n=5, cutoff=0.5)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise AlgorithmSpecError(f"Module {module_name!r} has no attribute {attr!r} (from algorithm "
                                     f"{spec!r}).{hint}") from None
    from tlrl.agent import BaseAgent

    if obj is BaseAgent:
        raise AlgorithmSpecError(f"{spec!r} names tlrl.agent.BaseAgent itself, the base of every agent; name a "
                                 f"subclass that implements an algorithm.")
    if _is_class(obj) and issubclass(obj, BaseAgent):
        if inspect.getattr_static(obj, "Config", None) is None:
            raise AlgorithmSpecError(f"{spec!r} names the agent class {_describe(obj)}, which sets no Config "
                                     f"(a dataclass of its hyperparameters); it cannot be built from a config.")
        return obj
    raise _not_an_agent(spec, obj)


def _is_module(obj: Any) -> bool:
    return issubclass(type(obj), types.ModuleType)  # type(): no `__class__` property of obj runs


def _is_class(obj: Any) -> bool:
    return issubclass(type(obj), type)


def _describe(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _kind(obj: Any) -> str:
    if _is_class(obj):
        return f"the class {_describe(obj)}"
    if _is_module(obj):
        return f"the module {obj.__name__}"
    if issubclass(type(obj), (types.FunctionType, types.BuiltinFunctionType, types.MethodType, staticmethod,
                              classmethod)):
        return "a function"
    return f"a {type(obj).__name__} object"


def _not_an_agent(spec: str, obj: Any) -> AlgorithmSpecError:
    return AlgorithmSpecError(
        f"{spec!r} names {_kind(obj)}, not a tlrl agent class (a subclass of tlrl.agent.BaseAgent). An algorithm "
        f"given as a string (in a config or a run's config.yaml) may only be {_FORMS}, so a data file never calls "
        f"other code."
    )


def __getattr__(name: str):
    for key, target in REGISTRY.items():
        if target.endswith(":" + name):
            return get_algorithm(key)
    raise AttributeError(f"module 'tlrl.algorithms' has no attribute {name!r}")
