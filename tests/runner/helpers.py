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

    def block(self, release_path):
        """Hang, as a stuck env would, until `release_path` exists (never, unless the test releases it)."""
        while not os.path.exists(release_path):
            time.sleep(0.05)
        return os.getpid()

    def hold_socket_to(self, address, seconds):
        """Leave a detached process holding this process's socket to `address` (host, port) open for
        `seconds`, every other file descriptor closed: when this process dies, the socket stays open, as
        for a machine that vanished without a reset. Returns that process's pid."""
        read_end, write_end = os.pipe()
        child = os.fork()
        if child == 0:  # pragma: no cover - runs in the forked process
            try:
                os.setsid()
                holder = os.fork()
                if holder == 0:
                    keep = _socket_to(tuple(address))
                    for fd in range(3, 4096):
                        if fd not in (keep, write_end):
                            try:
                                os.close(fd)
                            except OSError:
                                pass
                    os.close(write_end)
                    time.sleep(seconds)
                    os._exit(0)
                os.write(write_end, str(holder).encode())
            finally:
                os._exit(0)
        os.close(write_end)
        os.waitpid(child, 0)
        with os.fdopen(read_end) as fh:
            return int(fh.read())


def toy_factory(index, attempt, fail_on_build=False):
    return functools.partial(Toy, index, attempt, fail_on_build)


def _socket_to(address):
    """The file descriptor of this process's TCP socket connected to `address`, or -1."""
    import socket

    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            with socket.socket(fileno=os.dup(fd)) as sock:
                if sock.type == socket.SOCK_STREAM and sock.getpeername()[:2] == address:
                    return fd
        except OSError:
            continue
    return -1


def claim(path):
    """Create `path` if nobody has yet (atomically); True for the one caller that did."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return True


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


class HangingEnv(ShortCorridor):
    """A `ShortCorridor` whose `step` hangs in one env of one worker: the first env in a worker (a thread
    or a process the pool started; never the learner's own probe of the env) to reach `hang_after` steps
    claims `flag_dir/claimed` (writing its pid there) and blocks until `flag_dir/release` exists, which a
    process worker never sees (it is stopped first) and a thread worker sees when the test releases it at
    the end. Every other env, restarted ones included, goes on. (An Ape-X actor builds a copy of the
    agent, which probes its own env for 50-100 steps: hang after more than that.)"""

    def __init__(self, flag_dir, hang_after=30):
        super().__init__(5)
        self.flag_dir, self.hang_after, self.steps = flag_dir, hang_after, 0

    def step(self, action):
        import multiprocessing
        import threading

        self.steps += 1
        in_worker = threading.current_thread() is not threading.main_thread() or \
            multiprocessing.parent_process() is not None
        if self.steps == self.hang_after and in_worker and claim(os.path.join(self.flag_dir, "claimed")):
            while not os.path.exists(os.path.join(self.flag_dir, "release")):
                time.sleep(0.05)
        return super().step(action)


def release_and_wait_for_threads(flag_dir, prefix, timeout=60.0):
    """Release a `HangingEnv` (or `Toy.block`) and wait until no thread named `prefix`... is left
    (`timeout` only guards against a hang); True if none is."""
    import threading

    open(os.path.join(flag_dir, "release"), "w").close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(t.name.startswith(prefix) for t in threading.enumerate()):
        time.sleep(0.05)
    return not any(t.name.startswith(prefix) for t in threading.enumerate())


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
