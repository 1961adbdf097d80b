"""A small sweep with two local worker processes on SQLite: its trials complete as ordinary run directories, and
the best one that `tlrl runs --best` names exports, evaluates, resumes and plots with the existing commands."""
import json
import os
import shutil

import pytest

from tlrl.cli import main

from .helpers import study_trials


def test_two_local_workers_complete_the_trials_as_run_directories(local_sweep):
    sweep_dir, summary = local_sweep
    trials = study_trials(sweep_dir)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3, [(t.number, t.state, t.user_attrs) for t in trials]
    assert summary["trials"] == {"complete": 3}
    workers = {t.user_attrs["worker"] for t in trials}
    assert 1 <= len(workers) <= 2 and not any(w.endswith(f":{os.getpid()}") for w in workers), workers
    for t in trials:
        seeds = t.user_attrs["seeds"]
        assert sorted(seeds) == ["0", "1"]
        values = [seeds[s]["eval_return_mean"] for s in ("0", "1")]
        assert t.value == pytest.approx(sum(values) / 2)  # objective: the mean final evaluation
        for seed in (0, 1):
            run_dir = os.path.join(sweep_dir, "trials", f"{t.number:04d}", f"seed_{seed}")
            result = json.load(open(os.path.join(run_dir, "summary.json")))
            assert result["seed"] == seed and result["num_timesteps"] == 1024
            assert result["eval_return_mean"] == seeds[str(seed)]["eval_return_mean"]
            config = open(os.path.join(run_dir, "config.yaml")).read()
            assert f"n_epochs: {t.params['n_epochs']}" in config  # the trial's values are its config
    best = max(trials, key=lambda t: t.value)
    assert summary["best"]["trial"] == best.number and summary["best"]["params"]["net_arch"] in ([16], [16, 16])


def test_the_best_run_directory_exports_evaluates_and_resumes(local_sweep, tmp_path, capsys):
    sweep_dir, summary = local_sweep
    assert main(["runs", sweep_dir, "--best"]) == 0
    best = capsys.readouterr().out.strip()
    assert os.path.samefile(best, summary["best"]["run_dir"])
    assert main(["export", best, "--out", str(tmp_path / "model")]) == 0
    assert os.path.isfile(tmp_path / "model" / "saved_model.pb")
    capsys.readouterr()
    assert main(["eval", best, "--episodes", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["num_timesteps"] == 1024
    copy = tmp_path / "run"  # a copy, so the sweep's own run stays as the study recorded it
    shutil.copytree(best, copy)
    assert main(["train", "--resume", str(copy), "--set", "total_steps=1536", "--no-progress"]) == 0
    assert json.load(open(copy / "summary.json"))["num_timesteps"] == 1536


def test_plot_draws_the_objective_and_each_swept_key(local_sweep, tmp_path, capsys):
    sweep_dir, _ = local_sweep
    assert main(["plot", sweep_dir, "--out", str(tmp_path / "plots")]) == 0
    written = sorted(os.path.basename(p) for p in capsys.readouterr().out.split())
    assert written == ["objective.png", "param_learning_rate.png", "param_n_epochs.png", "param_net_arch.png"]
    assert all(os.path.getsize(tmp_path / "plots" / name) > 1000 for name in written)


def test_the_worst_seed_of_the_best_evaluations_is_the_objective(tmp_path):
    """objective {metric: best, aggregate: worst}: each seed's best evaluation (periodic or final), the lowest."""
    from tlrl.sweep.spec import load_sweep

    from .helpers import write_sweep

    sweep = write_sweep(tmp_path, """\
        overrides: {eval.eval_freq: 256, total_steps: 512}
        search_space:
          n_epochs: {type: int, low: 1, high: 3}
        seeds: [0, 1]
        objective: {metric: best, aggregate: worst}
        budget: {n_trials: 1}
        pruner: {type: none}
        """)
    assert load_sweep(sweep).objective.aggregate == "worst"
    out = tmp_path / "sweep"
    assert main(["sweep", sweep, "--out", str(out)]) == 0
    (trial,) = study_trials(str(out))
    best = []
    for seed in (0, 1):
        run_dir = out / "trials" / "0000" / f"seed_{seed}"
        periodic = [float(line.split(",")[1]) for line in open(run_dir / "evaluations.csv").read().splitlines()[1:]]
        final = json.load(open(run_dir / "summary.json"))["eval_return_mean"]
        assert len(periodic) == 2
        best.append(max(periodic + [final]))
        assert trial.user_attrs["seeds"][str(seed)]["score"] == best[-1]
    assert trial.value == min(best)
    assert sorted(trial.intermediate_values) == [256, 512, 512 + 256, 512 + 512]  # seed i's at i * total_steps + n


def test_the_docstring_examples_of_the_sweep_modules_run():
    import doctest
    import importlib

    for name in ("tlrl.sweep.space", "tlrl.sweep.spec", "tlrl.runs_table"):
        result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, name
