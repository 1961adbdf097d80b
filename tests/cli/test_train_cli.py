"""`tlrl train / eval / export / plot / envs` end to end, and resuming: from any checkpoint, after
SIGKILL, after Ctrl-C, to the same final weights as an uninterrupted run."""
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf

from .conftest import require_algorithm, tiny_config, train_tiny_run
from tlrl.cli import main
from tlrl.logger import read_metrics
from tlrl.run_dir import prepare_new, prepare_resume
from tlrl.training import run_training

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory):
    return train_tiny_run(tmp_path_factory, "ppo", "--set", "n_epochs=3", total_steps=256, every=64, interval=32,
                          tensorboard=True)


def test_train_writes_config_metrics_tensorboard_checkpoints_and_summary(ppo_run):
    summary = json.loads((ppo_run / "summary.json").read_text())
    assert {"algo", "env", "seed", "total_steps", "wall_seconds", "eval_return_mean", "eval_return_std"} <= set(summary)
    assert (summary["algo"], summary["env"], summary["seed"], summary["total_steps"]) == ("ppo", "CartPole-v1", 0, 256)
    assert summary["num_timesteps"] == 256 and summary["wall_seconds"] > 0
    import yaml

    resolved = yaml.safe_load((ppo_run / "config.yaml").read_text())
    assert resolved["hyperparameters"]["n_epochs"] == 3 and resolved["checkpoint"]["keep"] == 100
    rows = read_metrics(str(ppo_run / "metrics.csv"))
    assert [r["num_timesteps"] for r in rows] == list(range(32, 257, 32))
    assert {"steps_per_s", "episode_return_mean", "policy_loss" if "policy_loss" in rows[0] else "loss"} <= set(rows[0])
    assert os.listdir(ppo_run / "tb")
    ckpts = sorted(os.listdir(ppo_run / "checkpoints"))
    assert ckpts == ["latest", "step_000000064", "step_000000128", "step_000000192", "step_000000256"]


