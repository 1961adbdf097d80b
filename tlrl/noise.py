"""Exploration noise for deterministic policies (DDPG, TD3): numpy, seeded, one process per env.

Each noise object draws a ``[n_envs, *shape]`` array per call from its own
`numpy.random.Generator`, can reset the process of chosen envs (at their episode
ends), and exposes its whole state (generator included) as a dict of arrays, so a
saved agent resumes with exactly the noise it would have drawn.

>>> noise = NormalActionNoise(sigma=0.1, shape=(2,), n_envs=3, seed=0)
>>> noise().shape
(3, 2)
>>> ou = OrnsteinUhlenbeckActionNoise(sigma=0.2, shape=(1,), n_envs=2, seed=0)
>>> state = ou.get_state(); a = ou(); ou.set_state(state)
>>> bool(np.all(ou() == a))
True
"""
from __future__ import annotations

import json
from typing import Dict, Optional, Sequence

import numpy as np

__all__ = ["ActionNoise", "NormalActionNoise", "OrnsteinUhlenbeckActionNoise", "make_action_noise"]


class ActionNoise:
    """Base class: `noise()` -> ``[n_envs, *shape]`` float32; `reset(indices)`; `get_state`/`set_state`."""

    def __init__(self, shape: Sequence[int], n_envs: int = 1, seed: Optional[int] = None):
        if int(n_envs) < 1:
            raise ValueError(f"n_envs must be at least 1, got {n_envs}")
        self.shape = tuple(int(s) for s in shape)
        self.n_envs = int(n_envs)
        self.rng = np.random.default_rng(seed)

    def __call__(self) -> np.ndarray:
        raise NotImplementedError

    def reset(self, indices: Optional[Sequence[int]] = None) -> None:
        """Restart the noise process of envs `indices` (all envs if None)."""

    def get_state(self) -> Dict[str, np.ndarray]:
        """Everything needed to continue the exact same noise sequence."""
        return {"rng": np.array(json.dumps(self.rng.bit_generator.state))}

    def set_state(self, state: Dict[str, np.ndarray]) -> None:
        self.rng.bit_generator.state = json.loads(str(state["rng"]))


class NormalActionNoise(ActionNoise):
    """Independent Gaussian noise ``mean + sigma * N(0, 1)`` at every step (the TD3 paper's choice).

    Args:
        sigma: standard deviation (a scalar or one per action dimension).
        shape: shape of one action.
        n_envs: number of envs (rows drawn per call).
        mean: mean of the noise.
        seed: seed of the noise's own generator.
    """

    def __init__(self, sigma, shape: Sequence[int], n_envs: int = 1, mean=0.0, seed: Optional[int] = None):
        super().__init__(shape, n_envs, seed)
        self.sigma = np.broadcast_to(np.asarray(sigma, np.float64), self.shape).copy()
        self.mean = np.broadcast_to(np.asarray(mean, np.float64), self.shape).copy()
        _check_sigma_mean(self.sigma, self.mean, sigma, mean)

    def __call__(self) -> np.ndarray:
        eps = self.rng.standard_normal((self.n_envs, *self.shape))
        return (self.mean + self.sigma * eps).astype(np.float32)

    def __repr__(self) -> str:
        return f"NormalActionNoise(sigma={self.sigma.tolist()}, n_envs={self.n_envs})"


