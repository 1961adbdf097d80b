"""PPO on Pendulum-v1, tlrl vs Stable-Baselines3 and SBX with the same settings.

rl-baselines3-zoo's Pendulum-v1 PPO (4 envs, n_steps 1024, gae_lambda 0.95, gamma 0.9,
n_epochs 10, ent_coef 0, learning_rate 1e-3, clip_range 0.2) uses gSDE, which tlrl does not
have; here all three run it with a plain Gaussian policy (use_sde=False) and the other
settings below. `wall` is network construction + training; evaluation is 20 deterministic
episodes on a separate env.

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

TITLE = "PPO Pendulum-v1 (zoo settings without gSDE, 200k steps, 4 envs; SB3 with 1 torch thread)"
TARGET = "eval >= -250 within 200k steps"
STEPS = scaled(200_000)
SETTINGS = dict(n_envs=4, n_steps=1024, batch_size=64, gae_lambda=0.95, gamma=0.9, n_epochs=10, ent_coef=0.0,
                learning_rate=1e-3, clip_range=0.2)


def run_tlrl(seed: int) -> dict:
    return train_tlrl("PPO", "Pendulum-v1", seed, STEPS, **SETTINGS)


def run_sb3(seed: int) -> dict:
    import torch

    torch.set_num_threads(SB3_TORCH_THREADS)
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    settings = dict(SETTINGS)
    n_envs = settings.pop("n_envs")
    t0 = time.perf_counter()
    env = make_vec_env("Pendulum-v1", n_envs=n_envs, seed=seed)
    model = PPO("MlpPolicy", env, seed=seed, device="cpu", use_sde=False, **settings)
    model.learn(STEPS)
    return sb_result(model, "Pendulum-v1", seed, time.perf_counter() - t0)


def run_sbx(seed: int) -> dict:
    sbx = import_sbx()
    from stable_baselines3.common.env_util import make_vec_env

    settings = dict(SETTINGS)
    n_envs = settings.pop("n_envs")
    t0 = time.perf_counter()
    env = make_vec_env("Pendulum-v1", n_envs=n_envs, seed=seed)
    model = sbx.PPO("MlpPolicy", env, seed=seed, use_sde=False, policy_kwargs=dict(ortho_init=True), **settings)
    model.learn(STEPS)
    return sb_result(model, "Pendulum-v1", seed, time.perf_counter() - t0)
