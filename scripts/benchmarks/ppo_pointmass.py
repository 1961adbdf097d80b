"""PPO on tlrl/PointMass-v0 (shaped reward: minus the distance to the goal each step), tlrl only.

tlrl's own env: no SB3 run in this script (a Stable-Baselines3 reference measured by the env's
author solved it with PPO in about 50k steps, TD3/DDPG about 20k). PPO is the cheaper choice in
tlrl on this machine: TD3 (20k steps, train_freq 10, gradient_steps 10, 64-64 nets, XLA on) reached a
similar eval (-4.3) for seed 0 but took 339 s of wall time against 47 s for PPO with 49k steps
(same load; these settings with 40k steps: 18-37 s).
Settings: 8 envs, 40k steps, n_steps 128, batch 256, 10 epochs, lr 1e-3, gamma 0.99,
gae_lambda 0.95, no entropy bonus, 64-64 tanh MLPs, Gaussian policy (log_std_init 0),
`jit_compile=False` (the one-off XLA compile costs more than it saves on a run this short).

`wall` is agent construction + training; evaluation is 20 deterministic episodes on a separate env
(`agent.evaluate(20)`).
"""
from benchmarks._common import train_tlrl

TITLE = "PPO tlrl/PointMass-v0 (shaped reward, 40k steps, 8 envs; tlrl only)"
TARGET = "eval >= -8 (the env's reward_threshold) per seed after 40k steps; tlrl only, no SB3 run"
ENV_ID = "tlrl/PointMass-v0"
STEPS = 40_960
SETTINGS = dict(n_envs=8, n_steps=128, batch_size=256, n_epochs=10, learning_rate=1e-3, gamma=0.99, gae_lambda=0.95,
                jit_compile=False)


def run_tlrl(seed: int) -> dict:
    return train_tlrl("PPO", ENV_ID, seed, STEPS, **SETTINGS)
