"""PPO on tlrl/GoalGrid-v0 (5x5, random start and goal, Dict observation), tlrl only.

tlrl's own env: no SB3 run in this script (a Stable-Baselines3 reference measured by the env's
author solved it with PPO in about 30k steps, DQN about 20k). Settings, the cheapest that solved
every seed tried: 8 envs, 20k steps, n_steps 128, batch 256, 10 epochs, lr 1e-3, gamma 0.99,
gae_lambda 0.95, ent_coef 0.01, 64-64 tanh MLPs per Dict key (tlrl's default Dict torso),
`jit_compile=False` (the one-off XLA compile costs more than it saves on a run this short).

`wall` is agent construction + training; evaluation is 20 deterministic episodes on a separate env
(`agent.evaluate(20)`); an optimal policy scores about 0.98.
"""
from benchmarks._common import train_tlrl

TITLE = "PPO tlrl/GoalGrid-v0 (5x5, Dict obs, 20k steps, 8 envs; tlrl only)"
TARGET = "eval >= 0.95 (the env's reward_threshold; optimal about 0.98) per seed after 20k steps; tlrl only, no SB3 run"
ENV_ID = "tlrl/GoalGrid-v0"
STEPS = 20_480
SETTINGS = dict(n_envs=8, n_steps=128, batch_size=256, n_epochs=10, learning_rate=1e-3, gamma=0.99, gae_lambda=0.95,
                ent_coef=0.01, jit_compile=False)


def run_tlrl(seed: int) -> dict:
    return train_tlrl("PPO", ENV_ID, seed, STEPS, **SETTINGS)
