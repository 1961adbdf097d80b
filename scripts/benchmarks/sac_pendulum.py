"""SAC on Pendulum-v1 with rl-baselines3-zoo's settings, tlrl vs Stable-Baselines3 and SBX.

Zoo (sac.yml, Pendulum-v1): 20k steps, learning rate 1e-3, everything else the SAC defaults, which
are the same in all three frameworks and written out here: buffer 1M, learning_starts 100, batch 256,
tau 0.005, gamma 0.99, train_freq 1, gradient_steps 1, ent_coef "auto" (from 1), target entropy
-dim(A), target update every gradient step, 256-256 relu actor and twin critics. One env. `wall` is
network construction + training; evaluation is 20 deterministic episodes on a separate env. SB3 runs
with 1 torch thread (see `ddpg_pendulum`); SBX (JAX) threads: see `benchmarks._common`.
"""
import time

from benchmarks._common import import_sbx, sb_result, scaled, train_tlrl

#: See the module docstring.
SB3_TORCH_THREADS = 1

TITLE = "SAC Pendulum-v1 (zoo settings, 20k steps; SB3 with 1 torch thread)"
TARGET = "eval >= -200 per seed after 20k steps (zoo: -157); wall time <= 0.5 x SB3's and below SBX's"
STEPS = scaled(20_000)
SETTINGS = dict(learning_rate=1e-3, buffer_size=1_000_000, learning_starts=scaled(100), batch_size=256, tau=0.005,
                gamma=0.99, train_freq=1, gradient_steps=1, ent_coef="auto", target_entropy="auto")
NET_ARCH = [256, 256]


def run_tlrl(seed: int) -> dict:
    return train_tlrl("SAC", "Pendulum-v1", seed, STEPS, net_arch=NET_ARCH, **SETTINGS)


def run_sb3(seed: int) -> dict:
    import torch

    torch.set_num_threads(SB3_TORCH_THREADS)
    from stable_baselines3 import SAC
    from stable_baselines3.common.env_util import make_vec_env

    t0 = time.perf_counter()
    env = make_vec_env("Pendulum-v1", n_envs=1, seed=seed)
    model = SAC("MlpPolicy", env, policy_kwargs=dict(net_arch=NET_ARCH), seed=seed, device="cpu", **SETTINGS)
    model.learn(STEPS)
    return sb_result(model, "Pendulum-v1", seed, time.perf_counter() - t0)


def run_sbx(seed: int) -> dict:
    sbx = import_sbx()
    from stable_baselines3.common.env_util import make_vec_env

    t0 = time.perf_counter()
    env = make_vec_env("Pendulum-v1", n_envs=1, seed=seed)
    model = sbx.SAC("MlpPolicy", env, policy_kwargs=dict(net_arch=NET_ARCH), seed=seed, **SETTINGS)
    model.learn(STEPS)
    return sb_result(model, "Pendulum-v1", seed, time.perf_counter() - t0)
