"""PPO on tlrl/GridWorld-v0 (5x5, fixed goal), tlrl only: tlrl's own env has no SB3 reference run here.

Settings chosen as the cheapest that solved every seed tried: 8 envs, 10k steps, n_steps 128,
batch 256, 10 epochs, lr 1e-3, gamma 0.99, gae_lambda 0.95, ent_coef 0.01, 64-64 tanh MLPs.
`jit_compile=False`: on runs this short the one-off XLA compile of the fused update (about 20 s on
the loaded 2-core machine) costs more than it saves (29 s vs 10 s wall for the same seed 0 run,
identical learning curve). A Stable-Baselines3 reference (measured by the env's author, not in
this script) solves it with DQN or PPO in about 10k steps.

`wall` is agent construction + training; evaluation is 20 deterministic episodes on a separate env
(`agent.evaluate(20)`). The env is deterministic, so every evaluation episode has the same return:
0.93 (the optimal 8-step path) or -1.0 (a loop until the 100-step time limit).
"""
from benchmarks._common import train_tlrl

TITLE = "PPO tlrl/GridWorld-v0 (5x5, 10k steps, 8 envs; tlrl only)"
TARGET = "eval >= 0.9 (the env's reward_threshold; optimal 0.93) per seed after 10k steps; tlrl only, no SB3 run"
ENV_ID = "tlrl/GridWorld-v0"
STEPS = 10_240
SETTINGS = dict(n_envs=8, n_steps=128, batch_size=256, n_epochs=10, learning_rate=1e-3, gamma=0.99, gae_lambda=0.95,
                ent_coef=0.01, jit_compile=False)


def run_tlrl(seed: int) -> dict:
    return train_tlrl("PPO", ENV_ID, seed, STEPS, **SETTINGS)
