"""PPO on tlrl/Catch-v0 (10x10x1 uint8 image observation), tlrl only.

Catch found a bug, fixed since in `tlrl.modules.torsos.small_cnn`: its second conv (3x3, stride 2)
was VALID-padded and never read the last row and column of a 10x10 input, where the paddle lives,
so the agent could not see it. Measured (2026-11-26, loaded 2-core machine), 20 deterministic
episodes: with the VALID conv, seed 0 evaluated 0.1 after 30k steps and 60k steps gave 1.0, 0.6, 0.6
(an open-loop policy, unstable); with SAME padding (shipped, with a regression test) these
settings reach 1.0 after 20k steps on seeds 0, 1 and 2.

tlrl's own env: no SB3 run in this script (a Stable-Baselines3 reference measured by the env's
author solved it with DQN in 10-20k steps and with PPO in 20-30k steps at lr 1e-3, 10 epochs,
gamma 0.95; PPO with lr 3e-4 and 4 epochs failed). Settings: 8 envs, 20k steps, n_steps 128,
batch 64, 10 epochs, lr 1e-3, gamma 0.95, gae_lambda 0.95, no entropy bonus, tlrl's default image
torso (`small_cnn`, shared by actor and critic), `jit_compile=False` (the one-off XLA compile costs
more than it saves on a run this short).

`wall` is agent construction + training; evaluation is 20 deterministic episodes on a separate env
(`agent.evaluate(20)`).
"""
from benchmarks._common import train_tlrl

TITLE = "PPO tlrl/Catch-v0 (10x10 pixels, 20k steps, 8 envs; tlrl only)"
TARGET = "eval >= 0.9 (the env's reward_threshold; optimal 1.0) per seed after 20k steps; tlrl only, no SB3 run"
ENV_ID = "tlrl/Catch-v0"
STEPS = 20_480
SETTINGS = dict(n_envs=8, n_steps=128, batch_size=64, n_epochs=10, learning_rate=1e-3, gamma=0.95, gae_lambda=0.95,
                ent_coef=0.0, jit_compile=False)


def run_tlrl(seed: int) -> dict:
    return train_tlrl("PPO", ENV_ID, seed, STEPS, **SETTINGS)
