"""Every config in configs/ trains, evaluates and saves through the `tlrl` command.

Each file runs as shipped, with only the overrides that make it quick: a few hundred env steps,
shorter rollouts, smaller batches and buffer, no more than 128 random steps before learning (a config
that starts learning sooner, such as the zoo's `learning_starts: 0`, keeps its value), one
evaluation episode. The list is the directory listing, so a new config is covered as it lands.
"""
import json
import os

import pytest
import yaml

from tlrl.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FILES = sorted(f for f in os.listdir(os.path.join(ROOT, "configs")) if f.endswith((".yaml", ".yml")))
#: Sweep files (`tlrl sweep`) are named sweep_*.yaml and checked by the sweep validator below; the rest are run configs.
SWEEPS = [f for f in FILES if f.startswith("sweep_")]
CONFIGS = [f for f in FILES if f not in SWEEPS]
TOTAL_STEPS = 256

#: hyperparameter -> the largest value the test keeps (smaller shipped values stay as they are).
CAPS = {"n_steps": 16, "learning_starts": 128, "buffer_size": 1_000, "batch_size": 64}


def quick_overrides(config: dict) -> list:
    """The --set arguments that shrink `config` to a run of a few seconds."""
    sets = [f"total_steps={TOTAL_STEPS}", "eval.episodes=1", "eval.eval_freq=0", "log.progress=false",
            f"checkpoint.every_steps={TOTAL_STEPS // 2}", f"log.interval={TOTAL_STEPS // 4}"]
    hyper = config.get("hyperparameters") or {}
    for name, cap in CAPS.items():
        if name in hyper and hyper[name] > cap:
            sets.append(f"hyperparameters.{name}={cap}")
    return [arg for item in sets for arg in ("--set", item)]


def test_the_configs_folder_has_configs():
    assert len(CONFIGS) >= 10, CONFIGS


@pytest.mark.parametrize("name", CONFIGS)
def test_shipped_config_trains_evaluates_and_saves(name, tmp_path, capsys):
    path = os.path.join(ROOT, "configs", name)
    with open(path) as fh:
        config = yaml.safe_load(fh)
    run = tmp_path / "run"
    code = main(["train", path, "--run-dir", str(run), *quick_overrides(config)])
    captured = capsys.readouterr()
    assert code == 0, captured.err[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["algo"] == config["algo"] and summary["total_steps"] == TOTAL_STEPS
    assert isinstance(summary["eval_return_mean"], float)
    assert os.listdir(run / "checkpoints"), "no checkpoint was saved"


@pytest.mark.parametrize("name", SWEEPS)
def test_shipped_sweep_file_is_valid(name):
    """The sweep validator loads its base config with its overrides and every value of its search space."""
    from tlrl.sweep import load_sweep

    spec = load_sweep(os.path.join(ROOT, "configs", name))
    assert spec.search_space and spec.budget.n_trials
