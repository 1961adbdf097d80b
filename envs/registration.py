"""Registration of tlrl's environments under the ``tlrl/`` namespace of Gymnasium.

`register_envs()` runs when `tlrl.envs` is imported. It is idempotent: an id that is already
registered with the same entry point is left alone, so importing twice, or importing again in
a spawned worker process, neither warns nor fails.
"""
from __future__ import annotations

from typing import Any, Dict, List, NamedTuple

import gymnasium as gym


class _EnvInfo(NamedTuple):
    id: str
    entry_point: str
    max_episode_steps: int
    reward_threshold: float
    kwargs: Dict[str, Any]


#: tlrl's environments. `reward_threshold` is the mean return that counts as solved.
ENVS: List[_EnvInfo] = [
    _EnvInfo("tlrl/GridWorld-v0", "tlrl.envs.gridworld:GridWorldEnv", 100, 0.9, {}),
    _EnvInfo("tlrl/GoalGrid-v0", "tlrl.envs.gridworld:GoalGridEnv", 100, 0.95, {}),
    _EnvInfo("tlrl/PointMass-v0", "tlrl.envs.point_mass:PointMassEnv", 50, -8.0, {}),
    _EnvInfo("tlrl/Catch-v0", "tlrl.envs.catch:CatchEnv", 100, 0.9, {}),
]

#: The ids registered by `register_envs`.
ENV_IDS = tuple(e.id for e in ENVS)


def register_envs() -> None:
    """Register every tlrl environment with Gymnasium; safe to call any number of times."""
    for info in ENVS:
        existing = gym.registry.get(info.id)
        if existing is not None and existing.entry_point == info.entry_point:
            continue
        gym.register(
            id=info.id,
            entry_point=info.entry_point,
            max_episode_steps=info.max_episode_steps,
            reward_threshold=info.reward_threshold,
            kwargs=dict(info.kwargs),
        )
