"""A composed agent is a first-class citizen: scripts/compose_agent.py's DiscreteSAC, written on BaseAgent's
public extension points, learns CartPole; named in a config as `algo: "compose_agent:DiscreteSAC"` it trains
with `tlrl train`, resumes bit for bit, exports, and runs with process and Ray actors like a built-in agent.
An `algo` string resolves only to an agent class: anything else is a config error, and nothing but the
module's import runs."""
import importlib.util
import json
import math
import os
import shutil
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import user_module_on_path

SCRIPTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts")
ALGO = "compose_agent:DiscreteSAC"
TINY = dict(learning_starts=64, buffer_size=1000, batch_size=16, n_envs=2)


@pytest.fixture(scope="module")
def compose_agent():
    """scripts/compose_agent.py imported as the module `compose_agent`, with scripts/ on sys.path and on
    PYTHONPATH, as a user would run it: spawned worker processes and Ray workers import it from there."""
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(SCRIPTS)
        mp.setenv("PYTHONPATH", os.pathsep.join(p for p in (SCRIPTS, os.environ.get("PYTHONPATH")) if p))
        mp.delitem(sys.modules, "compose_agent", raising=False)
        import compose_agent

        yield compose_agent
    sys.modules.pop("compose_agent", None)


def sac_config(total_steps: int, every: int) -> str:
    hyper = ", ".join(f"{k}: {v}" for k, v in TINY.items())
    return (f"algo: '{ALGO}'\nenv: {{id: CartPole-v1}}\nhyperparameters: {{{hyper}}}\ntotal_steps: {total_steps}\n"
            f"seed: 0\neval: {{episodes: 2, deterministic: true}}\ncheckpoint: {{every_steps: {every}, keep: 100}}\n"
            f"log: {{interval: 64, tensorboard: false, progress: false}}\n")


@pytest.fixture(scope="module")
def sac_run(compose_agent, tmp_path_factory):
    """A run of the composed agent trained by `tlrl train` (256 steps, checkpoints at 128 and 256)."""
    from tlrl.cli import main

    folder = tmp_path_factory.mktemp("sac")
    (folder / "config.yaml").write_text(sac_config(256, 128))
    run_dir = folder / "run"
    assert main(["train", str(folder / "config.yaml"), "--run-dir", str(run_dir), "--no-progress"]) == 0
    return run_dir


def final_state(run_dir, step: int):
    """Every tensor of the checkpoint at `step` and every array of its .npz files."""
    agent_dir = os.path.join(run_dir, "checkpoints", f"step_{step:09d}", "agent")
    reader = tf.train.load_checkpoint(os.path.join(agent_dir, "ckpt", "agent"))
    out = {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if "OBJECT_GRAPH" not in k}
    for name in sorted(os.listdir(agent_dir)):
        if name.endswith(".npz"):
            with np.load(os.path.join(agent_dir, name), allow_pickle=False) as data:
                out.update({f"{name}:{k}": data[k] for k in data.files})
    return out


# ----- the agent itself ------------------------------------------------------------------------------------
def test_composed_discrete_sac_learns_cartpole_with_finite_losses(compose_agent, tmp_path):
    agent = compose_agent.DiscreteSAC("CartPole-v1", seed=0)
    initial, _ = agent.evaluate(3)
    losses = []
    agent.learn(4000, callback=lambda a, info: losses.append(info["metrics"]) if info["metrics"] else None)
    assert losses and all(math.isfinite(m[k]) for m in losses for k in ("q_loss", "pi_loss", "alpha", "entropy"))
    mean, _ = agent.evaluate(5)
    # untrained policy: ~10; seed 0 scored 246 after 3000 steps, every seed tried (0-3) 163-500 after 4000
    assert mean >= 150 and mean > 5 * initial, (initial, mean)
    agent.save(str(tmp_path / "sac"))  # the composed agent saves and loads like a shipped one
    loaded = compose_agent.DiscreteSAC.load(str(tmp_path / "sac"))
    obs = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    np.testing.assert_array_equal(loaded.act(obs, deterministic=True), agent.act(obs, deterministic=True))


