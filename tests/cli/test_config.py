"""Config files are validated before anything runs: every error names the key, its line, what was
expected and the close matches."""
import glob
import os

import pytest

from .conftest import require_algorithm, tiny_config
from tlrl.cli import main
from tlrl.config import ConfigError, load_config, load_config_text, parse_set

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOOD = "algo: ppo\nenv:\n  id: CartPole-v1\ntotal_steps: 1000\n"


def error_of(text, overrides=(), **kw):
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "run.yaml", overrides, **kw)
    return str(info.value)


def test_unknown_key_names_its_line_and_the_close_match():
    msg = error_of(GOOD + "chekpoint:\n  keep: 2\n")
    assert msg.startswith("run.yaml, line 5: unknown key 'chekpoint'")
    assert "Did you mean 'checkpoint'?" in msg


def test_unknown_nested_key_names_its_section():
    msg = error_of(GOOD + "eval:\n  episodes: 3\n  deterministc: true\n")
    assert "line 7" in msg and "'deterministc' in eval" in msg and "'deterministic'" in msg


def test_wrong_type_names_key_line_and_expected_type():
    msg = error_of(GOOD + "eval:\n  episodes: ten\n")
    assert msg.startswith("run.yaml, line 6: eval.episodes must be an integer, got 'ten'")


def test_value_below_minimum_is_rejected():
    msg = error_of(GOOD.replace("1000", "-5"))
    assert "line 4" in msg and "total_steps must be >= 1, got -5" in msg


def test_missing_required_key():
    msg = error_of("algo: ppo\nenv: {id: CartPole-v1}\n")
    assert "missing required key 'total_steps'" in msg


def test_duplicate_key_is_an_error():
    msg = error_of(GOOD + "total_steps: 5\n")
    assert "line 5" in msg and "appears twice (first on line 4)" in msg


def test_invalid_yaml_names_the_line():
    msg = error_of("algo: ppo\ntotal_steps: 5\nenv: CartPole-v1: x\n")
    assert msg.startswith("run.yaml, line 3: not valid YAML")


def test_unknown_algorithm_suggests_the_registered_one():
    msg = error_of(GOOD.replace("ppo", "pop"))
    assert "line 1" in msg and "unknown algorithm 'pop'" in msg and "'ppo'" in msg


def test_unknown_env_suggests_close_ids():
    msg = error_of(GOOD.replace("CartPole-v1", "CartPol-v1"))
    assert "line 3" in msg and "Unknown environment id 'CartPol-v1'" in msg and "'CartPole-v1'" in msg


def test_env_class_path_must_import():
    msg = error_of(GOOD.replace("CartPole-v1", "tlrl.envs:GridWorldEn"))
    assert "has no attribute 'GridWorldEn'" in msg and "Did you mean: GridWorldEnv" in msg


def test_unknown_hyperparameter_names_line_and_close_match():
    msg = error_of(GOOD + "hyperparameters:\n  n_steps: 64\n  lerning_rate: 0.1\n")
    assert msg.startswith("run.yaml, line 7:") and "'lerning_rate'" in msg and "Did you mean 'learning_rate'?" in msg


def test_hyperparameter_of_wrong_type():
    msg = error_of(GOOD + "hyperparameters:\n  n_steps: many\n")
    assert "line 6" in msg and "PPO hyperparameter 'n_steps' must be an integer, got 'many'" in msg


def test_hyperparameter_value_checked_by_the_algorithm():
    msg = error_of(GOOD + "hyperparameters:\n  gamma: 1.5\n")
    assert "line 6" in msg and "gamma must be in [0, 1], got 1.5" in msg


def test_set_values_are_yaml_scalars_and_bare_names_are_hyperparameters():
    config = load_config_text(GOOD, "run.yaml", ["learning_rate=1e-3", "net_arch=[8, 8]", "env.kwargs.foo=5",
                                                 "eval.deterministic=false", "seed=null"])
    assert config.hyperparameters == {"learning_rate": 1e-3, "net_arch": [8, 8]}
    assert config.env.kwargs == {"foo": 5} and config.eval.deterministic is False and config.seed is None
    assert parse_set("a.b=text") == (("a", "b"), "text")


def test_an_error_in_a_set_value_points_at_the_set():
    msg = error_of(GOOD, ["eval.episodes=0"])
    assert msg.startswith("--set eval.episodes: eval.episodes must be >= 1")
    assert "expected key.path=value" in error_of(GOOD, ["learning_rate"])


def test_floats_written_without_a_dot_are_numbers():
    config = load_config_text(GOOD + "hyperparameters:\n  learning_rate: 3e-4\n", "run.yaml")
    assert config.hyperparameters["learning_rate"] == pytest.approx(3e-4)


