"""A3C on CartPole-v1 with 1 worker (synchronous n-step actor-critic), tlrl vs SB3's A2C.

The same settings as `a3c_cartpole` (see there), with `n_workers=1`: tlrl's run is then the
same algorithm as the SB3 A2C peer, on the same 8 envs.
"""
from benchmarks.a3c_cartpole import STEPS, TARGET, run_sb3  # noqa: F401 - the driver reads these names
from benchmarks.a3c_cartpole import run_tlrl as _run_tlrl

TITLE = "A3C CartPole-v1 (1 worker x 8 envs, 300k steps) vs SB3 A2C (8 envs)"


def run_tlrl(seed: int) -> dict:
    return _run_tlrl(seed, n_workers=1)
