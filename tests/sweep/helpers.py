"""Shared by the sweep tests: a tiny base config, sweep files, the study's trials, `tlrl` in a process."""
import os
import subprocess
import sys
import textwrap
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: PPO on CartPole small enough that a run of 1024 steps takes about a second once TF is loaded.
BASE = """\
algo: ppo
env: {id: CartPole-v1}
hyperparameters: {n_envs: 2, n_steps: 64, batch_size: 64, n_epochs: 2, net_arch: [16, 16], jit_compile: false}
total_steps: 1024
seed: 0
eval: {episodes: 2, deterministic: true, eval_freq: 0}
checkpoint: {every_steps: 1024, keep: 1}
log: {interval: 512, tensorboard: false, progress: false}
"""


def write_sweep(folder, body: str, base: str = BASE, name: str = "sweep.yaml") -> str:
    """Write base.yaml and a sweep file `name` (`body` after `base: base.yaml`) into `folder`; its path."""
    (folder / "base.yaml").write_text(base)
    path = folder / name
    path.write_text("base: base.yaml\n" + textwrap.dedent(body))
    return str(path)


def study_trials(sweep_dir: str, storage=None):
    """The study's trials (Optuna FrozenTrials), read without writing anything; SweepError while the sweep has
    not made its study yet."""
    from tlrl.sweep import SweepError
    from tlrl.sweep.study import open_storage, optuna_module
    from tlrl.sweep.sweep_dir import read_info, storage_of

    optuna = optuna_module()
    store = open_storage(storage_of(sweep_dir, storage), read_only=True)
    try:
        return optuna.load_study(study_name=read_info(sweep_dir)["study"], storage=store).get_trials()
    except KeyError:  # the storage exists, the study not yet
        raise SweepError(f"no study in {sweep_dir}'s storage yet") from None
    finally:
        store.engine.dispose()


def states(trials) -> dict:
    out = {}
    for t in trials:
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def tlrl_process(log_path, *args: str) -> subprocess.Popen:
    """`python -m tlrl ARGS` in its own process, its output into `log_path`."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT}
    log = open(log_path, "w")
    return subprocess.Popen([sys.executable, "-m", "tlrl", *args], stdout=log, stderr=subprocess.STDOUT, env=env)


def wait_until(condition, *procs, every: float = 0.2) -> bool:
    """Poll `condition()` until it holds (True) or every process in `procs` has ended (False)."""
    while True:
        if condition():
            return True
        if procs and all(p.poll() is not None for p in procs):
            return bool(condition())
        time.sleep(every)