def test_runner_workers_is_a3c_n_workers_and_rejected_elsewhere():
    msg = error_of(GOOD + "runner: {workers: 4}\n")
    assert "line 5" in msg and "runner.workers is not supported by PPO" in msg
    assert "runner.backend 'ray' is not supported by PPO" in error_of(GOOD + "runner: {backend: ray}\n")
    require_algorithm("a3c")
    config = load_config_text(GOOD.replace("ppo", "a3c") + "runner: {workers: 3, backend: thread}\n", "run.yaml")
    assert config.hyperparameters["n_workers"] == 3
    # A3C takes every runner backend (tlrl.runner): the key configures the runner (A3C's worker_source), per run
    config = load_config_text(GOOD.replace("ppo", "a3c") + "runner: {workers: 3, backend: sync}\n", "run.yaml")
    assert config.runner.backend == "sync" and "backend" not in config.hyperparameters
    assert config.hyperparameters["n_workers"] == 3
    msg = error_of(GOOD.replace("ppo", "a3c") + "runner: {backend: gpu}\n")
    assert "backend" in msg and "gpu" in msg


#: the shipped run configs (sweep files, sweep_*.yaml, are checked in tests/cli/test_shipped_configs.py)
RUN_CONFIGS = sorted(p for p in glob.glob(os.path.join(ROOT, "configs", "*.yaml"))
                     if not os.path.basename(p).startswith("sweep_"))


@pytest.mark.parametrize("path", RUN_CONFIGS, ids=lambda p: os.path.basename(p))
def test_every_shipped_config_validates(path):
    import yaml

    with open(path) as fh:
        require_algorithm(yaml.safe_load(fh)["algo"])
    config = load_config(path)
    assert config.total_steps > 0 and config.env.id


def test_shipped_configs_cover_the_reference_tasks():
    names = {os.path.basename(p)[:-5] for p in glob.glob(os.path.join(ROOT, "configs", "*.yaml"))}
    assert {"ppo_cartpole", "dqn_cartpole", "a3c_cartpole", "ddpg_pendulum", "td3_pendulum", "sac_pendulum",
            "ppo_pendulum", "ppo_lunarlander", "dqn_lunarlander", "sac_lunarlandercontinuous"} <= names


def test_a_config_error_writes_only_error_txt(tmp_path, write_config, capsys):
    run_dir = os.path.join(tmp_path, "run")
    code = main(["train", write_config(tiny_config().replace("seed: 0", "seed: -1")), "--run-dir", run_dir])
    assert code == 2
    assert "seed must be >= 0" in capsys.readouterr().err
    assert os.listdir(run_dir) == ["error.txt"]
    assert "seed must be >= 0" in open(os.path.join(run_dir, "error.txt")).read()


def test_an_env_that_cannot_be_built_fails_before_writing(tmp_path, write_config, capsys):
    text = "algo: dqn\nenv:\n  id: tlrl/GridWorld-v0\n  kwargs: {sizee: 3}\ntotal_steps: 100\n"
    run_dir = os.path.join(tmp_path, "run")
    assert main(["train", write_config(text), "--run-dir", run_dir]) == 2
    err = capsys.readouterr().err
    assert "line 2" in err and "cannot build DQN on 'tlrl/GridWorld-v0'" in err and "sizee" in err
    assert os.listdir(run_dir) == ["error.txt"]


def test_an_existing_run_dir_is_never_clobbered(tmp_path, write_config, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "notes.txt").write_text("mine")
    assert main(["train", write_config(tiny_config()), "--run-dir", str(run_dir)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert os.listdir(run_dir) == ["notes.txt"] and (run_dir / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("path", RUN_CONFIGS, ids=lambda p: os.path.basename(p))
def test_configs_use_the_benchmark_hyperparameters(path):
    """configs/<task>.yaml and scripts/benchmarks/<task>.py (when it exists) train with the same settings."""
    import importlib.util

    task = os.path.basename(path)[:-5]
    bench = os.path.join(ROOT, "scripts", "benchmarks", f"{task}.py")
    if not os.path.exists(bench):
        pytest.skip(f"no scripts/benchmarks/{task}.py yet")
    import sys

    scripts = os.path.join(ROOT, "scripts")
    sys.path.insert(0, scripts)  # benchmark tasks import each other as `benchmarks.<task>`
    try:
        spec = importlib.util.spec_from_file_location(f"_bench_{task}", bench)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(scripts)
    import yaml

    with open(path) as fh:
        config = yaml.safe_load(fh)
    if hasattr(module, "STEPS"):
        assert config["total_steps"] == module.STEPS
    settings = dict(getattr(module, "SETTINGS", {}))
    for constant, key in (("NET_ARCH", "net_arch"), ("NOISE_STD", "noise_sigma")):
        if hasattr(module, constant):
            settings[key] = getattr(module, constant)
    for key, value in settings.items():
        got = config["hyperparameters"].get(key)
        assert got == (list(value) if isinstance(value, tuple) else value), f"{key}: config {got!r}, benchmark {value!r}"
