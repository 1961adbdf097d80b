"""Hyperparameter schedules as functions of training progress (0 at start, 1 at the end).

A schedule spec is a number (constant), a zoo-style string `"lin_1e-3"` (linear from
1e-3 to 0), or a callable `progress -> value`.
"""
from __future__ import annotations

import math
from typing import Callable, Union

ScheduleSpec = Union[float, int, str, Callable[[float], float]]


def linear(start: float, end: float = 0.0) -> Callable[[float], float]:
    """Linear from `start` at progress 0 to `end` at progress 1."""
    return lambda progress: start + (end - start) * min(max(progress, 0.0), 1.0)


def linear_then_constant(start: float, end: float, fraction: float) -> Callable[[float], float]:
    """Linear from `start` to `end` over the first `fraction` of training, then `end` (epsilon schedules)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    return lambda progress: start + (end - start) * min(max(progress, 0.0) / fraction, 1.0)


def make_schedule(spec: ScheduleSpec, name: str = "value") -> Callable[[float], float]:
    """Turn a schedule spec into a callable.

    >>> make_schedule("lin_0.2")(0.5)
    0.1
    >>> make_schedule(3e-4)(0.9)
    0.0003
    """
    if callable(spec):
        return spec
    if isinstance(spec, bool):
        raise TypeError(f"{name}: expected a number, 'lin_<start>' or a callable, got {spec!r}")
    if isinstance(spec, (int, float)):
        value = _finite(float(spec), spec, name)
        return lambda progress: value
    if isinstance(spec, str) and spec.startswith("lin_"):
        try:
            start = float(spec[4:])
        except ValueError:
            pass
        else:
            return linear(_finite(start, spec, name), 0.0)
    raise ValueError(f"{name}: expected a number, 'lin_<start>' (e.g. 'lin_1e-3') or a callable, got {spec!r}")


def _finite(value: float, spec: ScheduleSpec, name: str) -> float:
    if not math.isfinite(value):
        raise ValueError(f"{name}: a schedule must start from a finite number, got {spec!r} (NaN and infinity are "
                         f"never valid)")
    return value
