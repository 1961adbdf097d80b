"""The interfaces and typed records that every part of tlrl agrees on (Acme-style: small).

Three sides, each a Protocol that `tlrl.agent.BaseAgent` implements and every driver (the loop,
the CLI, checkpoints, export, runners, remote workers) uses, and nothing else:

- `Actor`, the acting side: a batch of observations in, actions out (`explore` adds the
  extras the store keeps, e.g. log-probs and values); its weights out and in.
- `Learner`, the learning side: `update(obs)` runs one training phase on what the store holds
  and returns metrics; `trackables`/`numpy_state` are its state for a checkpoint.
- The data path: `tlrl.collector.Collector` steps a vector env with an `Actor` and passes each
  step as a `Transition` (true final observations, terminated vs truncated) to a `Store`
  (a replay buffer, a rollout, a block sent to a remote learner).

`CollectPlan` is an algorithm's schedule: how many vector steps to collect between updates and
when updates start. `tlrl.loop` runs collect -> store -> update -> callbacks with it.
"""
from __future__ import annotations

from typing import (Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Protocol, Sequence, Tuple, Union,
                    runtime_checkable)

import numpy as np

Array = np.ndarray
Metrics = Dict[str, float]
#: An observation is an array, or a dict of arrays for Dict observation spaces.
Observation = Union[Array, Mapping[str, Array]]
#: Per-step values an actor returns with its actions for the store (e.g. log-probs, values).
Extras = Mapping[str, Array]


class Transition(NamedTuple):
    """One step (or a batch of steps from a vector env) as stored in a buffer.

    `terminated` ends the MDP (no bootstrap); `truncated` does not, and `next_obs` must then be
    the true final observation of the episode. From a `Collector`, `obs` is what the actor saw
    (after the agent's `observe`) and `next_obs` the raw next observation.
    """

    obs: Observation
    action: Array
    reward: Array
    next_obs: Observation
    terminated: Array
    truncated: Array


class Batch(NamedTuple):
    """A sampled training batch.

    `discount` is the factor to apply to the bootstrap value: gamma**n for an n-step return that
    did not terminate, 0 where the episode terminated. `weights` are importance weights (ones
    for uniform replay) and `indices` the buffer slots, used to update priorities.
    """

    obs: Observation
    action: Array
    reward: Array
    next_obs: Observation
    discount: Array
    weights: Array
    indices: Array


class CollectPlan(NamedTuple):
    """How an algorithm interleaves collection and updates (its schedule).

    Attributes:
        steps: vector steps (one `env.step` of all envs) collected between two updates
            (PPO: `n_steps`; off-policy: `train_freq`).
        learning_starts: env steps of uniform random actions, with no update, before the first one.
        whole: collect whole phases even past the step target (on-policy rollouts), instead of
            stopping at the target (off-policy; the phase continues in the next `learn`).
    """

    steps: int
    learning_starts: int = 0
    whole: bool = False


@runtime_checkable
class Actor(Protocol):
    """The acting side: batched observations in, actions out (one call for all envs)."""

    def act_batch(self, obs: Observation, deterministic: bool) -> Array:
        """Actions for a batch of observations, as the env takes them."""

    def explore(self, obs: Observation) -> Tuple[Array, Extras]:
        """Behaviour actions for the envs' current observations, and the extras the store keeps."""

    def observe(self, obs: Observation) -> Observation:
        """New observations, as acting and storage see them (e.g. normalized); called once per observation."""

    def get_weights(self) -> List[Array]:
        """The weights acting needs, as numpy arrays (what a remote actor receives)."""

    def set_weights(self, weights: Sequence[Array]) -> None:
        """Act with `weights` (in `get_weights` order) from now on."""


@runtime_checkable
class Learner(Protocol):
    """The learning side: one training phase on what the store holds."""

    def update(self, obs: Optional[Observation]) -> Metrics:
        """Train on the stored data; `obs` are the envs' current observations (for bootstrapping, or
        to compute the next actions in the same call), None when they are elsewhere (remote actors)."""

    def trackables(self) -> Dict[str, Any]:
        """TF objects saved in a checkpoint (networks, optimizers, counters)."""

    def numpy_state(self) -> Dict[str, Array]:
        """Numpy state saved in a checkpoint (normalizers, noise, counters)."""

    def set_numpy_state(self, state: Mapping[str, Array]) -> None:
        """Restore what `numpy_state` returned."""


@runtime_checkable
class Store(Protocol):
    """Where collected steps go."""

    def add(self, step: Transition, extras: Extras) -> None:
        """Store one vector step (every field with leading dim `n_envs`)."""


#: A training callback: `callback(agent, info) -> False to stop`; `info` holds `num_timesteps`,
#: `metrics`, `episode_returns` (episodes finished since the last call), `progress`, `n_updates`.
Callback = Callable[[Any, Dict[str, Any]], Optional[bool]]


@runtime_checkable
class Agent(Protocol):
    """What a user, the runner, the CLI and the tests need from any agent (`tlrl.agent.BaseAgent`)."""

    def learn(self, total_steps: int, callback: Optional[Callback] = None) -> "Agent": ...

    def act(self, obs: Observation, deterministic: bool = False) -> Array: ...

    def evaluate(self, episodes: int = 10, deterministic: bool = True) -> Tuple[float, float]: ...

    def save(self, path: str) -> None: ...
