"""DDPG on Pendulum-v1 with rl-baselines3-zoo's settings, tlrl vs Stable-Baselines3 and SBX.

Zoo (ddpg.yml / td3.yml, Pendulum-v1): 20k steps, learning_starts 10k, Gaussian action noise
of std 0.1 (in [-1, 1]-scaled action units in SB3; tlrl's `noise_sigma` is in the same units),
[400, 300] relu nets, batch 256, gamma 0.98, learning rate 1e-3, train_freq 1, gradient_steps 1,
buffer 200k, tau 0.005. One env. `wall` is network construction + training; evaluation is 20
deterministic episodes on a separate env.

Threads: SB3 runs with `torch.set_num_threads(1)`. With torch's default 2 threads on this shared
2-core machine, SB3 DDPG measured 178 ms CPU (439 ms wall) per env step after learning_starts,
against 12.5 ms CPU (27 ms wall) with 1 thread under the same load: 1 thread is SB3's fastest
setting here, so the comparison is the conservative one for tlrl. tlrl runs with TF's defaults.
SBX (JAX): see `benchmarks._common` for its thread setting.

SBX runs the same SETTINGS, noise and net_arch (actor and critic [400, 300] relu, Adam, one critic
for DDPG); its separate critic learning rate `qf_learning_rate` is set to the same `learning_rate`.
SBX's DDPG is its TD3 with policy_delay 1 and no target-policy noise, as SB3's.
"""
import time

from benchmarks._common import import_sbx, sb_result, scaled

#: See the module docstring.
SB3_TORCH_THREADS = 1

TITLE = "DDPG Pendulum-v1 (zoo settings, 20k steps, learning_starts 10k; SB3 with 1 torch thread)"
TARGET = "eval >= -200 per seed after 20k steps; wall time <= 0.6 x SB3's"
STEPS = scaled(20_000)
SETTINGS = dict(learning_rate=1e-3, buffer_size=200_000, learning_starts=scaled(10_000), batch_size=256, gamma=0.98,
                train_freq=1, gradient_steps=1, tau=0.005)
NOISE_STD = 0.1
NET_ARCH = [400, 300]


def run_tlrl(seed: int, algo: str = "DDPG") -> dict:
    import tlrl.algorithms

    cls = getattr(tlrl.algorithms, algo)
    t0 = time.perf_counter()
    agent = cls("Pendulum-v1", seed=seed, action_noise="normal", noise_sigma=NOISE_STD, net_arch=NET_ARCH, **SETTINGS)
    agent.learn(STEPS)
    wall = time.perf_counter() - t0
    mean, std = agent.evaluate(20, deterministic=True)
    return dict(eval_mean=mean, eval_std=std, steps=agent.num_timesteps, wall=wall)


def run_sb3(seed: int, algo: str = "DDPG") -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(SB3_TORCH_THREADS)
    import stable_baselines3
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.noise import NormalActionNoise

    cls = getattr(stable_baselines3, algo)
    t0 = time.perf_counter()
    env = make_vec_env("Pendulum-v1", n_envs=1, seed=seed)
    noise = NormalActionNoise(np.zeros(1), NOISE_STD * np.ones(1))
    model = cls("MlpPolicy", env, action_noise=noise, policy_kwargs=dict(net_arch=NET_ARCH), seed=seed, device="cpu",
                **SETTINGS)
    model.learn(STEPS)
    return sb_result(model, "Pendulum-v1", seed, time.perf_counter() - t0)


def run_sbx(seed: int, algo: str = "DDPG") -> dict:
    sbx = import_sbx()
    import numpy as np
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.noise import NormalActionNoise

    cls = getattr(sbx, algo)
    t0 = time.perf_counter()
    env = make_vec_env("Pendulum-v1", n_envs=1, seed=seed)
    noise = NormalActionNoise(np.zeros(1), NOISE_STD * np.ones(1))
    model = cls("MlpPolicy", env, action_noise=noise, policy_kwargs=dict(net_arch=NET_ARCH), seed=seed,
                qf_learning_rate=SETTINGS["learning_rate"], **SETTINGS)
    model.learn(STEPS)
    return sb_result(model, "Pendulum-v1", seed, time.perf_counter() - t0)
