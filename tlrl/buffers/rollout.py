"""`RolloutBuffer`: one on-policy rollout of `n_steps` vector-env steps, with GAE(lambda).

Storage is `[n_steps, n_envs, ...]` per field, preallocated. After `n_steps` calls to `add`,
`compute_returns_and_advantages(last_value)` runs `tlrl.buffers.gae.gae`, and `get()` returns
flat `[n_steps * n_envs, ...]` copies (time-major: row t * n_envs + e) for minibatching.
Where an env's episode was truncated at a step, pass V(true final observation) in
`final_value`; GAE bootstraps from it there, from 0 on termination, and never carries the
lambda-chain across the boundary.

>>> import gymnasium as gym
>>> buf = RolloutBuffer(2, 1, gym.spaces.Box(-1, 1, (3,)), gym.spaces.Discrete(2), gamma=0.5, gae_lambda=1.0)
>>> for _ in range(2):
...     buf.add(np.zeros((1, 3)), [1], [1.0], [False], [False], value=[0.0], log_prob=[-0.7])
>>> buf.compute_returns_and_advantages(last_value=[4.0])
>>> buf.get()["return"].tolist()
[2.5, 3.0]
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional

import gymnasium as gym
import numpy as np
from numpy.typing import ArrayLike

from tlrl.buffers import _io
from tlrl.buffers._spaces import allocate, check_array, check_field, flat_view, put, space_from_json, space_spec, space_to_json
from tlrl.buffers.gae import gae
from tlrl.buffers.replay import check_positive_int, check_unit_interval

_FLOAT = np.dtype(np.float32)
_BOOL = np.dtype(bool)


class RolloutBuffer:
    """On-policy rollout storage with GAE (see the module docstring).

    Args:
        n_steps: steps per env in one rollout.
        n_envs: envs per `add`.
        observation_space: Box/Discrete/MultiDiscrete/MultiBinary, or a flat Dict of those.
        action_space: Box/Discrete/MultiDiscrete/MultiBinary.
        gamma: discount factor in [0, 1].
        gae_lambda: GAE lambda in [0, 1].
    """

    _KIND = "RolloutBuffer"

    def __init__(
        self,
        n_steps: int,
        n_envs: int,
        observation_space: gym.Space,
        action_space: gym.Space,
        *,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
    ):
        self._n_steps = check_positive_int("n_steps", n_steps)
        self._n_envs = check_positive_int("n_envs", n_envs)
        self._gamma = check_unit_interval("gamma", gamma)
        self._gae_lambda = check_unit_interval("gae_lambda", gae_lambda)
        self.observation_space = observation_space
        self.action_space = action_space
        self._obs_spec = space_spec(observation_space, "observation_space")
        self._action_spec = space_spec(action_space, "action_space", allow_dict=False)
        lead = (self._n_steps, self._n_envs)
        self._obs = allocate(self._obs_spec, lead)
        self._action = allocate(self._action_spec, lead)
        self._reward = np.zeros(lead, np.float32)
        self._terminated = np.zeros(lead, bool)
        self._truncated = np.zeros(lead, bool)
        self._value = np.zeros(lead, np.float32)
        self._log_prob = np.zeros(lead, np.float32)
        self._final_value = np.zeros(lead, np.float32)
        self._advantage = np.zeros(lead, np.float32)
        self._return = np.zeros(lead, np.float32)
        self._pos = 0
        self._computed = False

    @property
    def n_steps(self) -> int:
        return self._n_steps

    @property
    def n_envs(self) -> int:
        return self._n_envs

    @property
    def gamma(self) -> float:
        return self._gamma

    @property
    def gae_lambda(self) -> float:
        return self._gae_lambda

    @property
    def full(self) -> bool:
        """Whether `n_steps` steps have been added since the last `reset`."""
        return self._pos == self._n_steps

    def __len__(self) -> int:
        """Transitions stored (steps added times n_envs)."""
        return self._pos * self._n_envs

    def reset(self) -> None:
        """Empty the buffer for the next rollout (storage is reused, not reallocated)."""
        self._pos = 0
        self._computed = False

    def add(
        self,
        obs: Any,
        action: Any,
        reward: Any,
        terminated: Any,
        truncated: Any,
        value: Any,
        log_prob: Any,
        final_value: Optional[Any] = None,
    ) -> None:
        """Store one vector-env step; every argument has leading dim `n_envs`.

        `value` and `log_prob` may be `[n_envs]` or `[n_envs, 1]`. `final_value[i]` is V(true
        final obs) of env i and is required (read) only where env i was truncated and not
        terminated at this step.
        """
        if self.full:
            raise ValueError(f"RolloutBuffer is full ({self._n_steps} steps): call reset() before adding")
        lead = (self._n_envs,)
        obs = check_field(obs, self._obs_spec, lead, "obs")
        action = check_field(action, self._action_spec, lead, "action")
        reward = check_array(reward, lead, _FLOAT, "reward")
        terminated = check_array(terminated, lead, _BOOL, "terminated")
        truncated = check_array(truncated, lead, _BOOL, "truncated")
        value = check_array(_squeeze(value, self._n_envs), lead, _FLOAT, "value")
        log_prob = check_array(_squeeze(log_prob, self._n_envs), lead, _FLOAT, "log_prob")
        needs_final = truncated.astype(bool) & ~terminated.astype(bool)
        if final_value is None:
            if needs_final.any():
                raise ValueError(
                    f"final_value is required: envs {np.flatnonzero(needs_final).tolist()} were truncated at this step, "
                    f"and GAE bootstraps from V(true final observation) there"
                )
            final_value = np.zeros(self._n_envs, np.float32)
        final_value = check_array(_squeeze(final_value, self._n_envs), lead, _FLOAT, "final_value")
        t = self._pos
        put(self._obs, t, obs)
        put(self._action, t, action)
        self._reward[t] = reward
        self._terminated[t] = terminated
        self._truncated[t] = truncated
        self._value[t] = value
        self._log_prob[t] = log_prob
        self._final_value[t] = np.where(needs_final, final_value, 0.0)
        self._pos = t + 1
        self._computed = False

    def compute_returns_and_advantages(self, last_value: ArrayLike) -> None:
        """Run GAE over the full rollout; `last_value` is V(obs after the last step), `[n_envs]` or `[n_envs, 1]`."""
        if not self.full:
            raise ValueError(f"RolloutBuffer is not full: {self._pos} of {self._n_steps} steps added")
        last_value = check_array(_squeeze(last_value, self._n_envs), (self._n_envs,), _FLOAT, "last_value")
        self._advantage[...], self._return[...] = gae(
            self._reward, self._value, last_value, self._terminated, self._truncated, self._final_value,
            self._gamma, self._gae_lambda,
        )
        self._computed = True

    def get(self) -> Dict[str, Any]:
        """Flat `[n_steps * n_envs, ...]` copies: obs (dict for Dict spaces), action, log_prob, value, advantage, return."""
        if not self._computed:
            raise ValueError("call compute_returns_and_advantages(last_value) on a full RolloutBuffer before get()")
        n = self._n_steps * self._n_envs

        def flat(field: Any) -> Any:
            view = flat_view(field, n)
            return {k: v.copy() for k, v in view.items()} if isinstance(view, dict) else view.copy()

        return {
            "obs": flat(self._obs),
            "action": flat(self._action),
            "log_prob": flat(self._log_prob),
            "value": flat(self._value),
            "advantage": flat(self._advantage),
            "return": flat(self._return),
        }

    # --- files ---

    _ARRAYS = ("action", "reward", "terminated", "truncated", "value", "log_prob", "final_value", "advantage", "return")

    def save(self, path: "str | os.PathLike[str]") -> str:
        """Write the buffer (arrays, position, config, spaces) to one `.npz`; returns the path written."""
        obs_desc, obs_arrays = space_to_json(self.observation_space, "space.obs")
        act_desc, act_arrays = space_to_json(self.action_space, "space.action")
        header = {
            "config": {"n_steps": self._n_steps, "n_envs": self._n_envs, "gamma": self._gamma, "gae_lambda": self._gae_lambda},
            "observation_space": obs_desc,
            "action_space": act_desc,
            "pos": self._pos,
            "computed": self._computed,
        }
        arrays = {**obs_arrays, **act_arrays, **_io.field_arrays(self._obs, "obs")}
        arrays.update({name: getattr(self, "_" + name) for name in self._ARRAYS})
        return _io.save(path, self._KIND, header, arrays)

    @classmethod
    def load(
        cls,
        path: "str | os.PathLike[str]",
        observation_space: Optional[gym.Space] = None,
        action_space: Optional[gym.Space] = None,
    ) -> "RolloutBuffer":
        """Rebuild a buffer written by `save`; errors as `ReplayBuffer.load`."""
        meta, arrays, path = _io.load(path, cls._KIND)
        try:
            config = dict(meta["config"])
            stored_obs = space_from_json(meta["observation_space"], arrays, "space.obs")
            stored_act = space_from_json(meta["action_space"], arrays, "space.action")
            pos, computed = int(meta["pos"]), bool(meta["computed"])
            for given, stored, name in ((observation_space, stored_obs, "observation_space"), (action_space, stored_act, "action_space")):
                if given is not None and space_spec(given, name) != space_spec(stored, name):
                    raise ValueError(f"the given {name} {given} does not match the stored {stored}")
            buf = cls(
                config.pop("n_steps"),
                config.pop("n_envs"),
                stored_obs if observation_space is None else observation_space,
                stored_act if action_space is None else action_space,
                **config,
            )
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise ValueError(f"{path!r} has a corrupt, incomplete or mismatched header: {e}") from e
        if not 0 <= pos <= buf._n_steps:
            raise ValueError(f"{path!r}: position {pos} is outside [0, {buf._n_steps}]")
        _io.restore_field(buf._obs, "obs", arrays, path)
        for name in cls._ARRAYS:
            _io.restore_field(getattr(buf, "_" + name), name, arrays, path)
        buf._pos, buf._computed = pos, computed
        return buf


def _squeeze(x: Any, n_envs: int) -> np.ndarray:
    """`[n_envs, 1]` -> `[n_envs]` (value-head outputs); other shapes pass through to be checked."""
    arr = np.asarray(x)
    return arr.reshape(n_envs) if arr.shape == (n_envs, 1) else arr
