"""Learning test on one of tlrl's own envs: the shipped config `configs/ppo_gridworld.yaml` (the same
settings as `scripts/benchmarks/ppo_gridworld.py`) solves tlrl/GridWorld-v0 with a fixed seed.

About 10 s of training on the 2-core machine (the config turns XLA off: its compile would cost more
than this short run)."""
import os

from tlrl.algorithms import PPO
from tlrl.config import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_ppo_gridworld_config_reaches_the_reward_threshold():
    config = load_config(os.path.join(ROOT, "configs", "ppo_gridworld.yaml"))
    agent = PPO(config.env.id, seed=0, **config.hyperparameters)
    agent.learn(config.total_steps)
    mean, _ = agent.evaluate(20)
    assert mean >= 0.9, mean  # tlrl/GridWorld-v0's reward_threshold; the optimal return is 0.93
