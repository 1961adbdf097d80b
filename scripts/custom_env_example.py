"""Plug your own Gymnasium environment into tlrl: define it, check it, vectorize it, train it.

Run:  python scripts/custom_env_example.py [--steps 20000]

In your own project the env would live in an importable module (say ``mypkg/envs.py``) and you
would pass ``"mypkg.envs:CorridorEnv"`` wherever tlrl takes an env (Python API, YAML config, CLI).
Here it is defined in this script and passed as a class, which works the same way.
"""
from __future__ import annotations

import argparse
import os
from typing import Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
from gymnasium import spaces  # noqa: E402

import tlrl.envs  # noqa: E402


class CorridorEnv(gym.Env):
    """Walk right along a corridor of ``length`` cells to the exit.

    observation: ``Box(0, 1, (2,), float32)``: [position / (length - 1), noisy sensor in [0, 1]].
    action: ``Discrete(2)``: 0 left, 1 right.
    reward: +1 on reaching the exit (terminated), -0.01 per other step.
    The time limit (truncation) is added by `gymnasium.wrappers.TimeLimit` in `make_corridor`.
    """

    def __init__(self, length: int = 8, noise: float = 0.1):
        self.length, self.noise = int(length), float(noise)
        self.observation_space = spaces.Box(0.0, 1.0, (2,), np.float32)
        self.action_space = spaces.Discrete(2)
        self._pos = 0

    def _obs(self) -> np.ndarray:
        sensor = np.clip(self.np_random.normal(0.5, self.noise), 0.0, 1.0)
        return np.array([self._pos / (self.length - 1), sensor], np.float32)

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None):
        super().reset(seed=seed)  # seeds self.np_random
        self._pos = 0
        return self._obs(), {}

    def step(self, action):
        self._pos = min(max(self._pos + (1 if int(action) == 1 else -1), 0), self.length - 1)
        terminated = self._pos == self.length - 1
        reward = 1.0 if terminated else -0.01
        return self._obs(), reward, terminated, False, {}


def make_corridor(length: int = 8, noise: float = 0.1) -> gym.Env:
    """A factory: the env with a time limit, so episodes end (truncated) even if the exit is never found."""
    return gym.wrappers.TimeLimit(CorridorEnv(length, noise), max_episode_steps=4 * length)


def check_and_vectorize(n_envs: int = 4) -> None:
    # 1. Fail fast: check_env raises tlrl.envs.EnvCheckError saying what is wrong and how to fix it.
    tlrl.envs.check_env(make_corridor())
    print("check_env: CorridorEnv follows the Gymnasium API")

    # 2. A vector env, as the agents build it. SAME_STEP autoreset: when an episode ends, the
    #    returned observation already starts the next one; the last one is in info["final_obs"].
    venv = tlrl.envs.make_vector_env(make_corridor, n_envs, seed=0, kwargs={"length": 5})
    obs, info = venv.reset()
    episodes = 0
    for _ in range(50):
        obs, reward, terminated, truncated, info = venv.step(venv.action_space.sample())
        episodes += int(np.sum(terminated | truncated))
    venv.close()
    print(f"vector env: {n_envs} envs, observations {obs.shape}, {episodes} episodes ended in 50 steps")


def main(steps: int = 20_000) -> None:
    check_and_vectorize()
    try:
        from tlrl.algorithms import PPO
    except ImportError:
        print("tlrl.algorithms.PPO is not available in this version; skipping training")
        return
    # The same call with a module path: PPO("mypkg.envs:CorridorEnv", seed=0, env_kwargs={"length": 8})
    agent = PPO(make_corridor, seed=0, env_kwargs={"length": 8})
    agent.learn(steps)
    mean, std = agent.evaluate(10)
    print(f"PPO after {steps} steps: return {mean:.2f} +/- {std:.2f} (optimal 0.94)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000, help="training steps if PPO is available")
    main(parser.parse_args().steps)
