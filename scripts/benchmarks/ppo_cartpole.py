"""PPO on CartPole-v1 with rl-baselines3-zoo's settings, tlrl vs Stable-Baselines3.

Zoo (ppo.yml, CartPole-v1): 8 envs, 100k steps, n_steps 32, batch 256, gae_lambda 0.8,
gamma 0.98, n_epochs 20, ent_coef 0, learning_rate lin_1e-3, clip_range lin_0.2, 64-64 tanh
MLPs (separate actor and critic). `wall` is network construction + training; evaluation is
20 deterministic episodes on a separate env.
"""
import time

from benchmarks._common import train_tlrl

#: SB3 runs with one torch thread: its fastest setting for these small networks here (with the default
#: 2 threads, torch's spinning workers made SB3 up to 30x slower when other processes share the 2 cores).
SB3_TORCH_THREADS = 1

TITLE = "PPO CartPole-v1 (zoo settings, 100k steps, 8 envs; SB3 with 1 torch thread)"
TARGET = "eval 500 after 100k steps per seed; wall time <= 0.5 x SB3's"
STEPS = 100_000
SETTINGS = dict(n_envs=8, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0)


def run_tlrl(seed: int) -> dict:
    return train_tlrl("PPO", "CartPole-v1", seed, STEPS, learning_rate="lin_1e-3", clip_range="lin_0.2", **SETTINGS)


def run_sb3(seed: int) -> dict:
    import torch

    torch.set_num_threads(SB3_TORCH_THREADS)
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    def lin(start):
        return lambda progress_remaining: progress_remaining * start

    settings = dict(SETTINGS)
    n_envs = settings.pop("n_envs")
    t0 = time.perf_counter()
    env = make_vec_env("CartPole-v1", n_envs=n_envs, seed=seed)
    model = PPO("MlpPolicy", env, learning_rate=lin(1e-3), clip_range=lin(0.2), seed=seed, device="cpu", **settings)
    model.learn(STEPS)
    wall = time.perf_counter() - t0
    eval_env = make_vec_env("CartPole-v1", n_envs=1, seed=seed + 10_000)
    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=20, deterministic=True)
    return dict(eval_mean=float(mean), eval_std=float(std), steps=int(model.num_timesteps), wall=wall)
