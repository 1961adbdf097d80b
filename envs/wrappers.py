"""Running statistics and normalizers that agents keep and checkpoint (pure numpy).

For the usual env wrappers use Gymnasium's own; tlrl adds nothing on top of them:

* frame stacking: `gymnasium.wrappers.FrameStackObservation`
* Atari preprocessing: `gymnasium.wrappers.AtariPreprocessing`
* episode statistics: `gymnasium.wrappers.RecordEpisodeStatistics`
  (`gymnasium.wrappers.vector.RecordEpisodeStatistics` for vector envs)
* time limits: `gymnasium.wrappers.TimeLimit` (or ``max_episode_steps`` at registration)
* normalization inside the env: `gymnasium.wrappers.NormalizeObservation` / `NormalizeReward`

What tlrl needs beyond them is normalization *inside the agent*, on the batches that come out of
a vector env, with statistics that are plain numpy arrays so that they can be saved with the
agent's checkpoint and frozen at evaluation: `RunningMeanStd`, `ObservationNormalizer` and
`RewardNormalizer`. Their ``get_state()`` returns ``dict[str, np.ndarray]`` (saveable with
``np.savez``, no pickle) and ``set_state(state)`` restores it.
"""
from __future__ import annotations

from typing import Dict, Mapping, Sequence, Tuple, Union

import numpy as np

Shape = Union[int, Sequence[int]]


def _as_shape(shape: Shape) -> Tuple[int, ...]:
    return (int(shape),) if np.isscalar(shape) else tuple(int(s) for s in shape)


