"""What every benchmark task measures, written once: the tlrl side, the SB3/SBX evaluation, SBX's setup.

`train_tlrl` builds an agent, trains it and evaluates it the way every task module reports:
`wall` is agent construction + training; evaluation is 20 deterministic episodes on a separate
env (`agent.evaluate(20)`), so it is not on the clock. `sb_result` is the same row for a trained
Stable-Baselines3 or SBX model (SBX models are SB3 `BaseAlgorithm`s, so one protocol serves both).

SBX (JAX) threads: every SBX run sets `XLA_FLAGS` to `SBX_XLA_FLAGS` before JAX loads (overridable
with the environment variable of the same name, to compare settings). The default is XLA's own, what
an SBX user gets (as tlrl keeps TF's defaults): one CPU device, Eigen's intra-op pool over all cores.
SB3 gets 1 torch thread because torch's 2-thread pool spins and thrashed under load (10x slower); XLA's
pool did not: the same SBX runs took the same CPU time with the pool as with one thread (DDPG
Pendulum, 3k steps / 1.5k gradient steps: 30.0 s vs 30.5 s user; DQN CartPole, 5k steps: 12.6 vs
12.8 s), with identical results. Their wall times at load 5-9 on the 2 cores were noise (24-45 s vs
26-31 s; 7.4-8.9 vs 6.0-9.7 s): compare on a quiet machine by running with the environment variable
SBX_XLA_FLAGS set to `SBX_ONE_THREAD`'s value.
SBX uses torch only to wrap replay samples, so torch gets 1 thread as in the SB3 runs.
"""
import os
import sys
import time
import warnings

#: XLA flags of the SBX runs (see the module docstring). Empty = XLA's defaults.
SBX_XLA_FLAGS = ""
#: The single-threaded alternative, to compare: `SBX_XLA_FLAGS="<this>" python scripts/benchmark.py ...`.
SBX_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def scaled(n: int) -> int:
    """`n` times `TLRL_BENCH_SCALE` (set by `benchmark.py --steps-scale` for smoke runs), at least 1."""
    return max(1, round(n * float(os.environ.get("TLRL_BENCH_SCALE", "1"))))


def sbx_xla_flags() -> str:
    """The XLA flags an SBX run uses: `$SBX_XLA_FLAGS` if set, else `SBX_XLA_FLAGS`."""
    return os.environ.get("SBX_XLA_FLAGS", SBX_XLA_FLAGS)


def train_tlrl(algo: str, env_id: str, seed: int, steps: int, **hyperparameters) -> dict:
    """Train `tlrl.algorithms.<algo>` on `env_id` for `steps` env steps; the row of one seed."""
    import tlrl.algorithms

    t0 = time.perf_counter()
    agent = getattr(tlrl.algorithms, algo)(env_id, seed=seed, **hyperparameters)
    agent.learn(steps)
    wall = time.perf_counter() - t0
    mean, std = agent.evaluate(20, deterministic=True)
    return dict(eval_mean=mean, eval_std=std, steps=agent.num_timesteps, wall=wall)


def sb_result(model, env_id: str, seed: int, wall: float) -> dict:
    """The row of one trained SB3/SBX model: 20 deterministic episodes on a separate env (seed + 10000)."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    eval_env = make_vec_env(env_id, n_envs=1, seed=seed + 10_000)
    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=20, deterministic=True)
    return dict(eval_mean=float(mean), eval_std=float(std), steps=int(model.num_timesteps), wall=wall)


def import_sbx():
    """The `sbx` module, set up for one benchmark child: XLA flags and torch threads, then the import.

    Call it before anything imports JAX (the flags are read once, when JAX starts its CPU backend).
    tensorflow-probability 0.25 (tlrl's pin) predates jax 0.5, where `jax.interpreters.xla.pytype_aval_mappings`
    moved to `jax.core`; SBX imports tfp's JAX substrate, so the old name is pointed at the new table first.
    (sbx-rl asks for tfp-nightly instead, which would overwrite tlrl's tensorflow-probability in place;
    setup.cfg's `bench` extra explains how it is installed.)
    """
    if "jax" in sys.modules:
        raise RuntimeError("jax was imported before import_sbx(): its XLA flags would not apply; "
                           "call import_sbx() first in the SBX child")
    os.environ["XLA_FLAGS"] = sbx_xla_flags()
    import torch

    torch.set_num_threads(1)
    import jax.core
    import jax.interpreters.xla as xla

    if not hasattr(xla, "pytype_aval_mappings"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            xla.pytype_aval_mappings = jax.core.pytype_aval_mappings
    import sbx

    return sbx
