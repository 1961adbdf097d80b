"""PPO on CartPole-v1 with rl-baselines3-zoo's settings, tlrl vs Stable-Baselines3 and SBX.

Zoo (ppo.yml, CartPole-v1): 8 envs, 100k steps, n_steps 32, batch 256, gae_lambda 0.8,
gamma 0.98, n_epochs 20, ent_coef 0, learning_rate lin_1e-3, clip_range lin_0.2, 64-64 tanh
MLPs (separate actor and critic). `wall` is network construction + training; evaluation is
20 deterministic episodes on a separate env.

SBX runs the same settings with its MlpPolicy: separate 64-64 tanh actor and critic as SB3's, Adam
eps 1e-5 as SB3's, and `ortho_init=True`, SBX's nearest to SB3's default orthogonal initialization
(SBX applies it only to the actor's output layer, gain 0.01: the near-uniform initial policy).
SBX (JAX) threads: see `benchmarks._common`.
"""
import time

from benchmarks._common import import_sbx, sb_result, scaled, train_tlrl

#: SB3 runs with one torch thread: its fastest setting for these small networks here (with the default
#: 2 threads, torch's spinning workers made SB3 up to 30x slower when other processes share the 2 cores).
SB3_TORCH_THREADS = 1

TITLE = "PPO CartPole-v1 (zoo settings, 100k steps, 8 envs; SB3 with 1 torch thread)"
TARGET = "eval 500 after 100k steps per seed; wall time <= 0.5 x SB3's"
STEPS = scaled(100_000)
SETTINGS = dict(n_envs=8, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0)


def lin(start: float):
    """SB3's form of tlrl's `lin_<start>` schedule: `start` times the fraction of training left."""
    return lambda progress_remaining: progress_remaining * start


def run_tlrl(seed: int) -> dict:
    return train_tlrl("PPO", "CartPole-v1", seed, STEPS, learning_rate="lin_1e-3", clip_range="lin_0.2", **SETTINGS)


def run_sb3(seed: int) -> dict:
    import torch

    torch.set_num_threads(SB3_TORCH_THREADS)
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    settings = dict(SETTINGS)
    n_envs = settings.pop("n_envs")
    t0 = time.perf_counter()
    env = make_vec_env("CartPole-v1", n_envs=n_envs, seed=seed)
    model = PPO("MlpPolicy", env, learning_rate=lin(1e-3), clip_range=lin(0.2), seed=seed, device="cpu", **settings)
    model.learn(STEPS)
    return sb_result(model, "CartPole-v1", seed, time.perf_counter() - t0)


def run_sbx(seed: int) -> dict:
    sbx = import_sbx()
    from stable_baselines3.common.env_util import make_vec_env

    settings = dict(SETTINGS)
    n_envs = settings.pop("n_envs")
    t0 = time.perf_counter()
    env = make_vec_env("CartPole-v1", n_envs=n_envs, seed=seed)
    model = sbx.PPO("MlpPolicy", env, learning_rate=lin(1e-3), clip_range=lin(0.2), seed=seed,
                    policy_kwargs=dict(ortho_init=True), **settings)
    model.learn(STEPS)
    return sb_result(model, "CartPole-v1", seed, time.perf_counter() - t0)
