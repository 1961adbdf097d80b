"""Grid worlds: `tlrl/GridWorld-v0` (fixed goal, optional slippery moves) and
`tlrl/GoalGrid-v0` (random start and goal, Dict observation).

Both are plain numpy/Python and cost a few microseconds per step.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import gymnasium as gym
import numpy as np
from gymnasium import spaces

#: Row/column offsets of the four moves: 0 up, 1 right, 2 down, 3 left.
MOVES = ((-1, 0), (0, 1), (1, 0), (0, -1))
STEP_PENALTY = -0.01
GOAL_REWARD = 1.0

# Colours used by `render()` (RGB).
_FLOOR = (235, 235, 235)
_GOAL = (60, 180, 75)
_AGENT = (0, 90, 200)


def _check_size(size: Any) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 2:
        raise ValueError(f"size must be an integer >= 2, got {size!r}")
    return int(size)


def _check_prob(name: str, p: Any) -> float:
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
    return p


def _render_grid(size: int, agent: Tuple[int, int], goal: Tuple[int, int], cell: int = 16) -> np.ndarray:
    """An RGB image (size*cell, size*cell, 3) uint8 of the grid with grid lines."""
    small = np.empty((size, size, 3), np.uint8)
    small[:] = _FLOOR
    small[goal] = _GOAL
    small[agent] = _AGENT
    img = np.repeat(np.repeat(small, cell, axis=0), cell, axis=1)
    img[::cell, :] = 180  # grid lines
    img[:, ::cell] = 180
    return img


class _GridBase(gym.Env):
    """Shared move logic: walls clip moves; with `slippery` p, a move goes sideways with prob p."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 8}

    def __init__(self, size: int, slippery: float, render_mode: Optional[str]):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.size = _check_size(size)
        self.slippery = _check_prob("slippery", slippery)
        self.render_mode = render_mode
        self.action_space = spaces.Discrete(4)
        self._agent = (0, 0)
        self._goal = (size - 1, size - 1)

    def _move(self, action: Any) -> None:
        action = int(action)
        if not 0 <= action < 4:
            raise ValueError(f"action must be in {{0, 1, 2, 3}} (up, right, down, left), got {action}")
        if self.slippery > 0.0 and self.np_random.random() < self.slippery:
            # Slip sideways: one of the two perpendicular moves, uniformly.
            action = (action + (1 if self.np_random.random() < 0.5 else 3)) % 4
        dr, dc = MOVES[action]
        r = min(max(self._agent[0] + dr, 0), self.size - 1)
        c = min(max(self._agent[1] + dc, 0), self.size - 1)
        self._agent = (r, c)

    def _reward_and_done(self) -> Tuple[float, bool]:
        if self._agent == self._goal:
            return GOAL_REWARD, True
        return STEP_PENALTY, False

    def render(self) -> Optional[np.ndarray]:
        if self.render_mode != "rgb_array":
            return None
        return _render_grid(self.size, self._agent, self._goal)


class GridWorldEnv(_GridBase):
    """Walk from the top-left corner to the goal in the bottom-right corner of a square grid.

    Spaces:
        observation: ``Box(0, 1, (size*size,), float32)``, a one-hot vector of the agent's cell
            (index ``row * size + col``).
        action: ``Discrete(4)``: 0 up, 1 right, 2 down, 3 left. Moves into a wall leave the agent
            in place. With ``slippery = p > 0`` a move goes to one of the two perpendicular
            directions with total probability p (randomness from ``reset(seed=...)``).

    Reward: +1.0 on the step that reaches the goal, -0.01 on every other step.

    Episode end: terminated when the goal is reached; truncated by the time limit
    (``max_episode_steps=100`` in the registration of ``tlrl/GridWorld-v0``).
    The optimal return is ``1 - 0.01 * (2 * (size - 1) - 1)``: 0.93 for the default size 5.

    Args:
        size: side of the grid (>= 2).
        slippery: probability that a move slips sideways.
        render_mode: None or ``"rgb_array"``.

    Example:
        >>> import gymnasium as gym, tlrl.envs
        >>> env = gym.make("tlrl/GridWorld-v0", size=3)
        >>> obs, info = env.reset(seed=0)
        >>> obs.shape, int(obs.argmax())
        ((9,), 0)
        >>> for a in (1, 1, 2):
        ...     obs, reward, terminated, truncated, info = env.step(a)
        >>> env.step(2)[1:4]
        (1.0, True, False)
    """

    def __init__(self, size: int = 5, slippery: float = 0.0, render_mode: Optional[str] = None):
        super().__init__(size, slippery, render_mode)
        self.observation_space = spaces.Box(0.0, 1.0, (self.size * self.size,), np.float32)

    def _obs(self) -> np.ndarray:
        obs = np.zeros(self.size * self.size, np.float32)
        obs[self._agent[0] * self.size + self._agent[1]] = 1.0
        return obs

    def reset(self, *, seed: Optional[int] = None, options: Optional[Dict[str, Any]] = None):
        super().reset(seed=seed)
        self._agent = (0, 0)
        return self._obs(), {}

    def step(self, action):
        self._move(action)
        reward, terminated = self._reward_and_done()
        return self._obs(), reward, terminated, False, {}


class GoalGridEnv(_GridBase):
    """Reach a goal that moves every episode; the observation is a Dict {"position", "goal"}.

    Spaces:
        observation: ``Dict({"position": Box(0, 1, (2,), float32), "goal": Box(0, 1, (2,), float32)})``,
            (row, col) of the agent and of the goal, each divided by ``size - 1``.
        action: ``Discrete(4)``: 0 up, 1 right, 2 down, 3 left (walls clip, ``slippery`` as in
            :class:`GridWorldEnv`).

    At reset the start and the goal are drawn uniformly at random and distinct.

    Reward: +1.0 on the step that reaches the goal, -0.01 on every other step.

    Episode end: terminated when the goal is reached; truncated by the time limit
    (``max_episode_steps=100`` in the registration of ``tlrl/GoalGrid-v0``).
    An optimal policy takes the Manhattan distance in steps: mean return about 0.98 for size 5.

    Args:
        size: side of the grid (>= 2).
        slippery: probability that a move slips sideways.
        render_mode: None or ``"rgb_array"``.
    """

    def __init__(self, size: int = 5, slippery: float = 0.0, render_mode: Optional[str] = None):
        super().__init__(size, slippery, render_mode)
        box = spaces.Box(0.0, 1.0, (2,), np.float32)
        self.observation_space = spaces.Dict({"position": box, "goal": box})

    def _obs(self) -> Dict[str, np.ndarray]:
        s = 1.0 / (self.size - 1)
        return {
            "position": np.array((self._agent[0] * s, self._agent[1] * s), np.float32),
            "goal": np.array((self._goal[0] * s, self._goal[1] * s), np.float32),
        }

    def reset(self, *, seed: Optional[int] = None, options: Optional[Dict[str, Any]] = None):
        super().reset(seed=seed)
        n = self.size * self.size
        start = int(self.np_random.integers(n))
        goal = int(self.np_random.integers(n - 1))
        goal += goal >= start  # uniform over the cells other than the start
        self._agent = divmod(start, self.size)
        self._goal = divmod(goal, self.size)
        return self._obs(), {}

    def step(self, action):
        self._move(action)
        reward, terminated = self._reward_and_done()
        return self._obs(), reward, terminated, False, {}
