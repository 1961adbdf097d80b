"""SAC on LunarLanderContinuous-v3 with rl-baselines3-zoo's settings, tlrl vs Stable-Baselines3 and SBX.

Zoo (sac.yml, LunarLanderContinuous): 500k steps, learning rate linear from 7.3e-4 to 0 ("lin_7.3e-4";
SB3 and SBX take it as a function of the progress remaining), buffer 1M, learning_starts 10k, batch 256,
tau 0.01, gamma 0.99, train_freq 1, gradient_steps 1, ent_coef "auto", 400-300 relu networks. One env.
Needs Box2D (`pip install -e ".[box2d]"`). A long run (hours on 2 cores): for a shorter one, shrink the
budget with `benchmark.py --steps-scale` (step count and learning_starts; not written to BENCHMARKS.md).
`wall` is network construction + training; evaluation is 20 deterministic episodes on a separate env.
SB3 runs with 1 torch thread (see `ddpg_pendulum`); SBX (JAX) threads: see `benchmarks._common`.
"""
import time

from benchmarks._common import import_sbx, sb_result, scaled, train_tlrl

#: See the module docstring.
SB3_TORCH_THREADS = 1

ENV = "LunarLanderContinuous-v3"
TITLE = "SAC LunarLanderContinuous-v3 (zoo settings, 500k steps; SB3 with 1 torch thread)"
TARGET = "eval >= 200 after 500k steps (solved); report wall time against SB3 and SBX"
STEPS = scaled(500_000)
LEARNING_RATE = 7.3e-4
SETTINGS = dict(buffer_size=1_000_000, learning_starts=scaled(10_000), batch_size=256, tau=0.01, gamma=0.99,
                train_freq=1, gradient_steps=1, ent_coef="auto")
NET_ARCH = [400, 300]


def lin(start: float):
    """SB3's form of tlrl's `lin_<start>` schedule: `start` times the fraction of training left."""
    return lambda progress_remaining: progress_remaining * start


def run_tlrl(seed: int) -> dict:
    return train_tlrl("SAC", ENV, seed, STEPS, learning_rate=f"lin_{LEARNING_RATE}", net_arch=NET_ARCH, **SETTINGS)


def run_sb3(seed: int) -> dict:
    import torch

    torch.set_num_threads(SB3_TORCH_THREADS)
    from stable_baselines3 import SAC
    from stable_baselines3.common.env_util import make_vec_env

    t0 = time.perf_counter()
    env = make_vec_env(ENV, n_envs=1, seed=seed)
    model = SAC("MlpPolicy", env, learning_rate=lin(LEARNING_RATE), policy_kwargs=dict(net_arch=NET_ARCH), seed=seed,
                device="cpu", **SETTINGS)
    model.learn(STEPS)
    return sb_result(model, ENV, seed, time.perf_counter() - t0)


def run_sbx(seed: int) -> dict:
    sbx = import_sbx()
    from stable_baselines3.common.env_util import make_vec_env

    t0 = time.perf_counter()
    env = make_vec_env(ENV, n_envs=1, seed=seed)
    model = sbx.SAC("MlpPolicy", env, learning_rate=lin(LEARNING_RATE), policy_kwargs=dict(net_arch=NET_ARCH),
                    seed=seed, **SETTINGS)
    model.learn(STEPS)
    return sb_result(model, ENV, seed, time.perf_counter() - t0)
