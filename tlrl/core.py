"""The interfaces and typed records that every part of tlrl agrees on.

Kept deliberately small (Acme-style): records are NamedTuples of arrays, and
the agent interface is a Protocol so the runner and CLI can drive any agent
without importing `tlrl.algorithms`.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, NamedTuple, Optional, Protocol, Tuple, Union, runtime_checkable

import numpy as np

Array = np.ndarray
Metrics = Dict[str, float]
#: An observation is an array, or a dict of arrays for Dict observation spaces.
Observation = Union[Array, Mapping[str, Array]]


class Transition(NamedTuple):
    """One step (or a batch of steps from a vector env) as stored in a buffer.

    `terminated` ends the MDP (no bootstrap); `truncated` does not, and
    `next_obs` must then be the true final observation of the episode.
    """

    obs: Observation
    action: Array
    reward: Array
    next_obs: Observation
    terminated: Array
    truncated: Array


class Batch(NamedTuple):
    """A sampled training batch.

    `discount` is the factor to apply to the bootstrap value: gamma**n for an
    n-step return that did not terminate, 0 where the episode terminated.
    `weights` are importance weights (ones for uniform replay) and `indices`
    the buffer slots, used to update priorities.
    """

    obs: Observation
    action: Array
    reward: Array
    next_obs: Observation
    discount: Array
    weights: Array
    indices: Array


@runtime_checkable
class Agent(Protocol):
    """What the runner, the CLI and the tests need from any agent."""

    def learn(self, total_steps: int, callback: Optional[Callable[..., Any]] = None) -> "Agent": ...

    def act(self, obs: Observation, deterministic: bool = False) -> Array: ...

    def evaluate(self, episodes: int = 10, deterministic: bool = True) -> Tuple[float, float]: ...

    def save(self, path: str) -> None: ...
