"""Trials that end early: pruned on a periodic evaluation, failed by a config that does not load (recorded, not
retried), interrupted by Ctrl-C (the study stays consistent and `--resume` finishes it without repeating any
complete trial)."""
import json
import os
import signal

from tlrl.cli import main
from tlrl.sweep import SweepError

from .helpers import BASE, states, study_trials, tlrl_process, wait_until, write_sweep


def test_the_pruner_stops_trials_at_a_periodic_evaluation(tmp_path, capsys):
    """A threshold no CartPole return reaches prunes every trial at its first evaluation (256 of 1024 steps)."""
    sweep = write_sweep(tmp_path, """\
        overrides: {eval.eval_freq: 256}
        search_space:
          learning_rate: {type: loguniform, low: 1.0e-4, high: 3.0e-3}
        budget: {n_trials: 2}
        sampler: {type: random, seed: 1}
        pruner: {type: threshold, lower: 1000}
        """)
    out = tmp_path / "sweep"
    assert main(["sweep", sweep, "--out", str(out)]) == 0
    trials = study_trials(str(out))
    assert states(trials) == {"PRUNED": 2}
    for t in trials:
        assert list(t.intermediate_values) == [256]
        run_dir = out / "trials" / f"{t.number:04d}" / "seed_0"
        assert not (run_dir / "summary.json").exists()
        last = open(run_dir / "evaluations.csv").read().splitlines()[-1]
        assert int(last.split(",")[0]) < 1024  # stopped early, at its first evaluation
    capsys.readouterr()
    assert main(["runs", str(out), "--json"]) == 0
    assert {r["status"] for r in json.loads(capsys.readouterr().out)} == {"pruned"}


def test_a_trial_whose_config_does_not_load_fails_with_its_error_and_is_not_retried(tmp_path):
    """Every combination of a grid; n_steps 8 with batch_size 32 breaks PPO's batch_size <= n_steps * n_envs (16)."""
    sweep = write_sweep(tmp_path, """\
        search_space:
          n_steps: {type: categorical, choices: [8, 16]}
          batch_size: {type: categorical, choices: [16, 32]}
        sampler: {type: grid, seed: 0}
        overrides: {total_steps: 256}
        """)
    out = tmp_path / "sweep"
    assert main(["sweep", sweep, "--out", str(out)]) == 0
    trials = study_trials(str(out))
    assert states(trials) == {"COMPLETE": 3, "FAIL": 1}, [(t.params, t.state.name) for t in trials]
    failed = next(t for t in trials if t.state.name == "FAIL")
    assert failed.params == {"n_steps": 8, "batch_size": 32}
    assert "batch_size (32) must not exceed the rollout size" in failed.user_attrs["error"]
    assert not any("failed_trial" in t.system_attrs for t in trials)  # not queued again
    error = out / "trials" / f"{failed.number:04d}" / "seed_0" / "error.txt"
    assert "batch_size (32)" in error.read_text()
    assert main(["sweep", "--resume", str(out)]) == 0  # nothing left: the grid has run, nothing is retried
    assert len(study_trials(str(out))) == 4


def test_ctrl_c_stops_cleanly_and_resume_finishes_without_repeating_complete_trials(tmp_path):
    sweep = write_sweep(tmp_path, """\
        overrides: {total_steps: 4096}
        search_space:
          learning_rate: {type: loguniform, low: 1.0e-4, high: 3.0e-3}
        budget: {n_trials: 3}
        sampler: {type: random, seed: 2}
        """, base=BASE.replace("every_steps: 1024", "every_steps: 512"))
    out = str(tmp_path / "sweep")
    proc = tlrl_process(tmp_path / "sweep.log", "sweep", sweep, "--out", out)

    def training_the_second_trial():
        try:
            trials = study_trials(out)
        except SweepError:  # the sweep has not made its study yet
            return False
        return len(trials) == 2 and trials[0].state.name == "COMPLETE" and os.path.isfile(
            os.path.join(out, "trials", "0001", "seed_0", "metrics.csv"))

    try:
        assert wait_until(training_the_second_trial, proc), open(tmp_path / "sweep.log").read()[-3000:]
        proc.send_signal(signal.SIGINT)
        assert proc.wait() == 130, open(tmp_path / "sweep.log").read()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    trials = study_trials(out)
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL"]
    assert trials[1].user_attrs["interrupted"] == "SIGINT"
    assert os.listdir(os.path.join(out, "trials", "0001", "seed_0", "checkpoints"))  # it saved where it stopped
    first = os.path.join(out, "trials", "0000", "seed_0", "summary.json")
    stamp = os.stat(first).st_mtime_ns

    assert main(["sweep", "--resume", out]) == 0
    trials = study_trials(out)
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert trials[0].params == study_trials(out)[0].params and os.stat(first).st_mtime_ns == stamp
    assert sorted(os.listdir(os.path.join(out, "trials"))) == ["0000", "0001", "0002", "0003"]
