"""Validation of hyperparameters against an algorithm's config dataclass.

A wrong name or a wrong type raises an error that names it, the expected type
and close matches, before any network is built. So does a number out of its range: NaN and
infinity are refused for every field, and a config class lists the interval of each of its
float fields in `RANGES` (e.g. `{"tau": "(0, 1]", "learning_rate": "(0, inf)"}`, checked by
`check_ranges`; a schedule is checked at its start value). A field named in the class's `AUTO`
also takes SB3's "auto" (the algorithm picks the value) or "auto_<start>" (checked at start).
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from typing import Any, Dict, Mapping, Optional, Type, TypeVar

C = TypeVar("C")


def matches(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin is typing.Union:
        return any(matches(value, h) for h in typing.get_args(hint))
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
        return all(matches(v, args[0]) for v in value) if args else True
    if origin in (dict, typing.Mapping, __import__("collections.abc").abc.Mapping):
        return isinstance(value, dict)
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if origin is __import__("collections.abc").abc.Callable or hint is typing.Callable:
        return callable(value)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def describe(hint: Any) -> str:
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
        if not matches(value, hints[key]):
            raise TypeError(
                f"{owner} hyperparameter {key!r} must be {describe(hints[key])}, got {value!r} ({type(value).__name__})"
            )
    ranges: Mapping[str, str] = getattr(cls, "RANGES", {})
    for key, value in overrides.items():
        if _non_finite(value):
            allowed = f"a finite number {_interval_words(ranges[key]) if key in ranges else ''}".rstrip()
            raise ValueError(f"{owner} hyperparameter {key!r} must be {allowed}, got {value!r} "
                             f"(NaN and infinity are never valid)")
    config = cls(**overrides)
    check_ranges(config, ranges, owner)
    check = getattr(config, "validate", None)
    if check is not None:
        check()
    return config


def require(condition: bool, message: str) -> None:
    """Raise ValueError(message) unless condition holds (for config `validate` methods)."""
    if not condition:
        raise ValueError(message)


def _non_finite(value: Any) -> bool:
    """True for a NaN or infinite float, also inside lists, tuples and dicts."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return any(_non_finite(v) for v in value)
    if isinstance(value, dict):
        return any(_non_finite(v) for v in value.values())
    return False


def _parse_interval(interval: str):
    low, high = (float(x) for x in interval[1:-1].split(","))
    return interval[0] == "(", low, high, interval[-1] == ")"


def in_interval(value: float, interval: str) -> bool:
    """Whether `value` is a finite number inside `interval`, written "(0, 1]", "[0, inf)", "(-inf, inf)".

    >>> in_interval(1.0, "(0, 1]"), in_interval(0.0, "(0, 1]"), in_interval(float("inf"), "(0, inf)")
    (True, False, False)
    """
    open_low, low, high, open_high = _parse_interval(interval)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    above = value > low if open_low else value >= low
    below = value < high if open_high else value <= high
    return above and below


def _interval_words(interval: str) -> str:
    open_low, low, high, open_high = _parse_interval(interval)
    if math.isinf(high) and math.isinf(low):
        return ""
    if math.isinf(high):
        return f"{'>' if open_low else '>='} {low:g}"
    return f"in {interval}"


def check_ranges(config: Any, ranges: Mapping[str, str], owner: Optional[str] = None) -> None:
    """Raise ValueError unless each field of `config` named in `ranges` lies in its interval.

    A None value (an optional setting left off) passes; a schedule (a "lin_<start>" string or
    a callable of progress) is checked at its start value, progress 0; in a field of the config's
    `AUTO`, "auto" passes and "auto_<start>" is checked at its start (`auto_start`).

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Cfg:
    ...     tau: float = 0.005
    >>> check_ranges(Cfg(tau=2.0), {"tau": "(0, 1]"})
    Traceback (most recent call last):
    ...
    ValueError: tau must be in (0, 1], got 2.0
    """
    from tlrl.schedules import make_schedule

    prefix = f"{owner}: " if owner else ""
    for name, interval in ranges.items():
        spec = getattr(config, name)
        if isinstance(spec, str) and name in getattr(config, "AUTO", ()):
            spec = auto_start(spec, name)  # None for "auto": the algorithm picks the value
        if spec is None:
            continue
        words = _interval_words(interval) or "a finite number"
        value, where = spec, ""
        if isinstance(spec, str) or callable(spec):
            try:
                value, where = make_schedule(spec, name)(0.0), f" at progress 0 (schedule {spec!r})"
            except ValueError as exc:
                raise ValueError(f"{prefix}{exc}; allowed: {words}") from None
        if not in_interval(value, interval):
            raise ValueError(f"{prefix}{name} must be {words}, got {value!r}{where}")


def auto_start(spec: str, name: str) -> Optional[float]:
    """SB3's form of a value the algorithm tunes itself: None for "auto", x for "auto_<x>" (its start value).

    >>> auto_start("auto", "ent_coef"), auto_start("auto_0.1", "ent_coef")
    (None, 0.1)
    """
    value = None
    if spec.startswith("auto_"):
        try:
            value = float(spec[len("auto_"):])
        except ValueError:
            pass
    if value is None and spec != "auto":
        raise ValueError(f"{name} must be a number, 'auto' or 'auto_<start>' (e.g. 'auto_0.1'), got {spec!r}")
    return value
