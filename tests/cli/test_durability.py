"""Nothing lost on a crash, a power loss, a full disk or a second writer: every file and folder of a
checkpoint is fsynced before `latest` moves and pruning comes after; damaged checkpoints are passed
over with a warning; a full disk gives a plain error and keeps the last good checkpoint; the run
directory is locked for the whole training."""
import doctest
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

from .conftest import tiny_config, train_tiny_run
from tlrl.algorithms import get_algorithm
from tlrl.checkpointing import CheckpointManager
from tlrl.cli import main
from tlrl.logger import read_metrics
from tlrl.run_lock import RunLock
from tlrl.run_dir import RunError, prepare_resume

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("name", ["tlrl.durable", "tlrl.run_lock"])
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def small_dqn(**overrides):
    settings = dict(learning_starts=32, buffer_size=500, batch_size=16, train_freq=4, net_arch=[16, 16])
    return get_algorithm("dqn")("CartPole-v1", seed=0, **{**settings, **overrides})


# ----- fsync before `latest` moves, prune after ------------------------------------------------------------------
def test_every_file_and_folder_is_fsynced_before_latest_moves_and_pruning_comes_after(tmp_path, monkeypatch):
    agent = small_dqn()
    agent.learn(64)
    manager = CheckpointManager(str(tmp_path / "ckpts"), keep=1)
    old = manager.save(agent, {})
    agent.learn(32)
    events = []
    real_fsync, real_replace, real_rmtree = os.fsync, os.replace, shutil.rmtree

    def fsync(fd):  # records, then does the real fsync
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst, **kwargs):
        events.append(("replace", os.fspath(src), os.fspath(dst)))
        return real_replace(src, dst, **kwargs)

    def rmtree(path, *args, **kwargs):
        events.append(("rmtree", os.fspath(path)))
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(shutil, "rmtree", rmtree)
    new = manager.save(agent, {})
    monkeypatch.undo()

    root = manager.directory
    rename = next(i for i, e in enumerate(events) if e[0] == "replace" and e[2] == new)
    latest = next(i for i, e in enumerate(events) if e[0] == "replace" and e[2] == os.path.join(root, "latest"))
    prune = next(i for i, e in enumerate(events) if e[0] == "rmtree" and e[1] == old)
    assert rename < latest < prune

    def as_final(path):  # a path inside the temporary folders, named as it is after the renames
        rel = os.path.relpath(path, root)
        rel = re.sub(r"^\.tmp-step_\d+-[^/]+", os.path.basename(new), rel)
        rel = re.sub(r"/\.tmp-save-[^/]+", "/agent", rel)
        return re.sub(r"\.tmp(-\d+)?$", "", rel)  # a file written as NAME.tmp[-pid], fsynced, renamed to NAME

    synced_before_rename = {as_final(e[1]) for e in events[:rename] if e[0] == "fsync"}
    files = {os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(new) for f in fs}
    folders = {os.path.relpath(d, root) for d, _, _ in os.walk(new)}
    assert files and files <= synced_before_rename, files - synced_before_rename
    assert folders <= synced_before_rename, folders - synced_before_rename
    assert root in [e[1] for e in events[rename:latest] if e[0] == "fsync"]  # the rename itself is on disk
    assert root in [e[1] for e in events[latest:prune] if e[0] == "fsync"]  # and `latest`
    assert [p for _, p in manager.checkpoints()] == [new]


# ----- damaged checkpoints ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dqn_run(tmp_path_factory):
    return train_tiny_run(tmp_path_factory, "dqn", total_steps=192, every=64, interval=32)


def damage(checkpoint, how):
    agent = os.path.join(checkpoint, "agent")
    files = {"empty run_state.json": os.path.join(checkpoint, "run_state.json"),
             "empty agent.json": os.path.join(agent, "agent.json"),
             "empty TF index": os.path.join(agent, "ckpt", "agent.index"),
             "empty weights": os.path.join(agent, "ckpt", "agent.data-00000-of-00001"),
             "empty state.npz": os.path.join(agent, "state.npz")}
    if how in files:
        open(files[how], "w").close()  # what a power loss before fsync leaves
    elif how == "missing run_state.json":
        os.remove(os.path.join(checkpoint, "run_state.json"))
    elif how == "missing TF index":
        os.remove(os.path.join(agent, "ckpt", "agent.index"))
    else:
        raise ValueError(how)


