"""User errors of the `tlrl` command end in one plain line and exit code 2, never a traceback:
step counts beyond the 64-bit counters, negative seeds, and a missing optional package
(matplotlib for `plot`, pygame for `eval --video`) named with the pip line that installs it."""
import os
import subprocess
import sys

import pytest
import yaml

from .conftest import TINY, tiny_config, train_tiny_run
from tlrl.cli import main
from tlrl.step_limits import MAX_STEPS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory):
    return train_tiny_run(tmp_path_factory, "ppo", total_steps=64, every=64, interval=32)


def run_cli_without(module, args, cwd):
    """`tlrl ARGS` in a fresh interpreter where importing `module` fails exactly as for a missing package."""
    code = (f"import sys; sys.modules[{module!r}] = None\n"
            f"from tlrl.cli import main\n"
            f"sys.exit(main({[str(a) for a in args]!r}))\n")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, env=env)


def test_total_steps_beyond_the_64_bit_step_counters_stops_before_training(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(tiny_config("ppo", total_steps=2**63))
    run = tmp_path / "run"
    assert main(["train", str(config), "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"{config}, line 5: total_steps must be at most 2**62 = {MAX_STEPS}" in err, err
    assert "Traceback" not in err and not (run / "checkpoints").exists()


def test_the_largest_step_count_is_accepted(tmp_path):
    from tlrl.config import load_config

    config = tmp_path / "config.yaml"
    config.write_text(tiny_config("ppo", total_steps=MAX_STEPS))
    assert load_config(str(config)).total_steps == MAX_STEPS


@pytest.mark.parametrize("algo", sorted(TINY))
def test_learn_refuses_a_step_count_beyond_the_64_bit_counters(algo):
    from tlrl.algorithms import get_algorithm

    env, hyper = TINY[algo]
    agent = get_algorithm(algo)(env, seed=0, **yaml.safe_load(hyper))
    with pytest.raises(ValueError, match=r"total_steps must be at most 2\*\*62"):
        agent.learn(MAX_STEPS + 1, callback=lambda agent, info: False)  # the callback stops the run if it started
    assert agent.num_timesteps == 0


def test_eval_with_a_negative_seed_says_seeds_are_non_negative(ppo_run, capsys):
    assert main(["eval", str(ppo_run), "--seed", "-5"]) == 2
    err = capsys.readouterr().err
    assert "--seed must be a non-negative integer" in err and "-5" in err and "Traceback" not in err


def test_plot_without_matplotlib_names_the_pip_command(ppo_run, tmp_path):
    out = tmp_path / "curves.png"
    result = run_cli_without("matplotlib", ["plot", ppo_run, "--out", out], tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    assert 'pip install "tlrl[plot]"' in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def test_eval_video_without_pygame_names_the_pip_command_and_leaves_no_video_folder(ppo_run, tmp_path):
    result = run_cli_without("pygame", ["eval", ppo_run, "--episodes", "1", "--video"], tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "pygame" in result.stderr and 'pip install "tlrl[video]"' in result.stderr
    assert "Traceback" not in result.stderr
    assert not (ppo_run / "videos").exists()
