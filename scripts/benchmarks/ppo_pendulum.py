"""PPO on Pendulum-v1, tlrl vs Stable-Baselines3 with the same settings.

rl-baselines3-zoo's Pendulum-v1 PPO (4 envs, n_steps 1024, gae_lambda 0.95, gamma 0.9,
n_epochs 10, ent_coef 0, learning_rate 1e-3, clip_range 0.2) uses gSDE, which tlrl does not
have; here both frameworks run it with a plain Gaussian policy (use_sde=False) and the other
settings below. `wall` is network construction + training; evaluation is 20 deterministic
episodes on a separate env.
"""
import time

from benchmarks._common import train_tlrl

#: SB3 runs with one torch thread: its fastest setting for these small networks here (with the default
#: 2 threads, torch's spinning workers made SB3 up to 30x slower when other processes share the 2 cores).
SB3_TORCH_THREADS = 1

TITLE = "PPO Pendulum-v1 (zoo settings without gSDE, 200k steps, 4 envs; SB3 with 1 torch thread)"
TARGET = "eval >= -250 within 200k steps"
STEPS = 200_000
SETTINGS = dict(n_envs=4, n_steps=1024, batch_size=64, gae_lambda=0.95, gamma=0.9, n_epochs=10, ent_coef=0.0,
                learning_rate=1e-3, clip_range=0.2)


def run_tlrl(seed: int) -> dict:
    return train_tlrl("PPO", "Pendulum-v1", seed, STEPS, **SETTINGS)


def run_sb3(seed: int) -> dict:
    import torch

    torch.set_num_threads(SB3_TORCH_THREADS)
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    settings = dict(SETTINGS)
    n_envs = settings.pop("n_envs")
    t0 = time.perf_counter()
    env = make_vec_env("Pendulum-v1", n_envs=n_envs, seed=seed)
    model = PPO("MlpPolicy", env, seed=seed, device="cpu", use_sde=False, **settings)
    model.learn(STEPS)
    wall = time.perf_counter() - t0
    eval_env = make_vec_env("Pendulum-v1", n_envs=1, seed=seed + 10_000)
    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=20, deterministic=True)
    return dict(eval_mean=float(mean), eval_std=float(std), steps=int(model.num_timesteps), wall=wall)
