"""The actor side of Ape-X style training (`tlrl.runner.apex`): what runs in each worker.

`OffPolicyActor` holds a copy of the replay agent whose store is a `BlockStore`, and its
`tlrl.collector.Collector` steps the copy's own vector env with the agent's exploration
(`explore`; uniform random actions before `learning_starts`), so a block goes through the same
data path (`agent.add` -> `agent.store`) as the agent's own training steps. `apex_epsilons` gives
Ape-X's per-actor exploration, `actor_hyperparameters` the copy's hyperparameters.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from tlrl.core import Extras, Transition


def apex_epsilons(n: int, base: float = 0.4, alpha: float = 7.0) -> List[float]:
    """Ape-X's per-actor epsilons `base ** (1 + alpha * i / (n - 1))` (`[base]` for one actor).

    >>> [round(e, 4) for e in apex_epsilons(3)]
    [0.4, 0.0162, 0.0007]
    """
    if n == 1:
        return [base]
    return [base ** (1.0 + alpha * i / (n - 1)) for i in range(n)]


def actor_hyperparameters(agent, epsilon: Optional[float]) -> Dict[str, Any]:
    """The learner's hyperparameters for an actor's copy: callables dropped (the copy does not train), the
    smallest replay buffer (the copy never fills it: its steps go to a `BlockStore`), and, where `epsilon` is
    given, the agent's `constant_exploration(epsilon)`."""
    values = vars(agent.config)
    out = {f.name: values[f.name] for f in dataclasses.fields(agent.config) if not callable(values[f.name])}
    out["buffer_size"] = int(agent.n_envs) * int(agent.store.replay.n_step)
    if epsilon is not None:
        out.update(agent.constant_exploration(float(epsilon)))
    return out


def _stack(items: Sequence[Any], dtype=None):
    if isinstance(items[0], dict):
        return {k: np.stack([x[k] for x in items]) for k in items[0]}
    return np.asarray(np.stack(items), dtype)


class BlockStore:
    """A `tlrl.core.Store` that keeps the vector steps of one block; `take()` returns them stacked."""

    def __init__(self):
        self.steps: List[Transition] = []

    def add(self, step: Transition, extras: Extras) -> None:
        self.steps.append(step)

    def cut(self) -> None:
        """Nothing to mark: the learner ends every block's n-step segments itself."""

    def take(self) -> Transition:
        """The block as one `Transition` of `[T, n_envs, ...]` arrays (rewards float32, flags bool); emptied."""
        s, self.steps = self.steps, []
        return Transition(_stack([x.obs for x in s]), np.stack([x.action for x in s]),
                          _stack([x.reward for x in s], np.float32), _stack([x.next_obs for x in s]),
                          _stack([x.terminated for x in s], bool), _stack([x.truncated for x in s], bool))


class OffPolicyActor:
    """Collects blocks of transitions with a copy of a replay agent; built where the worker lives.

    Args:
        agent_cls: the agent's class (importable, e.g. `tlrl.algorithms.dqn.DQN`).
        env_spec, env_kwargs: the agent's env (an id, "package.module:Class", or a picklable factory).
        config: hyperparameters of the copy (`actor_hyperparameters`).
        seed: seed of the copy (its env, its exploration).
        block_steps: vector steps per `collect`.
    """

    def __init__(self, agent_cls, env_spec, env_kwargs: Dict[str, Any], config: Dict[str, Any], seed: Optional[int],
                 block_steps: int):
        self.agent = agent_cls(env_spec, seed=seed, env_kwargs=env_kwargs, **config)
        self.block = self.agent.store = BlockStore()
        self.agent.collector.start()  # the envs now, seeded from the copy's generator
        self.block_steps = int(block_steps)

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Act with the learner's weights (`agent.get_weights()` order) from now on."""
        self.agent.set_weights(weights)

    def collect(self, weights: Optional[Sequence[np.ndarray]], random: bool, num_timesteps: int,
                total_timesteps: int):
        """Step `block_steps` vector steps (uniform random actions if `random`); return `(block, stats)`.

        `num_timesteps`/`total_timesteps` are the learner's, for the copy's schedules (e.g. epsilon)."""
        agent = self.agent
        if weights is not None:
            self.set_weights(weights)
        agent.num_timesteps, agent.total_timesteps = int(num_timesteps), int(total_timesteps)
        steps = self.block_steps * agent.n_envs
        tracker = agent.episode_tracker
        returns = agent.collector.collect(self.block_steps, agent.num_timesteps + steps if random else 0)
        lengths = list(tracker.finished_lengths)[-len(returns):] if returns else []  # (its window: the newest 100)
        return self.block.take(), {"steps": steps, "episode_returns": returns, "episode_lengths": lengths}

    def close(self) -> None:
        self.agent.collector.close()
