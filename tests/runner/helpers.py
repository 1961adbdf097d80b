"""Helpers of the runner tests, importable in worker processes and Ray actors (numpy and gymnasium only)."""
import functools
import os
import time

import gymnasium as gym
import numpy as np


class Toy:
    """A worker with a few methods; `attempt` tells restarted workers apart."""

    def __init__(self, index, attempt, fail_on_build=False):
        if fail_on_build:
            raise ValueError(f"cannot build worker {index}")
        self.index, self.attempt, self.calls = index, attempt, 0

    def echo(self, x):
        self.calls += 1
        return {"index": self.index, "attempt": self.attempt, "calls": self.calls, "x": x}

    def fail(self, message):
        raise RuntimeError(message)

    def sleep(self, seconds):
        time.sleep(seconds)
        return os.getpid()

    def pid(self):
        return os.getpid()


def toy_factory(index, attempt, fail_on_build=False):
    return functools.partial(Toy, index, attempt, fail_on_build)


def child_pids():
    """PIDs of the child processes of this process (read from /proc, zombies included), except
    multiprocessing's resource tracker, a helper that lives as long as this process."""
    me, out = os.getpid(), set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == me:
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    if b"resource_tracker" in fh.read():
                        continue
            except OSError:
                pass
            out.add(int(entry))
    return out


def wait_dead(pids, timeout=20.0):
    """Wait until none of `pids` is alive (`timeout` only guards against a hang); True if so."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.2)
    return not any(alive(p) for p in pids)


def alive(pid):
    """Whether `pid` is a live (not zombie) process."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class ShortCorridor(gym.Env):
    """A custom env (not registered): walk right (action 1) to the end of a corridor of `length` cells.

    Reward 1 at the goal (terminated), else 0; truncated after `2 * length` steps.
    """

    def __init__(self, length=5):
        self.length = length
        self.observation_space = gym.spaces.Box(0.0, 1.0, (length,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.pos = self.t = 0

    def _obs(self):
        obs = np.zeros(self.length, np.float32)
        obs[self.pos] = 1.0
        return obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        self.pos = min(max(self.pos + (1 if int(action) == 1 else -1), 0), self.length - 1)
        done = self.pos == self.length - 1
        return self._obs(), float(done), done, (not done) and self.t >= 2 * self.length, {}


class FailingEnv(ShortCorridor):
    """A `ShortCorridor` whose `step` raises after `fail_after` steps (each new env counts afresh)."""

    def __init__(self, fail_after=200):
        super().__init__(5)
        self.fail_after, self.steps = fail_after, 0

    def step(self, action):
        self.steps += 1
        if self.steps > self.fail_after:
            raise RuntimeError("simulator crashed")
        return super().step(action)


class ToyGradientWorker:
    """Stands in for a `GradientWorker` (no TF): `step(weights)` sleeps a little and returns zero gradients."""

    steps_per_rollout = 10

    def __init__(self, size, seconds=0.01):
        self.size, self.seconds = size, seconds

    def step(self, flat_weights):
        time.sleep(self.seconds)
        return np.zeros(self.size, np.float32), {"steps": self.steps_per_rollout, "episode_returns": []}


def toy_gradient_factory(size):
    return lambda i, attempt: functools.partial(ToyGradientWorker, size)
