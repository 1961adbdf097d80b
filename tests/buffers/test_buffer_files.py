"""save/load of every buffer: bit-exact round trips, identical samples after load, clear errors."""
import gymnasium as gym
import numpy as np
import pytest

from tlrl.buffers import PrioritizedReplayBuffer, ReplayBuffer, RolloutBuffer
from tests.buffers.helpers import BOX1, DISCRETE

DICT_SPACE = gym.spaces.Dict(
    {"image": gym.spaces.Box(0, 255, (6, 6, 3), np.uint8), "vec": gym.spaces.Box(-2.0, 3.0, (2,), np.float32)}
)
ACTION_SPACE = gym.spaces.Box(np.array([-1.0, 0.0], np.float32), np.array([1.0, 5.0], np.float32))


def fill(buf, steps, seed=0):
    rng = np.random.default_rng(seed)
    n = buf.n_envs
    for _ in range(steps):
        obs = {"image": rng.integers(0, 256, (n, 6, 6, 3), dtype=np.uint8), "vec": rng.normal(size=(n, 2))}
        nxt = {"image": rng.integers(0, 256, (n, 6, 6, 3), dtype=np.uint8), "vec": rng.normal(size=(n, 2))}
        buf.add(obs, rng.uniform(-1, 1, (n, 2)), rng.normal(size=n), nxt, rng.random(n) < 0.1, rng.random(n) < 0.1)


def assert_batches_equal(a, b):
    for name in a._fields:
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, dict):
            assert x.keys() == y.keys()
            for k in x:
                assert x[k].dtype == y[k].dtype and np.array_equal(x[k], y[k])
        else:
            assert x.dtype == y.dtype and np.array_equal(x, y), name


def assert_buffers_equal(a, b):
    attrs = [k for k, v in vars(a).items() if isinstance(v, (np.ndarray, dict))]
    for name in attrs:
        x, y = getattr(a, name), getattr(b, name)
        for key in (x if isinstance(x, dict) else [None]):
            u, v = (x[key], y[key]) if key is not None else (x, y)
            if isinstance(u, np.ndarray):
                assert u.dtype == v.dtype and u.shape == v.shape and np.array_equal(u, v), (name, key)
    assert len(a) == len(b) and a.observation_space == b.observation_space and a.action_space == b.action_space


@pytest.mark.parametrize("cls", [ReplayBuffer, PrioritizedReplayBuffer])
def test_replay_buffers_round_trip_bit_exactly_and_sample_identically_after_load(cls, tmp_path):
    buf = cls(24, DICT_SPACE, ACTION_SPACE, n_envs=3, n_step=3, gamma=0.97, seed=7)
    fill(buf, 11)  # wraps the 8 rows
    if cls is PrioritizedReplayBuffer:
        batch = buf.sample(5)
        buf.update_priorities(batch.indices, np.abs(batch.reward) + 0.3)
    buf.sample(4)  # move the RNG away from its seed
    path = buf.save(tmp_path / "buf")
    assert path.endswith("buf.npz")
    loaded = cls.load(path)
    assert type(loaded) is cls and (loaded.capacity, loaded.n_envs, loaded.n_step, loaded.gamma) == (24, 3, 3, 0.97)
    assert (loaded._pos, loaded.full) == (buf._pos, buf.full)
    assert_buffers_equal(buf, loaded)
    if cls is PrioritizedReplayBuffer:
        for name in ("_sum", "_min"):
            assert np.array_equal(getattr(buf._tree, name), getattr(loaded._tree, name))
        assert (loaded.alpha, loaded.beta, loaded.eps, loaded.max_priority) == (buf.alpha, buf.beta, buf.eps, buf.max_priority)
    for _ in range(3):
        assert_batches_equal(buf.sample(6), loaded.sample(6))
    fill(buf, 2, seed=1)
    fill(loaded, 2, seed=1)
    assert_batches_equal(buf.sample(6), loaded.sample(6))


def test_load_accepts_matching_spaces_and_rejects_mismatched_ones(tmp_path):
    buf = ReplayBuffer(8, BOX1, DISCRETE, seed=0)
    path = buf.save(tmp_path / "b.npz")
    assert ReplayBuffer.load(path, BOX1, DISCRETE).observation_space is BOX1
    with pytest.raises(ValueError, match="does not match the stored"):
        ReplayBuffer.load(path, gym.spaces.Box(-1, 1, (2,)), DISCRETE)


