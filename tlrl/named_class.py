"""Find what a ``"package.module:Name"`` string names, running no code but the module's import.

A config, a saved agent or a run's config.yaml names code by such a string (an env class, an agent
class). `find_named` is the one lookup behind `tlrl.envs.resolve_env_id` and
`tlrl.algorithms.get_algorithm`: it refuses a ``__main__`` module before importing anything,
imports the module (its top-level code is the only code that runs), and reads each dotted name
with `inspect.getattr_static`, so no module ``__getattr__``, descriptor, property or metaclass hook
runs. It never calls what it finds: each caller decides what it accepts (a `gymnasium.Env`
subclass, an agent class) and says in its own error what was found instead (`describe_kind`).

>>> def refuse(obj): return ValueError(f"found {describe_kind(obj)}, not a class")
>>> find_named("collections:OrderedDict", what="example", defines="class", error=ValueError,
...            accept=is_class, refuse=refuse).__name__
'OrderedDict'
>>> find_named("os:system", what="example", defines="class", error=ValueError, accept=is_class, refuse=refuse)
Traceback (most recent call last):
...
ValueError: found a function, not a class
"""
from __future__ import annotations

import difflib
import importlib
import inspect
import os
import sys
import types
from typing import Any, Callable, Optional, Type


def is_module(obj: Any) -> bool:
    """Whether `obj` is a module, asked without running any ``__class__`` property of `obj`."""
    return issubclass(type(obj), types.ModuleType)


def is_class(obj: Any) -> bool:
    """Whether `obj` is a class, asked without running any ``__class__`` property of `obj`."""
    return issubclass(type(obj), type)


def describe_kind(obj: Any) -> str:
    """What a name turned out to be, for an error message: 'a function', 'the class x.Y', 'a module'..."""
    if is_class(obj):
        return f"the class {obj.__module__}.{obj.__qualname__}"
    if is_module(obj):
        return f"the module {obj.__name__}"
    if issubclass(type(obj), (types.FunctionType, types.BuiltinFunctionType, types.MethodType)):
        return "a function"
    return f"a {type(obj).__name__} object"


def where_searched() -> str:
    """Where Python looked for a module, in the words a user can act on."""
    cwd = os.getcwd()
    on_path = any(os.path.abspath(p or os.curdir) == cwd for p in sys.path)
    pythonpath = os.environ.get("PYTHONPATH") or "not set"
    if on_path:
        return f"Python searched the current directory ({cwd}), PYTHONPATH ({pythonpath}) and the installed packages."
    return (f"Python searched PYTHONPATH ({pythonpath}) and the installed packages, but not the current directory "
            f"({cwd}).")


def _import(module_name: str, spec: str, what: str, error: Type[Exception]) -> types.ModuleType:
    """Import the module of ``spec`` (running its top-level code), with plain errors."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            top = module_name.split(".")[0]
            raise error(
                f"Could not import module {module_name!r} of {what} {spec!r}: {exc}. {where_searched()} Run the "
                f"`tlrl` command from the folder that holds {top}/ (or {top}.py), add that folder to PYTHONPATH, or "
                "install the package (e.g. `pip install -e .` in your project); worker processes need to import it too."
            ) from exc
        raise error(f"Importing module {module_name!r} of {what} {spec!r} failed: it needs {missing!r}, "
                    f"which is not installed ({exc}).") from exc
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - top-level code can raise anything, exit() included
        raise error(f"Importing module {module_name!r} of {what} {spec!r} failed: "
                    f"{type(exc).__name__}: {exc}") from exc


def find_named(spec: str, *, what: str, defines: str, error: Type[Exception], accept: Callable[[Any], bool],
               refuse: Callable[[Any], Exception], registered: Optional[Callable[[str], bool]] = None) -> Any:
    """The object that ``spec = "package.module:Name"`` names (``Name`` may be dotted: ``Outer.Inner``).

    Args:
        spec: the string, as the user wrote it (error messages quote it).
        what: what the string is, for messages: ``"env spec"``, ``"algorithm"``.
        defines: what the named module should define, for messages: ``"env class"``.
        error: the caller's exception type, raised (with a message) for a malformed spec, a
            ``__main__`` module, a module that fails to import or a missing name.
        accept: the caller's rule for what a name may hold (e.g. a `gymnasium.Env` subclass).
        refuse: the caller's error for anything else (naming it with `describe_kind`), raised as
            well when a dotted name goes through something other than a module or a class:
            nothing is read inside an instance or a function.
        registered: for names that importing the module may register elsewhere (Gymnasium ids):
            when the module has no such attribute and ``registered(name)`` holds, the name itself
            (a string) is returned. Without it, ``Name`` must be a dotted Python name.

    Returns:
        What the name holds, accepted and never called, or the registered name.
    """
    module_name, _, attr = spec.partition(":")
    label = what[:1].upper() + what[1:]
    dotted = all(part.isidentifier() for part in attr.split("."))
    if not module_name or not attr or (registered is None and not dotted):  # an id may be "ns/Name-v0"
        raise error(f"{label} {spec!r} is not of the form 'package.module:Class'.")
    if "__main__" in module_name.split("."):  # `pkg.__main__` modules run a program when imported
        raise error(f"{label} {spec!r} names a __main__ module, which runs a program when imported; name the module "
                    f"that defines the {defines} (move the class out of the script into a module of its own).")
    module = _import(module_name, spec, what, error)
    obj: Any = module
    for part in attr.split("."):
        if not (is_module(obj) or is_class(obj)):  # never look inside an instance or a function
            raise refuse(obj)
        try:
            obj = inspect.getattr_static(obj, part)
        except AttributeError:
            if registered is not None and registered(attr):  # e.g. "ale_py:ALE/Pong-v5" registered that id
                return attr
            names = [n for n in vars(module) if not n.startswith("_")]
            close = difflib.get_close_matches(attr, names, n=5, cutoff=0.5)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise error(f"Module {module_name!r} has no attribute {attr!r} (from {what} {spec!r}).{hint}") from None
    if accept(obj):
        return obj
    raise refuse(obj)
