"""What a new user meets first: resuming as the README says, reusing a directory whose start failed,
a quiet terminal, a fast `tlrl envs`, and the small things `--help`, `tlrl envs` and metrics.csv say."""
import csv
import json
import os
import subprocess
import sys

import yaml

from .conftest import tiny_config
from tlrl.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _env(**extra):
    """A user's environment: no TF_CPP_MIN_LOG_LEVEL, tlrl importable from this checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TLRL_QUIET_TF")}
    return {**env, "PYTHONPATH": ROOT, **extra}


def _tlrl(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tlrl", *args], capture_output=True, text=True, env=_env(),
                          cwd=cwd, timeout=600)


# ----- resume -------------------------------------------------------------------------------------------------
def test_resume_with_the_runs_own_config_file_keeps_its_seed_and_set_values(tmp_path, write_config, capsys):
    config = write_config(tiny_config("dqn", total_steps=96, every=48, interval=48))
    run_dir = str(tmp_path / "run")
    assert main(["train", config, "--seed", "1", "--set", "learning_rate=1e-3", "--run-dir", run_dir,
                 "--no-progress"]) == 0
    assert main(["train", config, "--resume", run_dir, "--set", "total_steps=144", "--no-progress"]) == 0
    saved = yaml.safe_load(open(os.path.join(run_dir, "config.yaml")))
    assert (saved["seed"], saved["hyperparameters"]["learning_rate"], saved["total_steps"]) == (1, 1e-3, 144)
    assert json.load(open(os.path.join(run_dir, "summary.json")))["num_timesteps"] == 144
    # the longer total_steps is kept too: the same command again has nothing left to do
    assert main(["train", config, "--resume", run_dir, "--no-progress"]) == 0
    assert json.load(open(os.path.join(run_dir, "summary.json")))["num_timesteps"] == 144


def test_resume_with_a_changed_config_names_each_key_with_both_values_and_the_fix(tmp_path, write_config, capsys):
    config = write_config(tiny_config("dqn", total_steps=48, every=48, interval=48))
    run_dir = str(tmp_path / "run")
    assert main(["train", config, "--seed", "1", "--run-dir", run_dir, "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["train", config, "--resume", run_dir, "--seed", "2", "--set", "gamma=0.5"]) == 2
    err = capsys.readouterr().err
    assert "hyperparameters.gamma differs (the run has the default, now 0.5)" in err
    assert "seed differs (the run has 1, now 2)" in err
    assert "leave out CONFIG, --seed and --set" in err and f"tlrl train --resume {run_dir}" in err
    assert "Traceback" not in err


def test_resume_of_a_missing_directory_says_it_does_not_exist(tmp_path, capsys):
    missing = str(tmp_path / "nope")
    assert main(["train", "--resume", missing]) == 2
    assert f"cannot resume {missing}: the directory does not exist" in capsys.readouterr().err
    assert not os.path.exists(missing)


def test_a_directory_that_holds_only_a_failed_start_can_be_used_again(tmp_path, write_config, capsys):
    run_dir = str(tmp_path / "run")
    bad = write_config(tiny_config("dqn", total_steps=48).replace("seed: 0", "seed: -1"), "bad.yaml")
    assert main(["train", bad, "--run-dir", run_dir]) == 2
    assert os.listdir(run_dir) == ["error.txt"]
    capsys.readouterr()
    assert main(["train", "--resume", run_dir]) == 2
    err = capsys.readouterr().err
    assert "never started" in err and "seed must be >= 0" in err and f"--run-dir {run_dir}" in err
    worse = write_config(tiny_config("dqn", total_steps=48).replace("algo: dqn", "algo: dqnn"), "worse.yaml")
    assert main(["train", worse, "--run-dir", run_dir]) == 2
    assert "already exists" not in capsys.readouterr().err
    assert "dqnn" in open(os.path.join(run_dir, "error.txt")).read()  # the new error replaced the old one
    good = write_config(tiny_config("dqn", total_steps=48, every=48, interval=48), "good.yaml")
    assert main(["train", good, "--run-dir", run_dir, "--no-progress"]) == 0
    assert "error.txt" not in os.listdir(run_dir) and "summary.json" in os.listdir(run_dir)


# ----- TensorFlow's start-up log ------------------------------------------------------------------------------
NOISE = ("onednn", "cuda", "absl", "initializelog")


def test_train_hides_tensorflows_startup_log_unless_verbose(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(tiny_config("dqn", total_steps=48, every=48, interval=48))
    quiet = _tlrl("train", str(config), "--run-dir", str(tmp_path / "quiet"))
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    assert not [m for m in NOISE if m in quiet.stderr.lower()], quiet.stderr
    raw = subprocess.run([sys.executable, "-c", "import tensorflow as tf; tf.constant(1.0) + 1"],
                         capture_output=True, text=True, env=_env(), timeout=600).stderr.lower()
    verbose = _tlrl("train", str(config), "--run-dir", str(tmp_path / "verbose"), "--verbose")
    assert verbose.returncode == 0, verbose.stderr[-3000:]
    assert [m for m in NOISE if m in raw] == [m for m in NOISE if m in verbose.stderr.lower() and m in raw]


def test_a_worker_process_of_the_command_imports_tensorflow_quietly():
    """What a spawned worker does: it inherits TLRL_QUIET_TF=1 and imports tlrl before TensorFlow."""
    code = "import tlrl, tensorflow as tf; tf.constant(1.0) + 1; print(tf.__loader__.__class__.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                         env=_env(TLRL_QUIET_TF="1"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "SourceFileLoader"  # TensorFlow keeps its own loader
    assert not [m for m in NOISE if m in out.stderr.lower()], out.stderr


def test_envs_and_help_do_not_import_tensorflow():
    code = ("import sys\nfrom tlrl.cli import main\nmain(['envs'])\n"
            "try:\n    main(['train', '--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=600)
    assert out.returncode == 0, out.stderr
    assert "tlrl/Catch-v0" in out.stdout


# ----- what --help, `tlrl envs` and metrics.csv say --------------------------------------------------------------
def test_set_help_says_bare_names_are_hyperparameters_and_top_level_keys_work_too(capsys):
    try:
        main(["train", "--help"])
    except SystemExit:
        pass
    text = " ".join(capsys.readouterr().out.split())
    assert "a bare name, which means hyperparameters.NAME" in text and "a top-level key" in text
    assert "--set total_steps=50000" in text and "--verbose" in text


def test_envs_shows_each_description_as_a_whole_sentence(capsys):
    assert main(["envs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) >= 4 and all(line.rstrip().endswith(".") for line in lines), lines
    assert any(line.startswith("tlrl/Catch-v0") and "paddle" in line for line in lines)


def test_metrics_csv_has_one_steps_per_second_column(tmp_path, write_config):
    """Off-policy agents report `steps_per_second`; the logger's own `steps_per_s` is the column kept."""
    run_dir = tmp_path / "run"
    assert main(["train", write_config(tiny_config("dqn", total_steps=96, every=96, interval=32)),
                 "--run-dir", str(run_dir), "--no-progress"]) == 0
    with open(run_dir / "metrics.csv") as fh:
        header = next(csv.reader(fh))
    assert len(header) == len(set(header)), header
    assert "steps_per_s" in header and not [h for h in header if "steps_per_second" in h]
