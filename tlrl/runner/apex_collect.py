"""The actor side of one Ape-X run, as the learner sees it (`tlrl.runner.apex.ActorSource.run`).

`BlockCollector` hands out blocks (within the env-step budget and the rate limit), receives
them, decides which training phases each block makes due, hands out the newest weights, and
restarts failed actors.
"""
from __future__ import annotations

import queue
import threading
from typing import Dict, List, Optional, Sequence

import numpy as np

from tlrl.runner.driver_policy import Restarts, StepBudget


class BlockCollector:
    """Dispatches blocks to the actors of `pool` and collects them (see the module docstring).

    `pump(timeout)` polls the pool once and re-dispatches idle actors (within the rate limit).
    With a thread, process or Ray backend it runs on its own thread (`run`), so actors get new
    work while the learner trains; with "sync" the learner calls it between phases. Blocks go
    to `inbox` in arrival order, each with the training phases it makes due (vector-step marks,
    counted as `tlrl.loop.LocalSource` counts them with the agent's `plan`).
    """

    def __init__(self, source, pool, total_steps: int, weights: Sequence[np.ndarray]):
        agent = source.agent
        self.source, self.pool, self.n = source, pool, pool.n
        self.budget = StepBudget(total_steps)
        self.restarts = Restarts(pool, source.max_worker_restarts, what="block")
        self.n_envs, self.steps, self.learning_starts = agent.n_envs, agent.plan.steps, agent.plan.learning_starts
        self.block_env_steps = source.block_steps * agent.n_envs
        self.start_steps, self.total_timesteps = agent.num_timesteps, agent.total_timesteps
        self.num_timesteps, self.vector_steps = agent.num_timesteps, agent.vector_steps
        self.claims: Dict[int, int] = {}
        self.actor_version = [-1] * self.n
        self.since_pull = [0] * self.n
        self.weights = (0, weights)
        self.pending = 0  # training phases made due and not trained yet
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.inbox: "queue.Queue" = queue.Queue()
        self.done = threading.Event()
        self.stopping = self.halt = False
        self.error: Optional[BaseException] = None

    def published(self, version: int, weights: Sequence[np.ndarray], phases: int) -> None:
        """The learner trained `phases` due phases (run or skipped) and has new weights."""
        self.weights = (version, weights)
        with self.lock:
            self.pending -= phases
        self.wake.set()

    def start(self) -> None:
        self.pool.start()
        self.dispatch_idle()

    def dispatch_idle(self) -> None:
        lag = self.source.max_update_lag
        for i in range(self.n):
            if self.stopping or (lag is not None and self.pending > lag):
                return
            if i not in self.claims and not self.dispatch(i):
                return

    def dispatch(self, i: int) -> bool:
        before = self.budget.claim(self.block_env_steps)
        if before is None:
            return False
        self.claims[i] = before
        version, latest = self.weights
        weights = None
        if self.actor_version[i] < 0 or (self.actor_version[i] < version and
                                         self.since_pull[i] >= self.source.pull_every):
            weights, self.actor_version[i], self.since_pull[i] = latest, version, 0
        steps = self.start_steps + before
        self.pool.submit(i, "collect", weights, steps < self.learning_starts, steps, self.total_timesteps)
        return True

    def marks(self) -> List[int]:
        """Advance the counters by one block; the vector steps at which a training phase is due in it."""
        out = []
        for _ in range(self.source.block_steps):
            self.num_timesteps += self.n_envs
            self.vector_steps += 1
            if self.vector_steps % self.steps == 0 and self.num_timesteps >= self.learning_starts:
                out.append(self.vector_steps)
        return out

    def pump(self, timeout: float) -> None:
        for ev in self.pool.poll(timeout):
            i = ev.index
            self.claims.pop(i)
            if ev.failure is not None:
                self.budget.release(self.block_env_steps)
                self.restarts.handle(ev.failure)  # raises WorkerError when no restart is left
                self.actor_version[i] = -1  # a fresh actor pulls the weights first
                continue
            if self.stopping:
                continue  # training was stopped: blocks still in flight are dropped
            block, stats = ev.value
            marks = self.marks()
            self.since_pull[i] += stats["steps"]
            with self.lock:
                self.pending += len(marks)
            self.inbox.put((block, stats, marks))
        self.dispatch_idle()
        if not self.claims and (self.stopping or self.budget.claimed >= self.budget.total):
            self.done.set()

    def run(self) -> None:
        """The collector thread: pump until done, stopped (`halt`) or failed (`error`, read by the learner)."""
        try:
            while not self.done.is_set() and not self.halt:
                if self.claims:
                    self.pump(0.05)
                else:  # every actor held back by the rate limit: wait for the learner
                    self.wake.wait(0.05)
                    self.wake.clear()
                    self.pump(0)
        except BaseException as exc:  # noqa: BLE001 - raised again in the learner's thread
            self.error = exc
            self.done.set()