def test_the_script_runs_and_prints_an_evaluation(compose_agent, capsys):
    agent, mean = compose_agent.main(["--steps", "400", "--seed", "1"])
    assert agent.num_timesteps == 400 and f"eval {mean:.1f}" in capsys.readouterr().out


# ----- tlrl train, resume, eval, export ------------------------------------------------------------------
def test_tlrl_train_builds_the_agent_class_the_config_names(compose_agent, sac_run):
    summary = json.loads((sac_run / "summary.json").read_text())
    assert (summary["algo"], summary["num_timesteps"]) == (ALGO, 256)
    for step in (128, 256):
        meta = json.loads((sac_run / "checkpoints" / f"step_{step:09d}" / "agent" / "agent.json").read_text())
        assert (meta["algo"], meta["num_timesteps"]) == ("DiscreteSAC", step)


def test_a_resumed_run_ends_bit_for_bit_like_the_uninterrupted_one(compose_agent, sac_run, tmp_path):
    from tlrl.cli import main

    killed = tmp_path / "killed"  # the run as it was after its first checkpoint
    (killed / "checkpoints").mkdir(parents=True)
    for name in ("config.yaml", "command.json", "metrics.csv"):
        shutil.copy(sac_run / name, killed / name)
    shutil.copytree(sac_run / "checkpoints" / "step_000000128", killed / "checkpoints" / "step_000000128")
    assert main(["train", "--resume", str(killed), "--no-progress"]) == 0
    full, resumed = final_state(sac_run, 256), final_state(killed, 256)
    assert sorted(full) == sorted(resumed)
    different = [k for k in full if not np.array_equal(full[k], resumed[k])]
    assert not different, f"{len(different)} of {len(full)} arrays differ, e.g. {different[:4]}"


def test_tlrl_eval_and_export_serve_the_agents_greedy_actions(compose_agent, sac_run, tmp_path, capsys):
    from tlrl.cli import main
    from tlrl.run_dir import load_run

    assert main(["eval", str(sac_run), "--episodes", "2"]) == 0
    assert "eval_return_mean" in json.loads(capsys.readouterr().out)
    assert main(["export", str(sac_run), "--out", str(tmp_path / "exported")]) == 0
    _, agent = load_run(str(sac_run))
    assert isinstance(agent, compose_agent.DiscreteSAC) and agent.num_timesteps == 256
    obs = np.random.default_rng(0).normal(scale=[1.0, 2.0, 0.2, 2.0], size=(64, 4)).astype(np.float32)
    policy = tf.saved_model.load(str(tmp_path / "exported"))
    served = policy.signatures["serving_default"](observations=tf.constant(obs))["actions"].numpy()
    expected = agent.act(obs, deterministic=True)
    assert served.dtype == expected.dtype and np.array_equal(served, expected)
    assert len(set(expected.tolist())) == 2, "a trivial policy would not test much"


# ----- asynchronous actors (Ape-X) -------------------------------------------------------------------------
def _learn_with_actors(compose_agent, backend: str):
    from tlrl.runner import Runner

    agent = compose_agent.DiscreteSAC("CartPole-v1", seed=0, **TINY)
    metrics = []
    runner = Runner(agent, backend=backend, workers=2, pull_every=64)  # actors pull the weights while it learns
    runner.learn(512, callback=lambda a, info: metrics.append(info["metrics"]))
    updates = [m for m in metrics if m]
    assert agent.num_timesteps >= 512 and agent.n_updates > 0 and updates
    assert all(math.isfinite(m[k]) for m in updates for k in ("q_loss", "pi_loss", "alpha", "entropy"))
    assert len(agent.store.replay) >= 512  # the actors' steps are in the learner's replay
    return agent


def test_process_actors_train_the_composed_agent(compose_agent):
    _learn_with_actors(compose_agent, "process")


def test_a_run_config_may_ask_for_actors_for_the_composed_agent(compose_agent):
    from tlrl.config import load_config_text
    from tlrl.runner import Runner

    config = load_config_text(sac_config(256, 128) + "runner: {backend: process, workers: 2}\n", "run.yaml")
    agent = compose_agent.DiscreteSAC("CartPole-v1", seed=0, **TINY)
    assert Runner.from_config(agent, config.runner).uses_actors  # what `tlrl train` trains with