def test_rollout_buffer_round_trips_bit_exactly(tmp_path):
    buf = RolloutBuffer(4, 2, DICT_SPACE, ACTION_SPACE, gamma=0.9, gae_lambda=0.8)
    rng = np.random.default_rng(0)
    for _ in range(4):
        obs = {"image": rng.integers(0, 256, (2, 6, 6, 3), dtype=np.uint8), "vec": rng.normal(size=(2, 2))}
        buf.add(obs, rng.uniform(-1, 1, (2, 2)), rng.normal(size=2), [False, True], [True, False],
                value=rng.normal(size=2), log_prob=rng.normal(size=2), final_value=rng.normal(size=2))
    buf.compute_returns_and_advantages(rng.normal(size=2))
    loaded = RolloutBuffer.load(buf.save(tmp_path / "r"))
    assert_buffers_equal(buf, loaded)
    a, b = buf.get(), loaded.get()
    for k in a:
        for key in (a[k] if isinstance(a[k], dict) else [None]):
            x, y = (a[k][key], b[k][key]) if key else (a[k], b[k])
            assert x.dtype == y.dtype and np.array_equal(x, y)


@pytest.fixture
def saved_replay(tmp_path):
    buf = ReplayBuffer(8, BOX1, DISCRETE, seed=0)
    buf.add(np.zeros((1, 1)), [1], [1.0], np.ones((1, 1)), [False], [False])
    return buf.save(tmp_path / "replay.npz")


def test_truncated_file_gives_a_clear_error_naming_the_file(saved_replay, tmp_path):
    data = open(saved_replay, "rb").read()
    bad = tmp_path / "truncated.npz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"truncated\.npz.*not a readable tlrl ReplayBuffer file"):
        ReplayBuffer.load(bad)


def test_corrupted_bytes_give_a_clear_error_naming_the_file(saved_replay, tmp_path):
    data = bytearray(open(saved_replay, "rb").read())
    for i in range(100, len(data) - 200, 7):  # scribble over the stored arrays, keep the zip directory
        data[i] ^= 0xFF
    bad = tmp_path / "scribbled.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"scribbled\.npz"):
        ReplayBuffer.load(bad)


def test_a_file_that_is_not_a_buffer_gives_a_clear_error(tmp_path):
    other = tmp_path / "weights.npz"
    np.savez(other, w=np.zeros(3))
    with pytest.raises(ValueError, match=r"weights\.npz.*is not a tlrl buffer file"):
        ReplayBuffer.load(other)
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    with pytest.raises(ValueError, match=r"notes\.npz.*not a readable"):
        ReplayBuffer.load(text)


def test_a_file_of_another_buffer_type_gives_a_clear_error(saved_replay, tmp_path):
    with pytest.raises(ValueError, match=r"replay\.npz.*holds a ReplayBuffer, not a PrioritizedReplayBuffer"):
        PrioritizedReplayBuffer.load(saved_replay)
    with pytest.raises(ValueError, match="holds a ReplayBuffer, not a RolloutBuffer"):
        RolloutBuffer.load(saved_replay)
    rollout = RolloutBuffer(2, 1, BOX1, DISCRETE).save(tmp_path / "rollout")
    with pytest.raises(ValueError, match=r"rollout\.npz.*holds a RolloutBuffer, not a ReplayBuffer"):
        ReplayBuffer.load(rollout)


def test_a_file_with_a_misshaped_array_gives_a_clear_error(saved_replay, tmp_path):
    with np.load(saved_replay) as data:
        arrays = dict(data)
    arrays["reward"] = np.zeros((3, 1), np.float32)
    bad = tmp_path / "misshaped.npz"
    np.savez(bad, **arrays)
    with pytest.raises(ValueError, match=r"misshaped\.npz.*'reward' has shape \(3, 1\)"):
        ReplayBuffer.load(bad)


def test_loading_a_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no buffer file"):
        ReplayBuffer.load(tmp_path / "nothing.npz")


def test_save_and_load_accept_a_path_without_the_npz_suffix(tmp_path):
    ReplayBuffer(8, BOX1, DISCRETE).save(tmp_path / "plain")
    assert (tmp_path / "plain.npz").exists()
    assert ReplayBuffer.load(tmp_path / "plain").capacity == 8
