"""`tlrl/Catch-v0`: catch a falling ball with a paddle, from pixels."""
from __future__ import annotations

from typing import Any, Dict, Optional

import gymnasium as gym
import numpy as np
from gymnasium import spaces

ON = 255  # pixel value of the ball and the paddle; the background is 0


class CatchEnv(gym.Env):
    """Catch a ball that falls from a random column of the top row with a paddle on the bottom row.

    The ball falls one row per step; the agent moves the paddle under it.

    Spaces:
        observation: ``Box(0, 255, (rows, columns, 1), uint8)``: 255 at the ball and the paddle,
            0 elsewhere (10x10x1 by default).
        action: ``Discrete(3)``: 0 left, 1 stay, 2 right (the paddle stops at the edges).

    The paddle starts in the middle column. With ``columns <= 2 * (rows - 1) + 1`` (true for the
    defaults and every square board) every ball can be caught.

    Reward: +1.0 when the ball reaches the bottom row on the paddle, -1.0 when it misses, 0.0 on
    every other step.

    Episode end: terminated when the ball reaches the bottom row, after ``rows - 1`` steps
    (9 by default). The registration's time limit (``max_episode_steps=100``) never binds unless
    you pass a smaller ``max_episode_steps`` to ``gymnasium.make``.

    Args:
        rows: height of the board (>= 2).
        columns: width of the board (>= 2).
        render_mode: None or ``"rgb_array"`` (the board scaled up 8x, in RGB).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 8}

    def __init__(self, rows: int = 10, columns: int = 10, render_mode: Optional[str] = None):
        for name, v in (("rows", rows), ("columns", columns)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 2:
                raise ValueError(f"{name} must be an integer >= 2, got {v!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.rows, self.columns = int(rows), int(columns)
        self.render_mode = render_mode
        self.observation_space = spaces.Box(0, ON, (self.rows, self.columns, 1), np.uint8)
        self.action_space = spaces.Discrete(3)
        self._ball_row, self._ball_col, self._paddle = 0, 0, self.columns // 2

    def _obs(self) -> np.ndarray:
        obs = np.zeros((self.rows, self.columns, 1), np.uint8)
        obs[self._ball_row, self._ball_col, 0] = ON
        obs[self.rows - 1, self._paddle, 0] = ON
        return obs

    def reset(self, *, seed: Optional[int] = None, options: Optional[Dict[str, Any]] = None):
        super().reset(seed=seed)
        self._ball_row = 0
        self._ball_col = int(self.np_random.integers(self.columns))
        self._paddle = self.columns // 2
        return self._obs(), {}

    def step(self, action):
        action = int(action)
        if not 0 <= action < 3:
            raise ValueError(f"action must be in {{0, 1, 2}} (left, stay, right), got {action}")
        self._paddle = min(max(self._paddle + action - 1, 0), self.columns - 1)
        self._ball_row = min(self._ball_row + 1, self.rows - 1)
        terminated = self._ball_row >= self.rows - 1
        reward = 0.0
        if terminated:
            reward = 1.0 if self._ball_col == self._paddle else -1.0
        return self._obs(), reward, terminated, False, {}

    def render(self) -> Optional[np.ndarray]:
        if self.render_mode != "rgb_array":
            return None
        board = np.repeat(self._obs(), 3, axis=2)
        return np.repeat(np.repeat(board, 8, axis=0), 8, axis=1)
