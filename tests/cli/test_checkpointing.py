"""Checkpoints: atomic, last K kept, restored bit for bit (weights, optimizer slots, counters, RNGs,
normalizers, replay buffer), and unusable ones fail with a plain message."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tlrl.algorithms import get_algorithm
from tlrl.checkpointing import CheckpointError, CheckpointManager


@pytest.fixture(scope="module")
def dqn():
    agent = get_algorithm("dqn")("CartPole-v1", seed=1, learning_starts=32, buffer_size=500, batch_size=16,
                                 train_freq=4, gradient_steps=2, net_arch=[16, 16], n_step=3)
    agent.learn(96)
    return agent


@pytest.fixture(scope="module")
def ppo():
    agent = get_algorithm("ppo")("Pendulum-v1", seed=2, n_envs=2, n_steps=16, batch_size=16, n_epochs=2,
                                 net_arch=[16, 16], normalize_obs=True, normalize_reward=True, jit_compile=False)
    agent.learn(64)
    return agent


def ckpt_tensors(agent_dir):
    reader = tf.train.load_checkpoint(os.path.join(agent_dir, "ckpt", "agent"))
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if "OBJECT_GRAPH" not in k}


def npz_arrays(path):
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def assert_same_files(dir_a, dir_b):
    a, b = ckpt_tensors(dir_a), ckpt_tensors(dir_b)
    assert sorted(a) == sorted(b) and len(a) > 0
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k
    for name in sorted(os.listdir(dir_a)):
        if name.endswith(".npz"):
            x, y = npz_arrays(os.path.join(dir_a, name)), npz_arrays(os.path.join(dir_b, name))
            assert sorted(x) == sorted(y)
            for k in x:
                assert x[k].dtype == y[k].dtype and np.array_equal(x[k], y[k]), f"{name}:{k}"


@pytest.mark.parametrize("name", ["dqn", "ppo"])
def test_restore_equals_save_bit_for_bit(name, request, tmp_path):
    agent = request.getfixturevalue(name)
    manager = CheckpointManager(str(tmp_path / "ckpts"))
    path = manager.save(agent, {"logger": {}})
    restored = manager.load_agent(path, type(agent))
    assert restored.num_timesteps == agent.num_timesteps
    # every variable of every trackable (weights, optimizer slots, counters) and the TF RNG, live
    for key, obj in agent.trackables().items():
        other = restored.trackables()[key]
        va = obj.variables if hasattr(obj, "variables") else [obj]
        vb = other.variables if hasattr(other, "variables") else [other]
        assert len(va) == len(vb) > 0
        for x, y in zip(va, vb):
            assert np.array_equal(x.numpy(), y.numpy()), f"{key}/{x.name}"
    assert np.array_equal(agent.tf_rng.state.numpy(), restored.tf_rng.state.numpy())
    assert agent.rng.bit_generator.state == restored.rng.bit_generator.state
    # and what is saved again is identical, npz arrays (state, replay buffer) included
    restored.save(str(tmp_path / "again"))
    assert_same_files(os.path.join(path, "agent"), str(tmp_path / "again"))
    # the numpy state (PPO: its observation and reward normalizers), live
    state, again = agent.numpy_state(), restored.numpy_state()
    assert sorted(state) == sorted(again)
    for k in state:
        assert np.array_equal(state[k], again[k]), k
    if name == "dqn":
        assert os.path.exists(os.path.join(path, "agent", "replay.npz"))
        assert len(restored.store.replay) == len(agent.store.replay) > 0
    else:
        assert any(k.startswith("obs_norm") for k in state), sorted(state)
    obs = np.zeros((3,) + agent.observation_space.shape, np.float32)
    assert np.array_equal(agent.act(obs, deterministic=False), restored.act(obs, deterministic=False))


def test_keeps_the_last_k_and_points_latest_at_the_newest(dqn, tmp_path):
    manager = CheckpointManager(str(tmp_path), keep=2)
    start = dqn.num_timesteps
    try:
        for step in (100, 200, 300, 400):
            dqn.num_timesteps = step
            manager.save(dqn, {})
    finally:
        dqn.num_timesteps = start
    assert [s for s, _ in manager.checkpoints()] == [300, 400]
    assert manager.latest().endswith("step_000000400")
    assert open(os.path.join(tmp_path, "latest")).read().strip() == "step_000000400"


def test_a_crash_while_saving_leaves_the_previous_checkpoint_usable(dqn, tmp_path, monkeypatch):
    manager = CheckpointManager(str(tmp_path), keep=3)
    good = manager.save(dqn, {"n": 1})
    real_save = type(dqn).save

    def dying_save(self, path):
        real_save(self, path)
        with open(os.path.join(path, "ckpt", "agent.index"), "wb") as fh:
            fh.write(b"half")
        raise KeyboardInterrupt  # killed in the middle of the checkpoint

    monkeypatch.setattr(type(dqn), "save", dying_save)
    dqn.num_timesteps += 100
    try:
        with pytest.raises(KeyboardInterrupt):
            manager.save(dqn, {"n": 2})
    finally:
        dqn.num_timesteps -= 100
        monkeypatch.undo()
    assert manager.latest() == good and [p for _, p in manager.checkpoints()] == [good]
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")]
    assert manager.load_agent(good, type(dqn)).num_timesteps == dqn.num_timesteps


def test_leftovers_of_a_killed_save_are_ignored_and_cleaned(dqn, tmp_path):
    manager = CheckpointManager(str(tmp_path))
    good = manager.save(dqn, {})
    os.makedirs(os.path.join(tmp_path, ".tmp-step_000009999-abc", "agent"))
    os.makedirs(os.path.join(tmp_path, "step_000009999"))  # no run_state.json: incomplete
    with open(os.path.join(tmp_path, "latest"), "w") as fh:
        fh.write("step_000012345\n")  # points at nothing
    assert manager.latest() == good
    manager.clean_stale()
    assert ".tmp-step_000009999-abc" not in os.listdir(tmp_path)


def corrupt(path, how):
    agent_dir = os.path.join(path, "agent")
    if how == "truncated weights":
        data = os.path.join(agent_dir, "ckpt", "agent.data-00000-of-00001")
        with open(data, "r+b") as fh:
            fh.truncate(os.path.getsize(data) // 2)
    elif how == "missing index":
        os.remove(os.path.join(agent_dir, "ckpt", "agent.index"))
    elif how == "garbage agent.json":
        with open(os.path.join(agent_dir, "agent.json"), "w") as fh:
            fh.write("{not json")
    elif how == "missing agent.json":
        os.remove(os.path.join(agent_dir, "agent.json"))
    elif how == "garbage state.npz":
        with open(os.path.join(agent_dir, "state.npz"), "wb") as fh:
            fh.write(b"PK\x03\x04 nonsense")
    elif how == "truncated replay":
        replay = os.path.join(agent_dir, "replay.npz")
        with open(replay, "r+b") as fh:
            fh.truncate(os.path.getsize(replay) // 3)
    elif how == "garbage run_state":
        with open(os.path.join(path, "run_state.json"), "w") as fh:
            fh.write("[1, 2")


@pytest.mark.parametrize("how", ["truncated weights", "missing index", "garbage agent.json", "missing agent.json",
                                 "garbage state.npz", "truncated replay", "garbage run_state"])
def test_a_corrupt_checkpoint_fails_with_a_plain_message(dqn, tmp_path, how):
    manager = CheckpointManager(str(tmp_path))
    path = manager.save(dqn, {})
    corrupt(path, how)
    with pytest.raises(CheckpointError) as info:
        manager.read_run_state(path)
        manager.load_agent(path, type(dqn))
    message = str(info.value)
    assert path in message or "run_state.json" in message
    assert "Traceback" not in message and len(message) < 700


def test_a_checkpoint_of_another_algorithm_is_refused(dqn, tmp_path):
    path = CheckpointManager(str(tmp_path)).save(dqn, {})
    with pytest.raises(CheckpointError, match="holds a DQN agent, not PPO"):
        CheckpointManager.load_agent(path, get_algorithm("ppo"))
