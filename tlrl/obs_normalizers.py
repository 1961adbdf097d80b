"""An agent's observation normalization: running statistics of the float Box parts of an observation space.

`ObsNormalizers(space, clip)` holds one `tlrl.envs.ObservationNormalizer` per float Box: key None for
a Box space, or each float Box key of a Dict space; other parts (images, discrete) pass unchanged.
It is a read-only mapping key -> normalizer (empty when normalization is off). Numpy side:
`normalize(obs, update)` for acting and the rollout; TF side: `graph(obs)` for a policy graph (export),
the same float64 arithmetic with the statistics of the time of tracing as constants.

>>> import gymnasium as gym, numpy as np
>>> norms = ObsNormalizers(gym.spaces.Box(-5.0, 5.0, (2,)), clip=10.0)
>>> norms.normalize(np.array([[1.0, 2.0], [3.0, 6.0]], np.float32), update=True).tolist()
[[-1.0, -1.0], [1.0, 1.0]]
"""
from __future__ import annotations

from typing import Dict, Iterator, Mapping, Optional

import gymnasium as gym
import numpy as np
import tensorflow as tf

from tlrl.envs import ObservationNormalizer


def normalizable(space: gym.Space) -> bool:
    """Whether `space` is (or, for a Dict, holds) a float Box, the parts `ObsNormalizers` normalizes."""
    if isinstance(space, gym.spaces.Dict):
        return any(normalizable(s) for s in space.spaces.values())
    return isinstance(space, gym.spaces.Box) and np.issubdtype(space.dtype, np.floating)


class ObsNormalizers(Mapping):
    """The normalizers of `space`'s float Box parts, by key (None for a Box space); empty unless `enabled`."""

    def __init__(self, space: gym.Space, clip: float = 10.0, enabled: bool = True):
        self.space, self.clip = space, float(clip)
        self._norms: Dict[Optional[str], ObservationNormalizer] = {}
        if enabled and isinstance(space, gym.spaces.Dict):
            self._norms = {k: ObservationNormalizer(s.shape, clip) for k, s in space.spaces.items() if normalizable(s)}
        elif enabled:
            self._norms = {None: ObservationNormalizer(space.shape, clip)}

    def __getitem__(self, key: Optional[str]) -> ObservationNormalizer:
        return self._norms[key]

    def __iter__(self) -> Iterator[Optional[str]]:
        return iter(self._norms)

    def __len__(self) -> int:
        return len(self._norms)

    def normalize(self, obs, update: bool = False):
        """A batch of observations normalized (float32 parts), first adding it to the statistics with `update`."""
        if not self._norms:
            return obs
        if not isinstance(obs, Mapping):
            norm = self._norms[None]
            if update:
                norm.update(obs)
            return norm.normalize(obs)
        out = dict(obs)
        for key, norm in self._norms.items():
            if update:
                norm.update(obs[key])
            out[key] = norm.normalize(obs[key])
        return out

    def stored_space(self) -> gym.Space:
        """The space of normalized observations: normalized parts become float32 Boxes in [-clip, clip]."""
        clip = self.clip
        if None in self._norms:
            return gym.spaces.Box(-clip, clip, self.space.shape, np.float32)
        if not self._norms:
            return self.space
        return gym.spaces.Dict({k: gym.spaces.Box(-clip, clip, s.shape, np.float32) if k in self._norms else s
                                for k, s in self.space.spaces.items()})

    def graph(self, obs):
        """`normalize` in TF (no update) for a batch of observations; the current statistics become constants."""
        def norm(x, normalizer: ObservationNormalizer):
            state = normalizer.get_state()
            mean, var = (tf.constant(np.asarray(state[k], np.float64)) for k in ("mean", "var"))
            y = (tf.cast(x, tf.float64) - mean) / tf.sqrt(var + normalizer.eps)
            return tf.cast(tf.clip_by_value(y, -normalizer.clip, normalizer.clip), tf.float32)

        if None in self._norms:
            return norm(obs, self._norms[None])
        return {k: norm(v, self._norms[k]) if k in self._norms else v for k, v in obs.items()} if self._norms else obs

    def state(self) -> Dict[str, np.ndarray]:
        """The statistics as numpy arrays, keyed `obs_norm/<key>/<field>` (for a checkpoint)."""
        return {f"obs_norm/{'' if key is None else key}/{k}": v
                for key, norm in self._norms.items() for k, v in norm.get_state().items()}

    def set_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore what `state` returned (other keys of `state` are ignored)."""
        for key, norm in self._norms.items():
            prefix = f"obs_norm/{'' if key is None else key}/"
            sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            if not sub:
                raise ValueError("the saved agent has no observation statistics, but normalize_obs=True")
            norm.set_state(sub)
