"""The largest env-step count tlrl trains for, and the check every `learn` makes of its argument.

Step counters are stored as 64-bit integers (checkpoints, run state, TF counters); a count that
does not fit would pass `learn` and then fail at the first checkpoint, losing the training. So
a count is bounded by `MAX_STEPS` (2**62, leaving room for the overshoot of a last rollout)
and refused before any work is done.

>>> check_total_steps(1_000)
1000
>>> check_total_steps(2**63)
Traceback (most recent call last):
...
ValueError: total_steps must be at most 2**62 = 4611686018427387904 (env-step counters are 64-bit integers), got 9223372036854775808
"""
from __future__ import annotations

import numbers
from typing import Any

MAX_STEPS = 2**62
MAX_STEPS_WORDS = f"2**62 = {MAX_STEPS} (env-step counters are 64-bit integers)"


def check_total_steps(total_steps: Any, num_timesteps: int = 0) -> int:
    """`total_steps` as an int if it is a non-negative integer that keeps the step counter in range.

    Args:
        total_steps: env steps to train for (more, from `num_timesteps`).
        num_timesteps: env steps the agent has already taken.

    Raises:
        ValueError: not a non-negative integer, or `num_timesteps + total_steps > MAX_STEPS`.
    """
    if isinstance(total_steps, bool) or not isinstance(total_steps, numbers.Integral) or total_steps < 0:
        raise ValueError(f"total_steps must be a non-negative integer, got {total_steps!r}")
    total_steps = int(total_steps)
    if total_steps + int(num_timesteps) > MAX_STEPS:
        if num_timesteps:
            raise ValueError(f"num_timesteps + total_steps must be at most {MAX_STEPS_WORDS}; the agent has "
                             f"taken {int(num_timesteps)} steps, got total_steps={total_steps}")
        raise ValueError(f"total_steps must be at most {MAX_STEPS_WORDS}, got {total_steps}")
    return total_steps
