"""Shared helpers of the CLI tests: tiny configs that train in a second or two."""
import os
import textwrap

import pytest

#: algo -> (env, hyperparameters) small enough for CI; same shapes as the contract tests.
TINY = {
    "ppo": ("CartPole-v1", "{n_envs: 2, n_steps: 16, batch_size: 16, n_epochs: 2, net_arch: [16, 16], jit_compile: false}"),
    "dqn": ("CartPole-v1", "{learning_starts: 32, buffer_size: 500, batch_size: 16, train_freq: 4, gradient_steps: 2, "
                           "net_arch: [16, 16], target_update_interval: 40, exploration_fraction: 0.5}"),
    "ddpg": ("Pendulum-v1", "{learning_starts: 32, buffer_size: 500, batch_size: 16, net_arch: [16, 16], jit_compile: false}"),
    "td3": ("Pendulum-v1", "{learning_starts: 32, buffer_size: 500, batch_size: 16, net_arch: [16, 16], jit_compile: false}"),
    "sac": ("Pendulum-v1", "{learning_starts: 32, buffer_size: 500, batch_size: 16, net_arch: [16, 16], jit_compile: false}"),
    "a3c": ("CartPole-v1", "{n_workers: 1, n_steps: 8, net_arch: [16, 16]}"),
}


def tiny_config(algo="ppo", total_steps=256, every=64, interval=32, extra="", seed=0, tensorboard=False):
    env, hyper = TINY[algo]
    return textwrap.dedent(f"""\
        algo: {algo}
        env:
          id: {env}
        hyperparameters: {hyper}
        total_steps: {total_steps}
        seed: {seed}
        eval: {{episodes: 2, deterministic: true}}
        checkpoint: {{every_steps: {every}, keep: 100}}
        log: {{interval: {interval}, tensorboard: {str(tensorboard).lower()}, progress: false}}
        """) + extra


def train_tiny_run(tmp_path_factory, algo: str = "ppo", *args: str, **config) -> str:
    """Train `tiny_config(algo, **config)` through `tlrl train` into a fresh folder; the run directory.

    `args` are extra command-line arguments (e.g. "--set", "n_epochs=3")."""
    from tlrl.cli import main

    folder = tmp_path_factory.mktemp(algo)
    (folder / "config.yaml").write_text(tiny_config(algo, **config))
    run_dir = folder / "run"
    assert main(["train", str(folder / "config.yaml"), "--run-dir", str(run_dir), "--no-progress", *args]) == 0
    return run_dir


@pytest.fixture
def write_config(tmp_path):
    def write(text, name="config.yaml"):
        path = os.path.join(tmp_path, name)
        with open(path, "w") as fh:
            fh.write(text)
        return path
    return write


def require_algorithm(algo):
    """Skip when an algorithm of the registry has not landed yet (its module is missing)."""
    from tlrl.algorithms import get_algorithm

    try:
        get_algorithm(algo)
    except ImportError as exc:
        pytest.skip(f"{algo} is not importable yet: {exc}")
