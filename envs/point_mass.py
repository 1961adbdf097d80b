"""`tlrl/PointMass-v0`: steer a point mass with inertia to a goal in the plane."""
from __future__ import annotations

import math
from typing import Any, Dict, Optional

import gymnasium as gym
import numpy as np
from gymnasium import spaces

ARENA = 1.0  # positions live in [-ARENA, ARENA]^2
GOAL_RANGE = 0.8  # start and goal are drawn in [-GOAL_RANGE, GOAL_RANGE]^2
MAX_SPEED = 0.1  # distance per step at full velocity
INERTIA = 0.75  # velocity <- INERTIA * velocity + (1 - INERTIA) * action


class PointMassEnv(gym.Env):
    """Reach a random goal with a point mass whose velocity follows the action with inertia.

    Dynamics per step: ``v <- 0.75 v + 0.25 clip(a, -1, 1)``, ``p <- clip(p + 0.1 v, -1, 1)``
    (a wall stops the velocity component that pushes into it). Start and goal are drawn
    uniformly in ``[-0.8, 0.8]^2`` at reset.

    Spaces:
        observation: ``Box(low, high, (6,), float32)`` = ``[px, py, vx, vy, gx, gy]``: position and
            goal in [-1, 1], velocity in [-1, 1] (units of the maximum speed 0.1 per step).
        action: ``Box(-1, 1, (2,), float32)``: the target velocity (force) in x and y.

    Reward (``reward_type``):
        ``"shaped"`` (default): ``-distance(p, goal)`` after the step (in [-2.9, 0]).
        ``"sparse"``: 1.0 on the step that reaches the goal, 0.0 otherwise.

    Episode end: terminated when ``distance(p, goal) < goal_radius`` (0.1); truncated by the
    time limit (``max_episode_steps=50`` in the registration of ``tlrl/PointMass-v0``).

    Args:
        reward_type: ``"shaped"`` or ``"sparse"``.
        goal_radius: distance to the goal that counts as reached.
        render_mode: None or ``"rgb_array"`` (a 64x64 image).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, reward_type: str = "shaped", goal_radius: float = 0.1, render_mode: Optional[str] = None):
        if reward_type not in ("shaped", "sparse"):
            raise ValueError(f"reward_type must be 'shaped' or 'sparse', got {reward_type!r}")
        if not 0.0 < float(goal_radius) < 2.0:
            raise ValueError(f"goal_radius must be in (0, 2), got {goal_radius!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.reward_type = reward_type
        self.goal_radius = float(goal_radius)
        self.render_mode = render_mode
        self.observation_space = spaces.Box(-1.0, 1.0, (6,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self._pos = (0.0, 0.0)
        self._vel = (0.0, 0.0)
        self._goal = (0.0, 0.0)

    def _obs(self) -> np.ndarray:
        return np.array((*self._pos, *self._vel, *self._goal), np.float32)

    def _distance(self) -> float:
        return math.hypot(self._pos[0] - self._goal[0], self._pos[1] - self._goal[1])

    def reset(self, *, seed: Optional[int] = None, options: Optional[Dict[str, Any]] = None):
        super().reset(seed=seed)
        pos_goal = self.np_random.uniform(-GOAL_RANGE, GOAL_RANGE, 4)
        self._pos = (float(pos_goal[0]), float(pos_goal[1]))
        self._goal = (float(pos_goal[2]), float(pos_goal[3]))
        self._vel = (0.0, 0.0)
        return self._obs(), {"distance": self._distance()}

    def step(self, action):
        # Plain Python floats: for 2-vectors this is several times faster than numpy.
        a = np.asarray(action, np.float64).reshape(2)
        pos, vel = [], []
        for i in range(2):
            v = INERTIA * self._vel[i] + (1.0 - INERTIA) * min(max(float(a[i]), -1.0), 1.0)
            p = self._pos[i] + MAX_SPEED * v
            if p > ARENA or p < -ARENA:  # the wall stops the motion into it
                p, v = min(max(p, -ARENA), ARENA), 0.0
            pos.append(p)
            vel.append(v)
        self._pos, self._vel = tuple(pos), tuple(vel)
        d = self._distance()
        terminated = d < self.goal_radius
        if self.reward_type == "shaped":
            reward = -d
        else:
            reward = 1.0 if terminated else 0.0
        return self._obs(), reward, terminated, False, {"distance": d}

    def render(self) -> Optional[np.ndarray]:
        if self.render_mode != "rgb_array":
            return None
        n = 64
        coords = (np.arange(n) + 0.5) / n * 2 * ARENA - ARENA  # pixel centres in world units
        x, y = np.meshgrid(coords, -coords)  # image row 0 is the top (y = +1)
        img = np.full((n, n, 3), 245, np.uint8)
        goal = (x - self._goal[0]) ** 2 + (y - self._goal[1]) ** 2 < max(self.goal_radius, 2 * ARENA / n) ** 2
        img[goal] = (60, 180, 75)
        agent = (x - self._pos[0]) ** 2 + (y - self._pos[1]) ** 2 < (0.06 * ARENA) ** 2
        img[agent] = (0, 90, 200)
        return img
