"""The actor side of Ape-X style training (`tlrl.runner.apex`): what runs in each worker.

`OffPolicyActor` holds a copy of the off-policy agent and steps its own vector env with the
agent's exploration, returning blocks of transitions; `apex_epsilons` gives Ape-X's per-actor
exploration; `acting_module` names the network whose weights actors pull.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from tlrl.episodes import true_next_obs
from tlrl.finite import check_env_step
from tlrl.workers.flat import FlatLayout


def apex_epsilons(n: int, base: float = 0.4, alpha: float = 7.0) -> List[float]:
    """Ape-X's per-actor epsilons `base ** (1 + alpha * i / (n - 1))` (`[base]` for one actor).

    >>> [round(e, 4) for e in apex_epsilons(3)]
    [0.4, 0.0162, 0.0007]
    """
    if n == 1:
        return [base]
    return [base ** (1.0 + alpha * i / (n - 1)) for i in range(n)]


def acting_module(agent):
    """The network an actor needs to act: `agent.acting_module()` if defined, else `q_net` or `actor`."""
    hook = getattr(agent, "acting_module", None)
    if callable(hook):
        return hook()
    for name in ("q_net", "actor"):
        module = getattr(agent, name, None)
        if module is not None and hasattr(module, "trainable_variables"):
            return module
    raise TypeError(f"{type(agent).__name__} has no acting network the runner knows (q_net or actor); "
                    f"define acting_module() on it to train it with actors")


def _stack(items: Sequence[Any]):
    if isinstance(items[0], dict):
        return {k: np.stack([x[k] for x in items]) for k in items[0]}
    return np.stack(items)


# ----- the actor --------------------------------------------------------------------------------
class OffPolicyActor:
    """Collects blocks of transitions with a copy of an off-policy agent; built where the worker lives.

    Args:
        agent_cls: the agent's class (importable, e.g. `tlrl.algorithms.dqn.DQN`).
        env_spec, env_kwargs: the agent's env (an id, "package.module:Class", or a picklable factory).
        config: hyperparameters of the copy (the learner's, with exploration and buffer overrides).
        seed: seed of the copy (its env, its exploration).
        block_steps: vector steps per `collect`.
    """

    def __init__(self, agent_cls, env_spec, env_kwargs: Dict[str, Any], config: Dict[str, Any], seed: Optional[int],
                 block_steps: int):
        self.agent = agent_cls(env_spec, seed=seed, env_kwargs=env_kwargs, **config)
        self.env = self.agent._ensure_train_env()
        self.variables = list(acting_module(self.agent).trainable_variables)
        self.layout = FlatLayout.of(self.variables)
        self.block_steps = int(block_steps)

    def set_weights(self, flat: np.ndarray) -> None:
        for v, value in zip(self.variables, self.layout.unpack(flat)):
            v.assign(value)
        hook = getattr(self.agent, "_weights_changed", None)  # e.g. DQN's numpy copy of its Q network
        if callable(hook):
            hook()
        if hasattr(self.agent, "_cached"):  # DDPG caches mu(s) from its last update
            self.agent._cached = None

    def collect(self, flat_weights: Optional[np.ndarray], random: bool, num_timesteps: int, total_timesteps: int):
        """Step `block_steps` vector steps; return `(block of [T, n_envs, ...] arrays, stats)`."""
        agent, env = self.agent, self.env
        if flat_weights is not None:
            self.set_weights(flat_weights)
        agent.num_timesteps, agent._total_timesteps = int(num_timesteps), int(total_timesteps)  # schedules
        obs_l, act_l, rew_l, next_l, term_l, trunc_l = [], [], [], [], [], []
        returns: List[float] = []
        lengths: List[int] = []
        tracker = agent.episode_tracker
        obs = agent._obs
        for _ in range(self.block_steps):
            actions = agent._random_actions() if random else agent._explore_actions(obs)
            actions = agent._env_actions(actions)
            next_obs, rewards, terminated, truncated, info = env.step(actions)
            done = np.logical_or(terminated, truncated)
            check_env_step(env, agent.num_timesteps + agent.n_envs, next_obs, rewards, info, done)
            obs_l.append(obs)
            act_l.append(actions)
            rew_l.append(np.asarray(rewards, np.float32))
            next_l.append(true_next_obs(next_obs, info, done))
            term_l.append(np.asarray(terminated, bool))
            trunc_l.append(np.asarray(truncated, bool))
            if done.any():
                lengths += (tracker.lengths[done] + 1).tolist()
            returns += tracker.update(rewards, done)
            obs = agent._obs = next_obs
            agent.num_timesteps += agent.n_envs
            agent._on_step()
        block = {"obs": _stack(obs_l), "action": np.stack(act_l), "reward": np.stack(rew_l), "next_obs": _stack(next_l),
                 "terminated": np.stack(term_l), "truncated": np.stack(trunc_l)}
        return block, {"steps": self.block_steps * agent.n_envs, "episode_returns": returns,
                       "episode_lengths": lengths}

    def close(self) -> None:
        self.env.close()


def _actor_config(agent, epsilon: Optional[float]) -> Dict[str, Any]:
    """The learner's hyperparameters for an actor's copy: callables dropped (the copy does not train),
    a tiny replay buffer, and a constant epsilon where given."""
    c = agent.config
    out = {}
    for f in dataclasses.fields(c):
        value = getattr(c, f.name)
        if not callable(value):
            out[f.name] = value
    n_step = int(getattr(c, "n_step", 1))
    out["buffer_size"] = int(agent.n_envs) * (n_step + 1)
    if epsilon is not None:
        out["exploration_initial_eps"] = out["exploration_final_eps"] = float(epsilon)
    return out