class RunningMeanStd:
    """Running mean and (population) variance of vectors of a fixed shape, in float64.

    Batches are merged with the parallel algorithm of Chan, Golub and LeVeque (1979), so the
    statistics after any sequence of `update` calls equal ``np.mean``/``np.var`` of all the
    samples concatenated (up to rounding). Before the first update, mean is 0 and var is 1.

    Args:
        shape: shape of one sample, e.g. ``()`` for scalars or ``(obs_dim,)``.

    Example:
        >>> rms = RunningMeanStd(shape=(2,))
        >>> rms.update(np.array([[0.0, 1.0], [2.0, 3.0]]))
        >>> rms.update(np.array([[4.0, 5.0]]))
        >>> rms.mean, rms.var, rms.count
        (array([2., 3.]), array([2.66666667, 2.66666667]), 3.0)
    """

    def __init__(self, shape: Shape = ()):
        self.shape = _as_shape(shape)
        self.mean = np.zeros(self.shape, np.float64)
        self.var = np.ones(self.shape, np.float64)
        self.count = 0.0

    def update(self, batch: np.ndarray) -> None:
        """Add a batch of samples, shaped ``(n, *shape)`` (or ``(*shape)`` for one sample)."""
        x = np.asarray(batch, dtype=np.float64)
        if x.shape == self.shape:
            x = x[None]
        if x.shape[1:] != self.shape:
            raise ValueError(f"RunningMeanStd of shape {self.shape} got a batch of shape {x.shape}; "
                             f"expected (n, *{self.shape}) or {self.shape}")
        n = x.shape[0]
        if n == 0:
            return
        self.update_from_moments(x.mean(axis=0), x.var(axis=0), n)

    def update_from_moments(self, batch_mean: np.ndarray, batch_var: np.ndarray, batch_count: float) -> None:
        """Merge the mean, population variance and size of another set of samples."""
        if batch_count <= 0:
            return
        total = self.count + batch_count
        delta = batch_mean - self.mean
        m2 = self.var * self.count + batch_var * batch_count + delta**2 * (self.count * batch_count / total)
        if self.count == 0:  # the initial var of 1 carries no weight
            m2 = batch_var * batch_count
        self.mean = self.mean + delta * (batch_count / total)
        self.var = m2 / total
        self.count = float(total)

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.var)

    def get_state(self) -> Dict[str, np.ndarray]:
        """``{"mean", "var", "count"}`` as float64 arrays (copies)."""
        return {"mean": self.mean.copy(), "var": self.var.copy(), "count": np.array(self.count, np.float64)}

    def set_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore from `get_state`; checks keys and shapes."""
        missing = {"mean", "var", "count"} - set(state)
        if missing:
            raise ValueError(f"RunningMeanStd state is missing {sorted(missing)}; expected keys mean, var, count")
        mean, var = np.asarray(state["mean"], np.float64), np.asarray(state["var"], np.float64)
        if mean.shape != self.shape or var.shape != self.shape:
            raise ValueError(f"RunningMeanStd state has shapes mean {mean.shape}, var {var.shape}; this one has "
                             f"shape {self.shape}")
        count = float(np.asarray(state["count"]))
        if count < 0 or np.any(var < 0):
            raise ValueError("RunningMeanStd state has a negative count or variance")
        self.mean, self.var, self.count = mean.copy(), var.copy(), count


class ObservationNormalizer:
    """Normalize observations with running statistics: ``clip((x - mean) / sqrt(var + eps), ±clip)``.

    Use it inside the agent on vector-env batches: `update` with each new batch while training,
    `normalize` before the network. Set ``frozen = True`` at evaluation (or after loading a
    trained agent) so that `update` changes nothing.

    Args:
        shape: shape of one observation.
        clip: normalized values are clipped to [-clip, clip].
        eps: added to the variance before the square root.

    Example:
        >>> norm = ObservationNormalizer((3,))
        >>> batch = np.random.default_rng(0).normal(5.0, 2.0, size=(1000, 3))
        >>> norm.update(batch)
        >>> bool(np.all(np.abs(norm.normalize(batch).mean(axis=0)) < 1e-6))
        True
        >>> norm.frozen = True
        >>> norm.update(batch + 100.0)  # ignored while frozen
        >>> float(norm.get_state()["count"])
        1000.0
    """

    def __init__(self, shape: Shape, clip: float = 10.0, eps: float = 1e-8):
        if clip <= 0:
            raise ValueError(f"clip must be positive, got {clip}")
        self.rms = RunningMeanStd(shape)
        self.clip, self.eps = float(clip), float(eps)
        self.frozen = False

    @property
    def shape(self) -> Tuple[int, ...]:
        return self.rms.shape

    def update(self, batch: np.ndarray) -> None:
        """Add a batch ``(n, *shape)`` to the statistics, unless frozen."""
        if not self.frozen:
            self.rms.update(batch)

    def normalize(self, batch: np.ndarray) -> np.ndarray:
        """Normalized and clipped float32 copy of ``batch`` (any leading dimensions)."""
        x = np.asarray(batch, dtype=np.float64)
        if x.shape[x.ndim - len(self.shape):] != self.shape:
            raise ValueError(f"ObservationNormalizer of shape {self.shape} got observations of shape {x.shape}")
        y = (x - self.rms.mean) / np.sqrt(self.rms.var + self.eps)
        return np.clip(y, -self.clip, self.clip).astype(np.float32)

    def get_state(self) -> Dict[str, np.ndarray]:
        """The statistics as plain numpy arrays: ``{"mean", "var", "count"}``."""
        return self.rms.get_state()

    def set_state(self, state: Mapping[str, np.ndarray]) -> None:
        self.rms.set_state(state)


class RewardNormalizer:
    """Scale rewards by the running std of the discounted return, as in PPO implementations.

    For each env the discounted return ``R <- gamma * R + r`` is accumulated and reset to 0 when
    the episode ends (terminated or truncated); its running variance gives the scale:
    ``normalize(r) = clip(r / sqrt(var(R) + eps), ±clip)``. The mean is not subtracted, so the sign
    of rewards is kept.

    Call ``update(rewards, dones)`` once per vector step (``rewards`` and ``dones`` of shape
    ``(n_envs,)``), then ``normalize(rewards)``. While ``frozen``, `update` changes nothing.
    `get_state`/`set_state` carry the statistics only; the per-env returns start at 0 after
    `set_state` (a resumed run starts new episodes).

    Args:
        gamma: discount of the return whose scale is tracked.
        clip: normalized rewards are clipped to [-clip, clip].
        eps: added to the variance before the square root.
    """

    def __init__(self, gamma: float = 0.99, clip: float = 10.0, eps: float = 1e-8):
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")
        self.gamma, self.clip, self.eps = float(gamma), float(clip), float(eps)
        self.rms = RunningMeanStd(())
        self.returns: np.ndarray | None = None
        self.frozen = False

    def update(self, rewards: np.ndarray, dones: np.ndarray) -> None:
        """Accumulate one step of discounted returns and add them to the statistics."""
        if self.frozen:
            return
        r = np.asarray(rewards, np.float64).reshape(-1)
        d = np.asarray(dones, bool).reshape(-1)
        if d.shape != r.shape:
            raise ValueError(f"rewards {r.shape} and dones {d.shape} must have the same shape")
        if self.returns is None or self.returns.shape != r.shape:
            self.returns = np.zeros_like(r)
        self.returns = self.returns * self.gamma + r
        self.rms.update(self.returns)
        self.returns[d] = 0.0

    def normalize(self, rewards: np.ndarray) -> np.ndarray:
        """Scaled and clipped float32 copy of ``rewards``."""
        r = np.asarray(rewards, np.float64) / np.sqrt(self.rms.var + self.eps)
        return np.clip(r, -self.clip, self.clip).astype(np.float32)

    def get_state(self) -> Dict[str, np.ndarray]:
        """The statistics of the return as plain numpy arrays: ``{"mean", "var", "count"}``."""
        return self.rms.get_state()

    def set_state(self, state: Mapping[str, np.ndarray]) -> None:
        self.rms.set_state(state)
        self.returns = None
