"""Validation of hyperparameters against an algorithm's config dataclass.

A wrong name or a wrong type raises an error that names it, the expected type
and close matches, before any network is built.
"""
from __future__ import annotations

import dataclasses
import difflib
import typing
from typing import Any, Dict, Type, TypeVar

C = TypeVar("C")


def _matches(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin is typing.Union:
        return any(_matches(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is bool:
        return isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (tuple, list, typing.Sequence, __import__("collections.abc").abc.Sequence):
        if not isinstance(value, (tuple, list)):
            return False
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return all(_matches(v, args[0]) for v in value) if args else True
    if origin in (dict, typing.Mapping, __import__("collections.abc").abc.Mapping):
        return isinstance(value, dict)
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if origin is __import__("collections.abc").abc.Callable or hint is typing.Callable:
        return callable(value)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _describe(hint: Any) -> str:
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")


def build_config(cls: Type[C], owner: str, overrides: Dict[str, Any]) -> C:
    """Instantiate config dataclass `cls` from keyword overrides, checking names and types.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Cfg:
    ...     learning_rate: float = 1e-3
    >>> build_config(Cfg, "PPO", {"lerning_rate": 0.1})
    Traceback (most recent call last):
    ...
    TypeError: PPO got an unknown hyperparameter 'lerning_rate'. Did you mean 'learning_rate'? Valid: learning_rate
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key, value in overrides.items():
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=3)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise TypeError(f"{owner} got an unknown hyperparameter {key!r}.{hint} Valid: {', '.join(sorted(fields))}")
        if not _matches(value, hints[key]):
            raise TypeError(
                f"{owner} hyperparameter {key!r} must be {_describe(hints[key])}, got {value!r} ({type(value).__name__})"
            )
    config = cls(**overrides)
    check = getattr(config, "validate", None)
    if check is not None:
        check()
    return config


def require(condition: bool, message: str) -> None:
    """Raise ValueError(message) unless condition holds (for config `validate` methods)."""
    if not condition:
        raise ValueError(message)
