"""The off-policy training loop that DQN, DDPG and TD3 share: collect -> store -> update.

`OffPolicyAgent.learn` steps a vector env (one act call per vector step, for all envs),
stores transitions with the true final observation at episode ends (`true_next_obs`,
SAME_STEP autoreset) and `terminated`/`truncated` kept apart, and every `train_freq`
vector steps, once `num_timesteps >= learning_starts`, calls the algorithm's
`_train(gradient_steps)`. A subclass implements:

- `_build()`: networks, optimizers, compiled update (as for every `BaseAgent`);
- `_explore_actions(obs_batch) -> actions`: behaviour actions for all envs in one call;
- `_train(gradient_steps) -> metrics`: k gradient steps, ideally one compiled call;
- `_act_batch(obs_batch, deterministic)`: the greedy/deterministic policy;
- optionally `_on_step()` (schedules, e.g. epsilon), `_make_buffer()`, `_random_actions()`.

`sample_stacked(k)` gives k replayed batches as `[k, B, ...]` arrays cast for TF, for an update
that runs k gradient steps in one compiled call.

Semantics (SB3 conventions where they exist):

- `train_freq` counts vector steps (one `env.step` of all `n_envs` envs), `gradient_steps=-1`
  means as many gradient steps as env transitions collected since the last update
  (`train_freq * n_envs`).
- Before `learning_starts` env steps, actions are uniform random (numpy, no TF call).
- `learn(n)` trains `n` more env steps; counters (`num_timesteps`, the `train_freq` phase)
  continue across calls and across `save`/`load`, so `learn(a); learn(b)` updates at the
  same env steps as `learn(a + b)`. The replay buffer is saved with the agent (`replay.npz`).

Acting cost: between updates the weights do not change, so for small nets a subclass can
act with a numpy copy of its network (`tlrl.numpy_policy.NumpyModule`, ~10-30 us a call
instead of ~300 us for a `tf.function`), re-synced at the end of each `_train`.
`obs_signature` / `to_tf_obs` give the TF-side observation specs and casts.
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable, ClassVar, Dict, List, Mapping, Optional, Sequence

import gymnasium as gym
import numpy as np
import tensorflow as tf

from tlrl.agent import BaseAgent
from tlrl.episodes import EpisodeTracker, true_next_obs
from tlrl.finite import check_env_step, check_metrics
from tlrl.hyperparams import require
from tlrl.step_limits import check_total_steps

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


class OffPolicyAgent(BaseAgent):
    """Base of replay-buffer agents: owns the env loop, the buffer, episode tracking and callbacks.

    Attributes:
        replay: the replay buffer (`tlrl.buffers.ReplayBuffer` or `PrioritizedReplayBuffer`).
        episode_tracker: returns/lengths of recent training episodes.
        n_updates: number of `_train` calls so far.
        save_replay_buffer: write the buffer with `save` (default True; turn off for huge buffers,
            a loaded agent then starts with an empty buffer).
    """

    def __init__(self, env, *, seed: Optional[int] = None, env_kwargs: Optional[Dict[str, Any]] = None,
                 **hyperparameters):
        super().__init__(env, seed=seed, env_kwargs=env_kwargs, **hyperparameters)
        self.replay = self._make_buffer()
        self.episode_tracker = EpisodeTracker(self.n_envs)
        self.n_updates = 0
        self.save_replay_buffer = True
        self._vec_steps = 0  # vector steps since construction: the train_freq phase
        self._total_timesteps = 0  # num_timesteps at the end of the current learn call (for progress)

    # ----- hooks --------------------------------------------------------------
    def _make_buffer(self):
        """The replay buffer: `PrioritizedReplayBuffer` if `config.prioritized`, else `ReplayBuffer`.

        Reads `buffer_size`, `gamma`, and when present `n_step`, `prioritized`, `alpha`, `beta`,
        `prioritized_eps` from the config.
        """
        from tlrl.buffers import PrioritizedReplayBuffer, ReplayBuffer

        c = self.config
        kwargs = dict(n_envs=self.n_envs, n_step=int(getattr(c, "n_step", 1)), gamma=float(c.gamma),
                      seed=int(self.rng.integers(0, 2**31 - 1)))
        if getattr(c, "prioritized", False):
            for name, key in (("alpha", "alpha"), ("beta", "beta"), ("prioritized_eps", "eps")):
                if hasattr(c, name):
                    kwargs[key] = float(getattr(c, name))
            return PrioritizedReplayBuffer(int(c.buffer_size), self.observation_space, self.action_space, **kwargs)
        return ReplayBuffer(int(c.buffer_size), self.observation_space, self.action_space, **kwargs)

    def _random_actions(self) -> np.ndarray:
        """Uniform random actions for all envs, drawn from `self.rng` (reproducible, no TF call)."""
        space, n = self.action_space, self.n_envs
        if isinstance(space, gym.spaces.Discrete):
            return self.rng.integers(space.start, space.start + space.n, size=n).astype(space.dtype)
        if isinstance(space, gym.spaces.Box):
            low, high = space.low, space.high
            if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
                raise ValueError(f"Cannot draw uniform random actions from an unbounded Box {space}")
            return self.rng.uniform(low, high, size=(n,) + space.shape).astype(space.dtype)
        if isinstance(space, gym.spaces.MultiDiscrete):
            return (space.start + self.rng.integers(0, space.nvec, size=(n,) + space.shape)).astype(space.dtype)
        if isinstance(space, gym.spaces.MultiBinary):
            return self.rng.integers(0, 2, size=(n,) + space.shape).astype(space.dtype)
        raise TypeError(f"No uniform random actions for action space {space}")

    def _explore_actions(self, obs_batch) -> np.ndarray:
        """Behaviour actions (epsilon-greedy, noisy...) for the observations of all envs, in one call."""
        raise NotImplementedError

    def _train(self, gradient_steps: int) -> Dict[str, float]:
        """Run `gradient_steps` gradient steps on replayed batches; return metrics as floats."""
        raise NotImplementedError

    def _on_step(self) -> None:
        """Called after every vector step (after `num_timesteps` advanced); e.g. update epsilon."""

    def _env_actions(self, actions: np.ndarray) -> np.ndarray:
        """What the vector env receives for `actions` (and what is stored): Box actions clipped to bounds."""
        if isinstance(self.action_space, gym.spaces.Box):
            return np.clip(actions, self.action_space.low, self.action_space.high).astype(self.action_space.dtype)
        return actions

    def sample_stacked(self, k: int, batch_size: Optional[int] = None):
        """`k` replayed batches stacked as one `Batch` of `[k, B, ...]` arrays, cast for TF (see `stack_batches`).

        For updates that fuse k gradient steps in one compiled call.
        """
        size = int(batch_size or self.config.batch_size)
        return self.stack_batches([self.replay.sample(size) for _ in range(int(k))])

    def stack_batches(self, batches):
        """Sampled `Batch`es stacked into one `Batch` of `[k, B, ...]` arrays, cast for TF (see `obs_signature`).

        Discrete actions become int32 in 0..n-1 (the space's `start` subtracted); rewards, discounts
        and weights float32.
        """
        from tlrl.core import Batch

        stack = lambda field: tf.nest.map_structure(lambda *xs: np.stack(xs), *[getattr(b, field) for b in batches])  # noqa: E731
        action = stack("action")
        if isinstance(self.action_space, gym.spaces.Discrete):
            action = action.astype(np.int32) - np.int32(self.action_space.start)
        return Batch(to_tf_obs(self.observation_space, stack("obs")), action, stack("reward").astype(np.float32),
                     to_tf_obs(self.observation_space, stack("next_obs")), stack("discount").astype(np.float32),
                     stack("weights").astype(np.float32), stack("indices"))

    # ----- the loop -----------------------------------------------------------
    @property
    def progress(self) -> float:
        """Training progress in [0, 1] of the current `learn` call (SB3 convention: num_timesteps / total)."""
        return min(self.num_timesteps / max(self._total_timesteps, 1), 1.0)

    def _gradient_steps(self) -> int:
        k = int(self.config.gradient_steps)
        return self.config.train_freq * self.n_envs if k < 0 else k

    def learn(self, total_steps: int, callback: Optional[Callable[..., Any]] = None) -> "OffPolicyAgent":
        """Train for `total_steps` more env steps (counted over all envs).

        `callback(agent, info)` is called after every update with `info` holding `num_timesteps`,
        `metrics` (loss terms, `steps_per_second`, ...), `episode_returns` (returns of episodes
        finished since the previous call) and `progress`; returning False stops training. Before
        `learning_starts` it is called every `train_freq` vector steps as well, with empty
        `metrics` (no update ran), so that training can be stopped or checkpointed at any step.
        """
        total_steps = check_total_steps(total_steps, self.num_timesteps)
        env = self._ensure_train_env()
        c = self.config
        n_envs, train_freq, learning_starts = self.n_envs, int(c.train_freq), int(c.learning_starts)
        start_steps = self.num_timesteps
        self._total_timesteps = start_steps + int(total_steps)
        tracker, replay = self.episode_tracker, self.replay
        returns_since: List[float] = []
        t0 = time.perf_counter()
        obs = self._obs
        while self.num_timesteps < self._total_timesteps:
            if self.num_timesteps < learning_starts:
                actions = self._random_actions()
            else:
                actions = self._explore_actions(obs)
            actions = self._env_actions(actions)
            next_obs, rewards, terminated, truncated, info = env.step(actions)
            done = np.logical_or(terminated, truncated)
            check_env_step(env, self.num_timesteps + n_envs, next_obs, rewards, info, done)
            replay.add(obs, actions, rewards, true_next_obs(next_obs, info, done), terminated, truncated)
            obs = self._obs = next_obs
            self.num_timesteps += n_envs
            self._vec_steps += 1
            ended = tracker.update(rewards, done)
            if ended:
                returns_since.extend(ended)
            self._on_step()
            if self._vec_steps % train_freq == 0 and self.num_timesteps >= learning_starts:
                metrics = dict(self._train(self._gradient_steps()))
                check_metrics(metrics, step=self.num_timesteps, owner=type(self).__name__)  # before logging, saving
                self.n_updates += 1
                elapsed = time.perf_counter() - t0
                metrics["steps_per_second"] = (self.num_timesteps - start_steps) / max(elapsed, 1e-9)
            elif self._vec_steps % train_freq == 0:
                metrics = {}  # before learning_starts: no update, but the callback may stop training or checkpoint
            else:
                continue
            if callback is not None:
                info_out = {"num_timesteps": self.num_timesteps, "metrics": metrics,
                            "episode_returns": returns_since, "progress": self.progress,
                            "n_updates": self.n_updates}
                returns_since = []
                if callback(self, info_out) is False:
                    break
        return self

    # ----- persistence ---------------------------------------------------------
    def _numpy_state(self) -> Dict[str, np.ndarray]:
        return {"off_policy_counters": np.array([self._vec_steps, self.n_updates], np.int64)}

    def _set_numpy_state(self, state: Mapping[str, np.ndarray]) -> None:
        if "off_policy_counters" in state:
            self._vec_steps, self.n_updates = (int(x) for x in state["off_policy_counters"])

    def _save_extra(self, directory: str) -> None:
        if self.save_replay_buffer:
            self.replay.save(os.path.join(directory, REPLAY_FILE))

    def _load_extra(self, directory: str) -> None:
        path = os.path.join(directory, REPLAY_FILE)
        if os.path.exists(path):
            self.replay = type(self.replay).load(path, self.observation_space, self.action_space)


# ----- observations at the TF boundary -------------------------------------------

def obs_signature(space: gym.Space, lead: Sequence[Optional[int]] = (None,)):
    """A `tf.TensorSpec` (or dict of them) for batches of observations from `space`.

    Floats are float32; uint8 images stay uint8 (the torso scales them); integer
    observations (Discrete) are int32.
    """
    if isinstance(space, gym.spaces.Dict):
        return {k: obs_signature(s, lead) for k, s in space.spaces.items()}
    return tf.TensorSpec(list(lead) + list(space.shape), _tf_dtype(space))


def _tf_dtype(space: gym.Space) -> tf.DType:
    dtype = np.dtype(space.dtype)
    if dtype == np.uint8:
        return tf.uint8
    if dtype.kind in "iub":
        return tf.int32 if isinstance(space, gym.spaces.Discrete) else tf.float32
    return tf.float32


def to_tf_obs(space: gym.Space, obs):
    """Cast a numpy batch of observations (leading dims kept) to the dtypes of `obs_signature`."""
    if isinstance(space, gym.spaces.Dict):
        return {k: to_tf_obs(s, obs[k]) for k, s in space.spaces.items()}
    return np.asarray(obs, _tf_dtype(space).as_numpy_dtype)
