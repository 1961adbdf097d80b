"""What replay agents (DQN, DDPG, TD3, a composed agent) share: the config, the plan, the replay store.

- `OffPolicyConfig`: buffer size, `learning_starts`, `batch_size`, `train_freq`, `gradient_steps`,
  `gamma`, `n_envs` (subclass it and add the algorithm's own fields).
- `replay_plan(config)`: the schedule `tlrl.loop` runs: `train_freq` vector steps collected (uniform
  random actions before `learning_starts` env steps), then one `update` with `gradient_steps(...)`
  gradient steps.
- `ReplayStore`: the agent's `store`: the replay buffer (`PrioritizedReplayBuffer` if
  `config.prioritized`), cut at checkpoints, saved with the agent (`replay.npz`), and sampled as
  k stacked batches `[k, B, ...]` cast for TF, for an update that runs k gradient steps in one call.

Semantics (SB3 conventions where they exist):

- `train_freq` counts vector steps (one `env.step` of all `n_envs` envs), `gradient_steps=-1`
  means as many gradient steps as env transitions collected since the last update
  (`train_freq * n_envs`).
- `learn(n)` trains `n` more env steps; counters (`num_timesteps`, the `train_freq` phase in
  `vector_steps`) continue across calls and across `save`/`load`, so `learn(a); learn(b)` updates at
  the same env steps as `learn(a + b)`.

Acting cost: between updates the weights do not change, so for small nets an agent acts with a
numpy copy of its network (`tlrl.numpy_policy`), re-synced after each update.
"""
from __future__ import annotations

import dataclasses
import os
from typing import ClassVar, Dict, Sequence

import gymnasium as gym
import numpy as np
import tensorflow as tf

from tlrl.core import Batch, CollectPlan, Extras, Transition
from tlrl.hyperparams import require
from tlrl.spaces import to_tf_obs

REPLAY_FILE = "replay.npz"


@dataclasses.dataclass
class OffPolicyConfig:
    """Hyperparameters of the shared off-policy loop (subclass it and add the algorithm's own)."""

    buffer_size: int = 1_000_000
    """Capacity of the replay buffer, in transitions."""
    learning_starts: int = 100
    """Env steps of uniform random actions before the first update."""
    batch_size: int = 256
    """Transitions per gradient step."""
    train_freq: int = 1
    """Update every `train_freq` vector steps (one step of all `n_envs` envs)."""
    gradient_steps: int = 1
    """Gradient steps per update; -1 means as many as env transitions collected since the last update."""
    gamma: float = 0.99
    """Discount factor."""
    n_envs: int = 1
    """Number of parallel training envs (one vector env)."""

    #: The interval of each float field (checked, with NaN and infinity refused, by `tlrl.hyperparams.build_config`).
    RANGES: ClassVar[Dict[str, str]] = {"gamma": "[0, 1]"}

    def validate(self) -> None:
        require(self.buffer_size > 0, f"buffer_size must be positive, got {self.buffer_size}")
        require(self.learning_starts >= 0, f"learning_starts must be >= 0, got {self.learning_starts}")
        require(self.batch_size > 0, f"batch_size must be positive, got {self.batch_size}")
        require(self.train_freq > 0, f"train_freq must be positive (in vector steps), got {self.train_freq}")
        require(self.gradient_steps == -1 or self.gradient_steps > 0,
                f"gradient_steps must be positive or -1 (as many as env steps collected), got {self.gradient_steps}")
        require(self.n_envs > 0, f"n_envs must be positive, got {self.n_envs}")


def replay_plan(config: OffPolicyConfig) -> CollectPlan:
    """Collect `train_freq` vector steps, then update; uniform random actions before `learning_starts`."""
    return CollectPlan(steps=int(config.train_freq), learning_starts=int(config.learning_starts))


def gradient_steps(config: OffPolicyConfig, n_envs: int) -> int:
    """Gradient steps of one update: `config.gradient_steps`, or for -1 the env steps of one phase."""
    k = int(config.gradient_steps)
    return int(config.train_freq) * n_envs if k < 0 else k


class ReplayStore:
    """A replay agent's store (`tlrl.core.Store`): the buffer, its cut, its file, stacked sampling.

    Reads `buffer_size`, `gamma`, and when present `n_step`, `prioritized`, `alpha`, `beta`,
    `prioritized_eps` from the config.

    Attributes:
        replay: the buffer (`tlrl.buffers.ReplayBuffer` or `PrioritizedReplayBuffer`).
        save_replay: write the buffer with the agent (default True; turn it off for huge buffers: a
            loaded agent then starts with an empty buffer).
    """

    def __init__(self, config, observation_space: gym.Space, action_space: gym.Space, n_envs: int,
                 rng: np.random.Generator):
        from tlrl.buffers import PrioritizedReplayBuffer, ReplayBuffer

        self.observation_space, self.action_space = observation_space, action_space
        c = config
        kwargs = dict(n_envs=n_envs, n_step=int(getattr(c, "n_step", 1)), gamma=float(c.gamma),
                      seed=int(rng.integers(0, 2**31 - 1)))
        if getattr(c, "prioritized", False):
            for name, key in (("alpha", "alpha"), ("beta", "beta"), ("prioritized_eps", "eps")):
                if hasattr(c, name):
                    kwargs[key] = float(getattr(c, name))
            self.replay = PrioritizedReplayBuffer(int(c.buffer_size), observation_space, action_space, **kwargs)
        else:
            self.replay = ReplayBuffer(int(c.buffer_size), observation_space, action_space, **kwargs)
        self.save_replay = True

    def add(self, step: Transition, extras: Extras) -> None:
        self.replay.add(step)

    def cut(self) -> None:
        self.replay.cut()

    def save(self, directory: str) -> None:
        if self.save_replay:
            self.replay.save(os.path.join(directory, REPLAY_FILE))

    def load(self, directory: str) -> None:
        path = os.path.join(directory, REPLAY_FILE)
        if os.path.exists(path):
            self.replay = type(self.replay).load(path, self.observation_space, self.action_space)

    def sample_stacked(self, k: int, batch_size: int) -> Batch:
        """`k` replayed batches of `batch_size` stacked as one `Batch` of `[k, B, ...]` arrays, cast for TF."""
        return self.stack([self.replay.sample(int(batch_size)) for _ in range(int(k))])

    def stack(self, batches: Sequence[Batch]) -> Batch:
        """Sampled `Batch`es stacked into one `Batch` of `[k, B, ...]` arrays, cast for TF
        (`tlrl.spaces.to_tf_obs`): discrete actions int32 in 0..n-1 (the space's `start` subtracted);
        rewards, discounts and weights float32."""
        def stack(field: str):
            if len(batches) == 1:  # k = 1 (every update at train_freq 1): a view, no copy (SAC's sample_stacked: 73 -> 35 us)
                return tf.nest.map_structure(lambda x: x[None], getattr(batches[0], field))
            return tf.nest.map_structure(lambda *xs: np.stack(xs), *[getattr(b, field) for b in batches])

        action = stack("action")
        if isinstance(self.action_space, gym.spaces.Discrete):
            action = action.astype(np.int32) - np.int32(self.action_space.start)
        space, f32 = self.observation_space, np.float32
        return Batch(to_tf_obs(space, stack("obs")), action, stack("reward").astype(f32, copy=False),
                     to_tf_obs(space, stack("next_obs")), stack("discount").astype(f32, copy=False),
                     stack("weights").astype(f32, copy=False), stack("indices"))
