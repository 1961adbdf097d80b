"""DDPG on Pendulum-v1 with rl-baselines3-zoo's settings, tlrl vs Stable-Baselines3.

Zoo (ddpg.yml / td3.yml, Pendulum-v1): 20k steps, learning_starts 10k, Gaussian action noise
of std 0.1 (in [-1, 1]-scaled action units in SB3; tlrl's `noise_sigma` is in the same units),
[400, 300] relu nets, batch 256, gamma 0.98, learning rate 1e-3, train_freq 1, gradient_steps 1,
buffer 200k, tau 0.005. One env. `wall` is network construction + training; evaluation is 20
deterministic episodes on a separate env.

Threads: SB3 runs with `torch.set_num_threads(1)`. With torch's default 2 threads on this shared
2-core machine, SB3 DDPG measured 178 ms CPU (439 ms wall) per env step after learning_starts,
against 12.5 ms CPU (27 ms wall) with 1 thread under the same load: 1 thread is SB3's fastest
setting here, so the comparison is the conservative one for tlrl. tlrl runs with TF's defaults.
"""
import time

#: See the module docstring.
SB3_TORCH_THREADS = 1

TITLE = "DDPG Pendulum-v1 (zoo settings, 20k steps, learning_starts 10k; SB3 with 1 torch thread)"
TARGET = "eval >= -200 per seed after 20k steps; wall time <= 0.6 x SB3's"
STEPS = 20_000
SETTINGS = dict(learning_rate=1e-3, buffer_size=200_000, learning_starts=10_000, batch_size=256, gamma=0.98,
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
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.noise import NormalActionNoise

    cls = getattr(stable_baselines3, algo)
    t0 = time.perf_counter()
    env = make_vec_env("Pendulum-v1", n_envs=1, seed=seed)
    noise = NormalActionNoise(np.zeros(1), NOISE_STD * np.ones(1))
    model = cls("MlpPolicy", env, action_noise=noise, policy_kwargs=dict(net_arch=NET_ARCH), seed=seed, device="cpu",
                **SETTINGS)
    model.learn(STEPS)
    wall = time.perf_counter() - t0
    eval_env = make_vec_env("Pendulum-v1", n_envs=1, seed=seed + 10_000)
    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=20, deterministic=True)
    return dict(eval_mean=float(mean), eval_std=float(std), steps=int(model.num_timesteps), wall=wall)
