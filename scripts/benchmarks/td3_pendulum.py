"""TD3 on Pendulum-v1 with rl-baselines3-zoo's settings, tlrl vs Stable-Baselines3 and SBX.

The same settings as `ddpg_pendulum` (zoo's td3.yml equals ddpg.yml for Pendulum-v1), plus TD3's
defaults in all three frameworks (tlrl, SB3, SBX): 2 critics, policy_delay 2, target_policy_noise 0.2,
target_noise_clip 0.5.
"""
from benchmarks.ddpg_pendulum import STEPS, TARGET  # noqa: F401 - the driver reads these names
from benchmarks.ddpg_pendulum import run_sb3 as _run_sb3
from benchmarks.ddpg_pendulum import run_sbx as _run_sbx
from benchmarks.ddpg_pendulum import run_tlrl as _run_tlrl

TITLE = "TD3 Pendulum-v1 (zoo settings, 20k steps, learning_starts 10k; SB3 with 1 torch thread)"


def run_tlrl(seed: int) -> dict:
    return _run_tlrl(seed, algo="TD3")


def run_sb3(seed: int) -> dict:
    return _run_sb3(seed, algo="TD3")


def run_sbx(seed: int) -> dict:
    return _run_sbx(seed, algo="TD3")
