"""Envs that go wrong after a while, for the tests of `tlrl.finite` (importable by name: "nonfinite_envs:Class")."""
import gymnasium as gym
import numpy as np


class GoesBad(gym.Env):
    """A small task (4 float observations, 2 actions, episodes of 20 steps) that behaves until its `after`-th
    step (counted over the env's life, across episodes), then returns `value` as its `what`: "reward",
    "obs" (the observation of every later step) or "final_obs" (only where an episode ends).

    The task: reward 1 for action 0, 0 for action 1. With `tag`, steps are counted over every env made
    with that tag in this process, so the count goes on across the env restarts of `tlrl train`'s
    checkpoints.
    """

    #: tag -> steps of the envs made with it.
    shared_steps = {}

    def __init__(self, after: int = 100, what: str = "reward", value: float = float("nan"), episode: int = 20,
                 tag: str = ""):
        self.after, self.what, self.value, self.episode, self.tag = int(after), what, float(value), int(episode), tag
        self.observation_space = gym.spaces.Box(-10.0, 10.0, (4,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.steps = self.t = 0

    def _obs(self):
        return self.np_random.uniform(-1.0, 1.0, 4).astype(np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.steps += 1
        self.t += 1
        if self.tag:
            self.shared_steps[self.tag] = self.shared_steps.get(self.tag, 0) + 1
        bad = (self.shared_steps[self.tag] if self.tag else self.steps) > self.after
        obs, reward = self._obs(), float(int(action) == 0)
        truncated = self.t >= self.episode
        if bad and self.what == "reward":
            reward = self.value
        if bad and (self.what == "obs" or (self.what == "final_obs" and truncated)):
            obs[1] = self.value
        return obs, reward, False, truncated, {}


class BadReset(GoesBad):
    """`GoesBad` whose `reset` returns a NaN observation while the class flag `bad` is set (a test sets it after
    the agent's constructor has checked a probe env, so only the training envs' first reset is bad)."""

    bad = False

    def reset(self, *, seed=None, options=None):
        obs, info = super().reset(seed=seed, options=options)
        if BadReset.bad:
            obs[2] = np.nan
        return obs, info