def test_eval_loads_the_latest_checkpoint(ppo_run, capsys):
    assert main(["eval", str(ppo_run), "--episodes", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    summary = json.loads((ppo_run / "summary.json").read_text())
    assert out["num_timesteps"] == 256 and out["episodes"] == 2
    assert out["eval_return_mean"] == summary["eval_return_mean"]  # same seeds, same deterministic policy


def test_eval_video_records_one_mp4_per_episode(ppo_run, capsys):
    assert main(["eval", str(ppo_run), "--episodes", "2", "--video"]) == 0  # the test extra installs moviepy, pygame
    folder = json.loads(capsys.readouterr().out)["video_folder"]
    assert sorted(f for f in os.listdir(folder) if f.endswith(".mp4")) == ["rl-video-episode-0.mp4",
                                                                          "rl-video-episode-1.mp4"]


def test_eval_of_a_corrupt_checkpoint_fails_plainly(ppo_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(ppo_run, run)
    data = run / "checkpoints" / "step_000000256" / "agent" / "ckpt" / "agent.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:10])
    assert main(["eval", str(run)]) == 2
    err = capsys.readouterr().err
    assert "step_000000256" in err and "corrupt" in err and "Traceback" not in err


def test_plot_draws_seeds_of_one_config_as_one_curve(ppo_run, tmp_path, capsys):
    runs = []
    for seed in range(3):
        run = tmp_path / f"seed{seed}"
        run.mkdir()
        (run / "config.yaml").write_text(f"algo: ppo\nenv: {{id: CartPole-v1}}\nseed: {seed}\n")
        steps = np.arange(100, 1100, 100)
        lines = ["num_timesteps,episode_return_mean"] + [f"{s},{s / 10 + seed}" for s in steps]
        (run / "metrics.csv").write_text("\n".join(lines) + "\n")
        runs.append(str(run))
    from tlrl.plotting import load_curves

    groups = load_curves(runs)
    assert len(groups) == 1 and len(next(iter(groups.values()))[1]) == 3
    out = tmp_path / "curves.png"
    assert main(["plot", *runs, str(ppo_run), "--out", str(out)]) == 0
    assert out.stat().st_size > 1000 and out.read_bytes()[:4] == b"\x89PNG"
    assert main(["plot", runs[0], "--out", str(out), "--metric", "nope"]) == 2
    assert "no column 'nope'" in capsys.readouterr().err


def test_envs_lists_tlrls_environments(capsys):
    assert main(["envs"]) == 0
    out = capsys.readouterr().out
    for env_id in ("tlrl/GridWorld-v0", "tlrl/PointMass-v0", "tlrl/Catch-v0"):
        assert env_id in out


# ----- export: loaded by plain TensorFlow in a fresh process -------------------------------------------------
EXPORTS = {  # name -> (algo, env, hyperparameters, env steps to train first: normalizer statistics)
    "ppo_discrete": ("ppo", "CartPole-v1", dict(n_envs=2, n_steps=16, batch_size=16, n_epochs=1, net_arch=[16],
                                                jit_compile=False), 0),
    "ppo_box_normalized": ("ppo", "Pendulum-v1", dict(n_envs=2, n_steps=16, batch_size=16, n_epochs=1, net_arch=[16],
                                                      normalize_obs=True, jit_compile=False), 32),
    "ppo_dict_obs": ("ppo", "tlrl/GoalGrid-v0", dict(n_envs=2, n_steps=16, batch_size=16, n_epochs=1, net_arch=[16],
                                                     jit_compile=False), 0),
    "dqn": ("dqn", "CartPole-v1", dict(learning_starts=16, buffer_size=200, batch_size=8, net_arch=[16]), 0),
    "ddpg": ("ddpg", "Pendulum-v1", dict(learning_starts=16, buffer_size=200, batch_size=8, net_arch=[16],
                                         jit_compile=False), 0),
    "a3c": ("a3c", "CartPole-v1", dict(n_workers=1, n_steps=8, net_arch=[16]), 0),
    "sac": ("sac", "Pendulum-v1", dict(learning_starts=16, buffer_size=200, batch_size=8, net_arch=[16],
                                       jit_compile=False), 0),
}

FRESH = textwrap.dedent("""\
    import os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import numpy as np, tensorflow as tf
    for name in sys.argv[2:]:
        model = tf.saved_model.load(os.path.join(sys.argv[1], name))
        data = np.load(os.path.join(sys.argv[1], name + ".npz"))
        keys = [k[4:] for k in data.files if k.startswith("obs/")]
        obs = {k: tf.constant(data["obs/" + k]) for k in keys}
        inputs = obs if keys != ["observations"] else {"observations": obs["observations"]}
        served = model.signatures["serving_default"](**inputs)["actions"].numpy()
        direct = model.act(inputs if keys != ["observations"] else inputs["observations"]).numpy()
        expected = data["expected"]
        assert served.dtype == expected.dtype, (name, served.dtype, expected.dtype)
        assert np.allclose(served, expected, atol=1e-5) and np.array_equal(served, direct), (name, served, expected)
        print("OK", name)
    assert "tlrl" not in sys.modules
    """)


def _sample_obs(space, n, rng):
    import gymnasium as gym

    if isinstance(space, gym.spaces.Dict):
        return {k: _sample_obs(s, n, rng) for k, s in space.spaces.items()}
    space.seed(int(rng.integers(1 << 30)))
    return np.stack([space.sample() for _ in range(n)])


def test_export_gives_the_same_actions_as_act_in_a_fresh_process_without_tlrl(tmp_path):
    from tlrl.algorithms import get_algorithm
    from tlrl.export import export_saved_model

    rng = np.random.default_rng(0)
    names = []
    for name, (algo, env, hp, steps) in EXPORTS.items():
        require_algorithm(algo)
        agent = get_algorithm(algo)(env, seed=0, **hp)
        if steps:
            agent.learn(steps)
        obs = _sample_obs(agent.observation_space, 7, rng)
        expected = np.asarray(agent.act(obs, deterministic=True))
        export_saved_model(agent, str(tmp_path / name))
        flat = {f"obs/{k}": np.asarray(v, np.float32) for k, v in obs.items()} if isinstance(obs, dict) \
            else {"obs/observations": np.asarray(obs, np.float32)}
        np.savez(tmp_path / f"{name}.npz", expected=expected, **flat)
        names.append(name)
    script = tmp_path / "check.py"
    script.write_text(FRESH)
    out = subprocess.run([sys.executable, str(script), str(tmp_path), *names], capture_output=True, text=True,
                         cwd=str(tmp_path), env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    assert out.stdout.count("OK") == len(names)


def test_export_cli_writes_a_saved_model(ppo_run, capsys):
    assert main(["export", str(ppo_run), "--out", str(ppo_run / "exported")]) == 0
    assert json.loads(capsys.readouterr().out)["num_timesteps"] == 256
    assert (ppo_run / "exported" / "saved_model.pb").exists()
    assert main(["export", str(ppo_run), "--out", str(ppo_run / "exported")]) == 2  # never overwritten silently


# ----- resume -----------------------------------------------------------------------------------------------
def final_state(run_dir, step):
    agent_dir = os.path.join(run_dir, "checkpoints", f"step_{step:09d}", "agent")
    reader = tf.train.load_checkpoint(os.path.join(agent_dir, "ckpt", "agent"))
    out = {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if "OBJECT_GRAPH" not in k}
    for name in os.listdir(agent_dir):
        if name.endswith(".npz"):
            with np.load(os.path.join(agent_dir, name), allow_pickle=False) as data:
                out.update({f"{name}:{k}": data[k] for k in data.files})
    return out


def assert_same_state(a, b):
    assert sorted(a) == sorted(b)
    different = [k for k in a if not np.array_equal(a[k], b[k])]
    assert not different, f"{len(different)} of {len(a)} arrays differ, e.g. {different[:4]}"


RESUME_CASES = [
    pytest.param("ppo", 64, 192, id="ppo"),
    pytest.param("ddpg", 64, 192, id="ddpg"),
    pytest.param("td3", 64, 192, id="td3"),
    pytest.param("sac", 64, 192, id="sac"),
    pytest.param("a3c", 64, 192, id="a3c"),
    pytest.param("dqn", 64, 192, id="dqn"),
]


@pytest.mark.parametrize("algo,every,total", RESUME_CASES)
def test_resuming_from_a_checkpoint_ends_bit_for_bit_like_the_uninterrupted_run(algo, every, total, tmp_path,
                                                                                write_config):
    require_algorithm(algo)
    from tlrl.config import load_config

    config = load_config(write_config(tiny_config(algo, total_steps=total, every=every, interval=16)))
    full = str(tmp_path / "full")
    run_training(prepare_new(config, full), progress=False)
    # a run killed after its first checkpoint: its files as they were then, later rows included
    killed = str(tmp_path / "killed")
    first = sorted(n for n in os.listdir(os.path.join(full, "checkpoints")) if n.startswith("step_"))[0]
    os.makedirs(os.path.join(killed, "checkpoints"))
    for name in ("config.yaml", "metrics.csv"):
        shutil.copy(os.path.join(full, name), os.path.join(killed, name))
    shutil.copytree(os.path.join(full, "checkpoints", first), os.path.join(killed, "checkpoints", first))
    summary = run_training(prepare_resume(killed), progress=False)
    assert summary["num_timesteps"] == json.load(open(os.path.join(full, "summary.json")))["num_timesteps"]
    assert_same_state(final_state(full, summary["num_timesteps"]), final_state(killed, summary["num_timesteps"]))
    steps = lambda d: [r["num_timesteps"] for r in read_metrics(os.path.join(d, "metrics.csv"))]  # noqa: E731
    assert steps(killed) == steps(full) and len(set(steps(full))) == len(steps(full))


def test_a_run_with_several_checkpoints_runs_one_loop_and_makes_new_envs_only_at_the_cuts(tmp_path, write_config):
    from tlrl.algorithms import PPO
    from tlrl.config import load_config
    from tlrl.run_dir import PreparedRun

    calls = {"learn": 0, "make_vector_env": 0, "cut_episodes": 0}

    class CountingPPO(PPO):
        def learn(self, total_steps, callback=None):
            calls["learn"] += 1
            return super().learn(total_steps, callback)

        def make_vector_env(self, n_envs, seed, asynchronous=False):
            calls["make_vector_env"] += 1
            return super().make_vector_env(n_envs, seed, asynchronous)

        def cut_episodes(self):
            calls["cut_episodes"] += 1
            super().cut_episodes()

    config = load_config(write_config(tiny_config("ppo", total_steps=256, every=64, interval=32)))
    agent = CountingPPO(config.env.id, seed=config.seed, env_kwargs=dict(config.env.kwargs), **config.hyperparameters)
    run_dir = str(tmp_path / "run")
    summary = run_training(PreparedRun(config, run_dir, agent), progress=False)
    # checkpoints at 64, 128, 192 and the final one at 256: one loop, each checkpoint a cut, fresh envs after each
    assert calls == {"learn": 1, "cut_episodes": 4, "make_vector_env": 4}
    assert sorted(os.listdir(os.path.join(run_dir, "checkpoints"))) == \
        ["latest", "step_000000064", "step_000000128", "step_000000192", "step_000000256"]
    assert summary["num_timesteps"] == 256 and summary["checkpoint"] == os.path.join("checkpoints", "step_000000256")
    assert [r["num_timesteps"] for r in read_metrics(os.path.join(run_dir, "metrics.csv"))] == list(range(32, 257, 32))
    assert agent.collector.env is None  # closed at the end of the run


def _wait_for(path, proc, timeout=300):
    t0 = time.time()
    while not os.path.exists(path):
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (code {proc.returncode}) before {path} appeared:\n"
                                 + proc.stderr.read()[-3000:])
        if time.time() - t0 > timeout:
            proc.kill()
            raise AssertionError(f"{path} did not appear")
        time.sleep(0.02)


def _start(config_path, run_dir):
    return subprocess.Popen([sys.executable, "-m", "tlrl", "train", config_path, "--run-dir", run_dir],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})


def test_a_killed_run_resumes_to_the_same_result_without_duplicate_or_missing_rows(tmp_path, write_config):
    text = tiny_config("ppo", total_steps=1600, every=160, interval=64, tensorboard=True)
    path = write_config(text)
    run_dir = str(tmp_path / "run")
    proc = _start(path, run_dir)
    _wait_for(os.path.join(run_dir, "checkpoints", "latest"), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not os.path.exists(os.path.join(run_dir, "summary.json")), "the run finished before it was killed"
    assert main(["train", "--resume", run_dir, "--no-progress"]) == 0
    summary = json.load(open(os.path.join(run_dir, "summary.json")))
    assert summary["num_timesteps"] == 1600
    steps = [r["num_timesteps"] for r in read_metrics(os.path.join(run_dir, "metrics.csv"))]
    assert steps == list(range(64, 1601, 64))
    # one event file per session, each a run of steps; in step order (file names tie when both sessions start in one
    # second, and wall times need not order them on a loaded machine): a step held twice or missed shows either way
    files = [[event.step for event in tf.compat.v1.train.summary_iterator(f)
              if any(v.tag == "train/wall" for v in event.summary.value)]
             for f in glob.glob(os.path.join(run_dir, "tb", "events.out.tfevents.*"))]
    tb_steps = [step for steps in sorted(files, key=lambda steps: steps[:1]) for step in steps]
    assert tb_steps == list(range(64, 1601, 64)), f"TensorBoard holds a step twice (or misses one): {files}"
    # and the same weights as a run that was never interrupted
    from tlrl.config import load_config

    straight = str(tmp_path / "straight")
    run_training(prepare_new(load_config(path), straight), progress=False)
    assert_same_state(final_state(straight, 1600), final_state(run_dir, 1600))


def test_ctrl_c_saves_a_checkpoint_and_the_run_can_continue(tmp_path, write_config, monkeypatch, capsys):
    from tlrl.logger import Logger

    real_call = Logger.__call__

    def call_then_ctrl_c(self, agent, info):  # the user presses Ctrl-C once, during training
        real_call(self, agent, info)
        if info["num_timesteps"] == 96:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(Logger, "__call__", call_then_ctrl_c)
    run_dir = str(tmp_path / "run")
    before = signal.getsignal(signal.SIGINT)
    assert main(["train", write_config(tiny_config("ppo", total_steps=100000, every=100000, interval=32)),
                 "--run-dir", run_dir, "--no-progress"]) == 130
    monkeypatch.undo()
    assert "--resume" in capsys.readouterr().err
    assert open(os.path.join(run_dir, "checkpoints", "latest")).read().strip() == "step_000000096"
    assert not os.path.exists(os.path.join(run_dir, "summary.json"))
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back
    assert main(["train", "--resume", run_dir, "--set", "total_steps=160", "--no-progress"]) == 0
    assert json.load(open(os.path.join(run_dir, "summary.json")))["num_timesteps"] == 160
    assert [r["num_timesteps"] for r in read_metrics(os.path.join(run_dir, "metrics.csv"))] == [32, 64, 96, 128, 160]


def test_resume_refuses_a_different_config_but_may_train_longer(ppo_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(ppo_run, run)
    assert main(["train", "--resume", str(run), "--set", "gamma=0.5"]) == 2
    assert "hyperparameters.gamma differs" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--set", "total_steps=320", "--no-progress"]) == 0
    assert json.loads((run / "summary.json").read_text())["num_timesteps"] == 320
    assert [r["num_timesteps"] for r in read_metrics(str(run / "metrics.csv"))] == list(range(32, 321, 32))


@pytest.mark.skipif(__import__("importlib").util.find_spec("ray") is None, reason="Ray is not installed")
def test_a3c_trains_through_the_cli_with_ray_workers_started_before_tf(tmp_path):
    """`tlrl train` starts Ray and its worker actors before it imports TF (`tlrl.runner.ray_host.prestart`);
    the run's pool must take those actors: if it started new ones, the spares would hold both CPUs of the
    local Ray instance and the new actors would never be scheduled."""
    text = tiny_config("a3c", total_steps=2048, every=1024, interval=256,
                       extra="runner: {backend: ray, workers: 2}\n").replace("n_workers: 1, ", "")
    (tmp_path / "a3c.yaml").write_text(text)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    out = subprocess.run([sys.executable, "-m", "tlrl", "train", str(tmp_path / "a3c.yaml"), "--run-dir",
                          str(tmp_path / "run"), "--no-progress"], capture_output=True, text=True, env=env,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["num_timesteps"] >= 2048 and np.isfinite(summary["eval_return_mean"])