class OrnsteinUhlenbeckActionNoise(ActionNoise):
    """Temporally correlated noise (the DDPG paper's choice), one process per env.

    ``x <- x + theta * (mean - x) * dt + sigma * sqrt(dt) * N(0, 1)``; `reset` sets ``x`` back to
    `initial` (zeros by default) for the given envs.

    Args:
        sigma: volatility (a scalar or one per action dimension).
        shape: shape of one action.
        n_envs: number of envs (independent processes).
        theta: rate of mean reversion (0.15 in the DDPG paper).
        dt: time step of the discretization.
        mean: long-run mean.
        initial: starting value of every process (zeros if None).
        seed: seed of the noise's own generator.
    """

    def __init__(self, sigma, shape: Sequence[int], n_envs: int = 1, theta: float = 0.15, dt: float = 1e-2,
                 mean=0.0, initial=None, seed: Optional[int] = None):
        super().__init__(shape, n_envs, seed)
        self.sigma = np.broadcast_to(np.asarray(sigma, np.float64), self.shape).copy()
        self.mean = np.broadcast_to(np.asarray(mean, np.float64), self.shape).copy()
        _check_sigma_mean(self.sigma, self.mean, sigma, mean)
        if not (np.isfinite(theta) and np.isfinite(dt) and theta >= 0 and dt > 0):
            raise ValueError(f"OU noise needs theta >= 0 and dt > 0, got theta={theta}, dt={dt}")
        self.theta, self.dt = float(theta), float(dt)
        self.initial = np.zeros(self.shape) if initial is None else np.broadcast_to(np.asarray(initial, np.float64),
                                                                                    self.shape).copy()
        if not np.all(np.isfinite(self.initial)):
            raise ValueError(f"OU noise initial value must be finite, got {initial}")
        self.x = np.broadcast_to(self.initial, (self.n_envs, *self.shape)).copy()

    def __call__(self) -> np.ndarray:
        eps = self.rng.standard_normal((self.n_envs, *self.shape))
        self.x = self.x + self.theta * (self.mean - self.x) * self.dt + self.sigma * np.sqrt(self.dt) * eps
        return self.x.astype(np.float32)

    def reset(self, indices: Optional[Sequence[int]] = None) -> None:
        if indices is None:
            self.x[:] = self.initial
        else:
            self.x[np.asarray(indices, dtype=np.int64)] = self.initial

    def get_state(self) -> Dict[str, np.ndarray]:
        return {**super().get_state(), "x": self.x.copy()}

    def set_state(self, state: Dict[str, np.ndarray]) -> None:
        super().set_state(state)
        x = np.asarray(state["x"], np.float64)
        if x.shape != self.x.shape:
            raise ValueError(f"OU noise state has shape {x.shape}, expected {self.x.shape} (n_envs, *action shape)")
        self.x = x.copy()

    def __repr__(self) -> str:
        return f"OrnsteinUhlenbeckActionNoise(sigma={self.sigma.tolist()}, theta={self.theta}, n_envs={self.n_envs})"


def _check_sigma_mean(sigma: np.ndarray, mean: np.ndarray, sigma_arg, mean_arg) -> None:
    if not (np.all(np.isfinite(sigma)) and np.all(sigma >= 0)):
        raise ValueError(f"noise sigma must be finite and non-negative, got {sigma_arg}")
    if not np.all(np.isfinite(mean)):
        raise ValueError(f"noise mean must be finite, got {mean_arg}")


def make_action_noise(kind: Optional[str], sigma, shape: Sequence[int], n_envs: int = 1,
                      seed: Optional[int] = None, **kwargs) -> Optional[ActionNoise]:
    """Build noise by name: ``"normal"``, ``"ornstein-uhlenbeck"`` (alias ``"ou"``) or None (no noise).

    >>> make_action_noise("ou", 0.1, (2,)).__class__.__name__
    'OrnsteinUhlenbeckActionNoise'
    >>> make_action_noise(None, 0.1, (2,)) is None
    True
    """
    if kind is None:
        return None
    key = kind.lower().replace("_", "-")
    if key == "normal":
        return NormalActionNoise(sigma, shape, n_envs, seed=seed, **kwargs)
    if key in ("ornstein-uhlenbeck", "ou"):
        return OrnsteinUhlenbeckActionNoise(sigma, shape, n_envs, seed=seed, **kwargs)
    raise ValueError(f"Unknown action noise {kind!r}; use 'normal', 'ornstein-uhlenbeck' or None")
