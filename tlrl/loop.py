"""THE training loop: collect -> store -> update -> callbacks, at boundaries.

`train(agent, total_steps, callback, source)` is what `Algo.learn`, `tlrl train` and every
runner backend call. A *source* produces the iterations; the loop owns what happens at each
boundary between two of them (`Boundary`): the finiteness check of the metrics, steps/s,
progress, the callback (log, evaluate, checkpoint), and stopping. Sources:

- `LocalSource` (the default): the agent's own `Collector` collects `plan.steps` vector steps
  into the agent's store, then `agent.update(obs)` trains (from `plan.learning_starts` on).
- `tlrl.runner.apex.ActorSource`: remote collectors (actors) feed the learner's replay.
- `tlrl.runner.gradient.GradientSource`: remote collectors that also compute gradients (A3C).

A checkpoint is taken at a boundary by the callback (`tlrl.training`): the run never leaves
the loop, so workers and schedules live as long as the run.
"""
from __future__ import annotations

import math
import time
from typing import Any, Dict, List, Optional, Protocol

from tlrl.core import Callback, Metrics
from tlrl.finite import check_metrics
from tlrl.step_limits import check_total_steps


class Boundary:
    """What happens between two iterations; `boundary(returns, metrics) -> False` means stop.

    `metrics` is empty when no update ran (off-policy agents before `learning_starts` call it
    every `train_freq` vector steps, so a run can be stopped or checkpointed at any step).
    """

    def __init__(self, agent, callback: Optional[Callback]):
        self.agent, self.callback = agent, callback
        self.start_steps, self.start_time = int(agent.num_timesteps), time.perf_counter()

    def __call__(self, episode_returns: List[float], metrics: Metrics, **extra: Any) -> bool:
        agent = self.agent
        if metrics:
            check_metrics(metrics, step=agent.num_timesteps, owner=type(agent).__name__)  # before logging, saving
            elapsed = max(time.perf_counter() - self.start_time, 1e-9)
            metrics["steps_per_second"] = (agent.num_timesteps - self.start_steps) / elapsed
        if self.callback is None:
            return True
        info: Dict[str, Any] = {"num_timesteps": int(agent.num_timesteps), "metrics": metrics,
                                "episode_returns": list(episode_returns), "progress": agent.progress,
                                "n_updates": int(agent.n_updates), **extra}
        return self.callback(agent, info) is not False


class Source(Protocol):
    """Produces iterations until the agent reaches `target` env steps or `boundary` says stop."""

    def run(self, target: int, boundary: Boundary) -> None: ...


class LocalSource:
    """The agent's own collector and update, in this thread (see the module docstring)."""

    def __init__(self, agent):
        self.agent = agent

    def run(self, target: int, boundary: Boundary) -> None:
        agent = self.agent
        plan, collector = agent.plan, agent.collector
        while agent.num_timesteps < target:
            steps = plan.steps - agent.vector_steps % plan.steps
            if not plan.whole:  # stop at the target; the phase goes on in the next call
                steps = min(steps, math.ceil((target - agent.num_timesteps) / agent.n_envs))
            ended = collector.collect(steps, plan.learning_starts)
            if agent.vector_steps % plan.steps:
                break
            metrics = agent.update(collector.obs) if agent.num_timesteps >= plan.learning_starts else {}
            if not boundary(ended, metrics):
                break


def train(agent, total_steps: int, callback: Optional[Callback] = None, source: Optional[Source] = None):
    """Train `agent` for `total_steps` more env steps (over all envs); return the agent.

    Schedules see `agent.progress` = `num_timesteps / total_timesteps`, the target of this call.
    """
    total_steps = check_total_steps(total_steps, agent.num_timesteps)
    agent.total_timesteps = int(agent.num_timesteps) + int(total_steps)
    if total_steps:
        (source or LocalSource(agent)).run(agent.total_timesteps, Boundary(agent, callback))
    return agent
