"""The data path: step a vector env with an agent's acting side and hand each step to a store.

One `Collector` per stream of experience (the agent's own training envs, or one remote actor's).
Each vector step: actions for all envs in one call (`agent.explore`, or uniform random actions
before `learning_starts`), `env.step`, the finiteness check, the true final observation of
finished episodes put back (`tlrl.episodes.true_next_obs`), episode statistics, then
`store.add(Transition, extras)` and the agent's counters advanced.

The env is created on first use, seeded from the agent's numpy generator, so closing it (a
checkpoint's cut, `close()`) and collecting again gives the same envs a restored agent gets.
"""
from __future__ import annotations

from typing import Callable, List, Optional

import gymnasium as gym
import numpy as np

from tlrl.core import Store, Transition
from tlrl.episodes import true_next_obs
from tlrl.finite import check_env_step
from tlrl.spaces import random_actions


class Collector:
    """Steps `agent`'s training envs (see the module docstring).

    Args:
        agent: a `tlrl.agent.BaseAgent` (its `explore`, `observe`, counters and episode tracker).
        store: where steps go; default the agent itself (`agent.add`).
        make_env: `(n_envs, seed) -> VectorEnv`; default `agent.make_vector_env` (in this process).
    """

    def __init__(self, agent, store: Optional[Store] = None,
                 make_env: Optional[Callable[[int, Optional[int]], gym.vector.VectorEnv]] = None):
        self.agent = agent
        self.store = store if store is not None else agent
        self.make_env = make_env or agent.make_vector_env
        self.env: Optional[gym.vector.VectorEnv] = None
        #: the envs' current observations, as the agent's `observe` returned them.
        self.obs = None

    def start(self) -> None:
        """Create and reset the envs if they are not running (seeded from the agent's generator)."""
        if self.env is not None:
            return
        agent = self.agent
        seed = None if agent.seed is None else int(agent.rng.integers(0, 2**31 - 1))
        self.env = self.make_env(agent.n_envs, seed)
        first, _ = self.env.reset(seed=seed)
        check_env_step(self.env, int(agent.num_timesteps), first, np.zeros(0, np.float32))
        self.obs = agent.observe(first)

    def collect(self, vector_steps: int, learning_starts: int = 0) -> List[float]:
        """Step all envs `vector_steps` times; return the returns of the episodes that ended."""
        self.start()
        agent, env, store, n_envs = self.agent, self.env, self.store, self.agent.n_envs
        tracker, space = agent.episode_tracker, agent.action_space
        ended: List[float] = []
        obs = self.obs
        for _ in range(int(vector_steps)):
            if agent.num_timesteps < learning_starts:
                actions, extras = random_actions(space, n_envs, agent.rng), {}
            else:
                actions, extras = agent.explore(obs)
            next_obs, rewards, terminated, truncated, info = env.step(actions)
            done = np.logical_or(terminated, truncated)
            check_env_step(env, agent.num_timesteps + n_envs, next_obs, rewards, info, done)
            ended += tracker.update(rewards, done)
            store.add(Transition(obs, actions, rewards, true_next_obs(next_obs, info, done), terminated, truncated),
                      extras)
            obs = self.obs = agent.observe(next_obs)
            agent.num_timesteps += n_envs
            agent.vector_steps += 1
        return ended

    def close(self, terminate: bool = False) -> None:
        """Close the envs (the next `collect` starts fresh ones); `terminate` kills subprocess envs at once."""
        env, self.env, self.obs = self.env, None, None
        if isinstance(env, gym.vector.AsyncVectorEnv):
            env.close(terminate=terminate)
        elif env is not None:
            env.close()