@pytest.mark.parametrize("how", ["empty run_state.json", "empty TF index"])
def test_resume_passes_over_a_damaged_newest_checkpoint_with_a_warning(dqn_run, tmp_path, capsys, how):
    run = str(tmp_path / "run")
    shutil.copytree(dqn_run, run)
    newest = os.path.join(run, "checkpoints", "step_000000192")
    assert open(os.path.join(run, "checkpoints", "latest")).read().strip() == "step_000000192"  # `latest` names it
    damage(newest, how)
    capsys.readouterr()
    assert main(["train", "--resume", run, "--set", "total_steps=256", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert f"warning: skipping the damaged checkpoint {newest}" in err
    assert "from step_000000128" in err
    assert json.load(open(os.path.join(run, "summary.json")))["num_timesteps"] == 256
    assert [r["num_timesteps"] for r in read_metrics(os.path.join(run, "metrics.csv"))] == list(range(32, 257, 32))
    assert CheckpointManager.problem(newest) is None  # rewritten by the resumed run


@pytest.mark.parametrize("how", ["empty agent.json", "empty weights", "empty state.npz", "missing run_state.json",
                                 "missing TF index"])
def test_find_latest_names_each_damaged_checkpoint_it_passes_over(dqn_run, tmp_path, how):
    shutil.copytree(os.path.join(dqn_run, "checkpoints"), tmp_path / "ckpts")
    manager = CheckpointManager(str(tmp_path / "ckpts"))
    damage(os.path.join(manager.directory, "step_000000192"), how)
    path, damaged = manager.find_latest()
    assert path == os.path.join(manager.directory, "step_000000128")
    assert [p for p, _ in damaged] == [os.path.join(manager.directory, "step_000000192")]
    assert manager.latest() == path


def test_eval_uses_the_newest_complete_checkpoint_and_resume_refuses_when_all_are_damaged(dqn_run, tmp_path, capsys):
    run = str(tmp_path / "run")
    shutil.copytree(dqn_run, run)
    damage(os.path.join(run, "checkpoints", "step_000000192"), "empty run_state.json")
    assert main(["eval", run, "--episodes", "1"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["num_timesteps"] == 128 and "step_000000192" in out.err
    for step in (64, 128):
        damage(os.path.join(run, "checkpoints", f"step_{step:09d}"), "empty agent.json")
    assert main(["train", "--resume", run, "--set", "total_steps=256"]) == 2
    err = capsys.readouterr().err
    assert "every checkpoint in" in err and "is damaged" in err and "Traceback" not in err


# ----- one writer per run directory ------------------------------------------------------------------------------
def test_a_second_writer_is_refused_before_it_reads_cleans_or_writes_anything(dqn_run, tmp_path):
    run = str(tmp_path / "run")
    shutil.copytree(dqn_run, run)
    stale = os.path.join(run, "checkpoints", ".tmp-step_000000256-inprogress")
    os.makedirs(stale)  # the first writer's save in progress
    with RunLock(run):  # the first writer
        before = {name: os.path.getmtime(os.path.join(run, name)) for name in os.listdir(run)}
        with pytest.raises(RunError, match=rf"another process \(pid {os.getpid()}\) is using the run directory"):
            prepare_resume(run, overrides=["total_steps=256"])
        assert os.path.isdir(stale)
        assert {name: os.path.getmtime(os.path.join(run, name)) for name in os.listdir(run)} == before
    run_ = prepare_resume(run, overrides=["total_steps=256"])  # free again
    run_.lock.release()


def test_a_resume_while_the_run_goes_on_is_refused_and_after_kill_9_it_resumes(tmp_path, write_config):
    config = write_config(tiny_config("ppo", total_steps=10**7, every=64, interval=32))
    run_dir = str(tmp_path / "run")
    first = subprocess.Popen([sys.executable, "-m", "tlrl", "train", config, "--run-dir", run_dir, "--no-progress",
                              "--set", "checkpoint.keep=2"], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    try:
        while not os.path.exists(os.path.join(run_dir, "checkpoints", "latest")):
            assert first.poll() is None, first.stderr.read()[-3000:]
            time.sleep(0.05)
        second = subprocess.run([sys.executable, "-m", "tlrl", "train", "--resume", run_dir, "--no-progress"],
                                cwd=ROOT, capture_output=True, text=True,
                                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        assert second.returncode == 2, second.stderr[-3000:]
        assert f"another process (pid {first.pid}) is using the run directory {run_dir}" in second.stderr
        assert "Traceback" not in second.stderr
        assert first.poll() is None  # the first run goes on
    finally:
        first.kill()  # kill -9: the kernel releases its lock
        first.communicate()
    step = int(os.path.basename(CheckpointManager(os.path.join(run_dir, "checkpoints")).latest()).split("_")[1])
    assert main(["train", "--resume", run_dir, "--set", f"total_steps={step + 32}", "--no-progress"]) == 0
    assert json.load(open(os.path.join(run_dir, "summary.json")))["num_timesteps"] == step + 32


# ----- a full disk -----------------------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A 1400 KiB tmpfs: room for one checkpoint of the run below (about 940 KB), not for two."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1400k", "tmpfs", str(mount)], capture_output=True,
                         text=True)
    if out.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {out.stderr.strip()}")
    yield str(mount)
    if subprocess.run(["umount", str(mount)]).returncode != 0:
        subprocess.run(["umount", "-l", str(mount)])


def test_a_full_disk_stops_with_a_plain_error_and_keeps_the_last_checkpoint(small_disk, tmp_path, write_config,
                                                                             capsys):
    text = tiny_config("dqn", total_steps=256, every=64, interval=32).replace("buffer_size: 500", "buffer_size: 20000")
    run = os.path.join(small_disk, "run")
    assert main(["train", write_config(text), "--run-dir", run, "--no-progress", "--set", "checkpoint.keep=1"]) == 2
    err = capsys.readouterr().err
    ckpts = os.path.join(run, "checkpoints")
    assert f"cannot write checkpoint step_000000128 into {ckpts}: no space left on device" in err
    assert "the last good checkpoint, step_000000064, is intact" in err and "Traceback" not in err
    assert sorted(os.listdir(ckpts)) == ["latest", "step_000000064"]  # no temporary files left behind
    assert not [f for d, _, fs in os.walk(run) for f in fs if ".tmp" in f]
    copy = str(tmp_path / "run")  # resumable, once there is space
    shutil.copytree(run, copy)
    assert main(["train", "--resume", copy, "--no-progress"]) == 0
    assert json.load(open(os.path.join(copy, "summary.json")))["num_timesteps"] == 256


FILE_SIZE_LIMIT = textwrap.dedent("""\
    import json, resource, signal, sys
    from tlrl.algorithms import get_algorithm
    from tlrl.checkpointing import CheckpointError, CheckpointManager

    net = [int(n) for n in sys.argv[2].split(",")]
    agent = get_algorithm("dqn")("CartPole-v1", seed=0, learning_starts=32, buffer_size=2000, batch_size=16,
                                 net_arch=net)
    agent.learn(64)
    manager = CheckpointManager(sys.argv[1], keep=1)
    manager.save(agent, {})
    agent.learn(64)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    try:
        manager.save(agent, {})
    except CheckpointError as exc:
        print(json.dumps(str(exc)))
    """)


@pytest.mark.parametrize("net, too_big", [("64,64", "weights (TensorFlow's writer)"), ("16,16", "replay (.npz)")])
def test_a_file_size_limit_during_a_checkpoint_is_a_plain_error_and_keeps_the_last_one(tmp_path, net, too_big):
    ckpts = str(tmp_path / "ckpts")
    out = subprocess.run([sys.executable, "-c", FILE_SIZE_LIMIT, ckpts, net], cwd=ROOT, capture_output=True,
                         text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert out.returncode == 0 and out.stdout.strip(), out.stderr[-3000:]
    message = json.loads(out.stdout.strip().splitlines()[-1])
    assert f"cannot write checkpoint step_000000128 into {ckpts}: file too large" in message, (too_big, message)
    assert "the last good checkpoint, step_000000064, is intact" in message
    assert sorted(os.listdir(ckpts)) == ["latest", "step_000000064"]
    manager = CheckpointManager(ckpts)
    assert manager.load_agent(manager.latest(), get_algorithm("dqn")).num_timesteps == 64


def test_a_new_run_whose_directory_is_taken_after_its_check_is_refused_when_it_takes_the_lock(tmp_path, write_config):
    from tlrl.config import load_config
    from tlrl.run_dir import prepare_new
    from tlrl.training import run_training

    run_dir = tmp_path / "run"
    run = prepare_new(load_config(write_config(tiny_config("ppo", total_steps=64))), str(run_dir))
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("the other run's config\n")  # another run started here meanwhile
    with pytest.raises(RunError, match="taken by another run"):
        run_training(run, progress=False)
    assert (run_dir / "config.yaml").read_text() == "the other run's config\n"
    assert sorted(os.listdir(run_dir)) == [".lock", "config.yaml"]
    RunLock(str(run_dir)).acquire().release()  # and the lock was given back
