"""`tlrl runs` lists real run directories and sweep trials (table, --json, --sort, --filter, --best), reading only."""
import json
import os

import pytest

from tlrl.cli import main

from .helpers import BASE, study_trials


@pytest.fixture(scope="module")
def runs_folder(tmp_path_factory):
    """runs/ with one finished run (`tlrl train`) and one that failed to start (error.txt only)."""
    folder = tmp_path_factory.mktemp("runs")
    (folder / "config.yaml").write_text(BASE)
    assert main(["train", str(folder / "config.yaml"), "--run-dir", str(folder / "runs" / "plain"),
                 "--no-progress"]) == 0
    assert main(["train", str(folder / "config.yaml"), "--run-dir", str(folder / "runs" / "broken"),
                 "--set", "lerning_rate=1"]) == 2
    return folder / "runs"


def _snapshot(*folders):
    """Every file under `folders` with its size and modification time."""
    out = {}
    for folder in folders:
        for dirpath, _, files in os.walk(folder):
            for name in files:
                stat = os.stat(os.path.join(dirpath, name))
                out[os.path.join(dirpath, name)] = (stat.st_size, stat.st_mtime_ns)
    return out


def test_runs_lists_runs_and_trials_and_changes_nothing(local_sweep, runs_folder, capsys):
    sweep_dir, summary = local_sweep
    before = _snapshot(sweep_dir, runs_folder)
    assert main(["runs", str(runs_folder), sweep_dir, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert main(["runs", str(runs_folder), sweep_dir]) == 0
    table = capsys.readouterr().out.splitlines()
    assert _snapshot(sweep_dir, runs_folder) == before, "tlrl runs wrote something"
    assert len(rows) == 2 + 3 * 2 and len(table) == 1 + len(rows)
    header = table[0].split()
    for column in ("run_dir", "algo", "env", "seed", "steps", "eval", "wall", "status", "trial", "objective",
                   "learning_rate", "n_epochs", "net_arch"):
        assert column in header, header
    by_dir = {os.path.basename(r["run_dir"]): r for r in rows if r["trial"] is None}
    plain = json.load(open(runs_folder / "plain" / "summary.json"))
    assert by_dir["plain"]["status"] == "complete" and by_dir["plain"]["eval_mean"] == plain["eval_return_mean"]
    assert by_dir["plain"]["algo"] == "ppo" and by_dir["plain"]["env"] == "CartPole-v1"
    assert by_dir["broken"]["status"] == "failed"
    trials = {t.number: t for t in study_trials(sweep_dir)}
    for row in (r for r in rows if r["trial"] is not None):
        trial = trials[row["trial"]]
        assert row["status"] == "complete" and row["objective"] == trial.value
        assert row["params"]["n_epochs"] == trial.params["n_epochs"]
        assert row["steps"] == 1024 and row["wall"] > 0
    line = next(text for text in table if "plain" in text)
    assert f"{plain['eval_return_mean']:.1f} ± {plain['eval_return_std']:.1f}" in line


def test_runs_sorts_filters_and_names_the_best(local_sweep, runs_folder, capsys):
    sweep_dir, summary = local_sweep
    assert main(["runs", str(runs_folder), sweep_dir, "--sort", "eval", "--reverse", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    evals = [r["eval_mean"] for r in rows if r["eval_mean"] is not None]
    assert evals == sorted(evals, reverse=True) and rows[-1]["eval_mean"] is None  # no value: last
    assert main(["runs", sweep_dir, "--filter", "seed=1", "--filter", "status=complete", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 3 and {r["seed"] for r in rows} == {1}
    net = summary["best"]["params"]["net_arch"]
    assert main(["runs", sweep_dir, "--filter", f"net_arch={json.dumps(net)}", "--json"]) == 0
    assert all(r["params"]["net_arch"] == net for r in json.loads(capsys.readouterr().out))
    assert main(["runs", str(runs_folder), sweep_dir, "--best"]) == 0
    assert os.path.samefile(capsys.readouterr().out.strip(), summary["best"]["run_dir"])  # the best trial's best seed
    assert main(["runs", str(runs_folder), "--best"]) == 0
    assert capsys.readouterr().out.strip().endswith("plain")


def test_runs_refuses_unknown_keys_and_missing_folders(runs_folder, tmp_path, capsys):
    assert main(["runs", str(runs_folder), "--sort", "evl"]) == 2
    assert "--sort 'evl' is not a column" in capsys.readouterr().err
    assert main(["runs", str(runs_folder), "--filter", "algo"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err
    assert main(["runs", str(tmp_path / "nowhere")]) == 2
    assert "is not a directory" in capsys.readouterr().err