@pytest.fixture(scope="module")
def ray_session(compose_agent):
    """A local Ray session whose workers import compose_agent (PYTHONPATH set by `compose_agent`)."""
    if importlib.util.find_spec("ray") is None:
        pytest.skip("Ray is not installed")
    from tlrl.runner import init_ray, shutdown_ray

    running = "ray" in sys.modules and sys.modules["ray"].is_initialized()
    assert not running, "another test left Ray running: its workers would not see scripts/ on PYTHONPATH"
    ray = init_ray(num_cpus=2)  # imports Ray itself, so that it binds to the loopback address only
    yield ray
    shutdown_ray()


def test_ray_actors_train_the_composed_agent(compose_agent, ray_session):
    _learn_with_actors(compose_agent, "ray")


# ----- `algo` names only an agent class --------------------------------------------------------------------
def test_get_algorithm_resolves_registered_names_and_agent_classes(compose_agent):
    from tlrl.algorithms import get_algorithm

    assert get_algorithm(ALGO) is compose_agent.DiscreteSAC
    with pytest.raises(ValueError, match=r"has no attribute 'DiscreteSACC' .* Did you mean: DiscreteSAC"):
        get_algorithm("compose_agent:DiscreteSACC")


SPEC_SOURCE = """\
    import pathlib

    MARKER = pathlib.Path(__file__).with_name("MARKER")


    class Meta(type):
        def __getattr__(cls, name):  # runs on any plain getattr of a missing name
            MARKER.write_text("metaclass hook ran")
            raise AttributeError(name)


    class NotAnAgent(metaclass=Meta):
        def __init__(self, *args, **kwargs):
            MARKER.write_text("constructor ran")


    def build_agent(*args, **kwargs):
        MARKER.write_text("function ran")
    """


@pytest.fixture
def spec_module(tmp_path, monkeypatch):
    yield from user_module_on_path(tmp_path, monkeypatch, "tlrl_test_algo_spec", SPEC_SOURCE)


def _config_error(algo: str) -> str:
    from tlrl.config import ConfigError, load_config_text

    with pytest.raises(ConfigError) as info:
        load_config_text(f"algo: '{algo}'\nenv: CartPole-v1\ntotal_steps: 100\n", "run.yaml")
    return str(info.value)


@pytest.mark.parametrize("name, found", [
    ("os:system", "a function"),
    ("collections:OrderedDict", "the class collections.OrderedDict"),
    ("tlrl_test_algo_spec:NotAnAgent", "the class tlrl_test_algo_spec.NotAnAgent"),
    ("tlrl_test_algo_spec:build_agent", "a function"),
    ("tlrl_test_algo_spec:MARKER", "a PosixPath object"),
])
def test_a_config_algo_naming_anything_but_an_agent_class_is_a_config_error(name, found, spec_module, tmp_path):
    message = _config_error(name)
    assert "line 1" in message and f"{name!r} names {found}, not a tlrl agent class" in message
    assert "tlrl.agent.BaseAgent" in message
    assert not (tmp_path / "MARKER").exists()


def test_nested_names_are_read_without_running_hooks(spec_module, tmp_path):
    message = _config_error(f"{spec_module}:NotAnAgent.Inner")
    assert "has no attribute 'NotAnAgent.Inner'" in message and not (tmp_path / "MARKER").exists()


@pytest.mark.parametrize("name", ["__main__:Agent", "tlrl_test_algo_pkg.__main__:Agent"])
def test_a_main_module_is_refused_before_it_is_imported(name, tmp_path, monkeypatch):
    package = tmp_path / "tlrl_test_algo_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text("import pathlib\npathlib.Path(__file__).parent.with_name('MARKER').touch()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    message = _config_error(name)
    assert "names a __main__ module" in message and "line 1" in message
    assert not (tmp_path / "MARKER").exists() and "tlrl_test_algo_pkg.__main__" not in sys.modules


def test_an_unknown_module_says_where_python_looked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    message = _config_error("no_such_module_xyz:Agent")
    assert "Could not import module 'no_such_module_xyz'" in message and "PYTHONPATH" in message
