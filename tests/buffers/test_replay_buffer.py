"""`ReplayBuffer`: layout, n-step sampling across episode ends, envs and the ring wrap; spaces; errors."""
import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tlrl.buffers import ReplayBuffer
from tlrl.core import Batch, Transition
from tests.buffers.helpers import BOX1, DISCRETE, add_steps, flags


def filled_wrapped_buffer():
    """2 envs, 4 rows (capacity 8), n_step 3, gamma .5; 6 steps so the ring wrapped once.

    env 0: rewards 1..6, terminated at t=3, truncated at t=4.
    env 1: rewards 10..60, truncated at t=2.
    Rows now hold t=4 (row 0), t=5 (row 1, newest), t=2 (row 2, oldest), t=3 (row 3).
    """
    buf = ReplayBuffer(8, BOX1, DISCRETE, n_envs=2, n_step=3, gamma=0.5, seed=0)
    rewards = np.array([[1, 10], [2, 20], [3, 30], [4, 40], [5, 50], [6, 60]], np.float32)
    add_steps(buf, rewards, flags(6, 2, (3, 0)), flags(6, 2, (4, 0), (2, 1)))
    return buf


def test_nstep_batch_matches_hand_computed_values_across_episode_ends_envs_and_ring_wrap():
    buf = filled_wrapped_buffer()
    assert len(buf) == 8 and buf.full
    batch = buf.gather(np.arange(8))
    # slot = row * 2 + env. Segments never cross an episode end, never look past the newest
    # step t=5 (row 1) into the oldest one (row 2), and do cross the wrap from row 3 to row 0.
    #            t=4,e0  t=4,e1  t=5,e0  t=5,e1  t=2,e0  t=2,e1  t=3,e0  t=3,e1
    expected_reward = [5.0, 80.0, 6.0, 60.0, 5.0, 30.0, 4.0, 80.0]
    expected_discount = [0.5, 0.25, 0.5, 0.5, 0.0, 0.5, 0.0, 0.125]
    expected_next_obs = [40.5, 51.5, 50.5, 51.5, 30.5, 21.5, 30.5, 51.5]
    np.testing.assert_allclose(batch.reward, expected_reward)
    np.testing.assert_allclose(batch.discount, expected_discount)
    np.testing.assert_allclose(batch.next_obs[:, 0], expected_next_obs)
    np.testing.assert_allclose(batch.obs[:, 0], [40, 41, 50, 51, 20, 21, 30, 31])
    np.testing.assert_array_equal(batch.action, [1, 1, 2, 2, 2, 2, 0, 0])


def test_sample_returns_a_batch_consistent_with_its_indices():
    buf = filled_wrapped_buffer()
    batch = buf.sample(8)
    assert isinstance(batch, Batch)
    again = buf.gather(batch.indices)
    for name in ("obs", "action", "reward", "next_obs", "discount"):
        np.testing.assert_array_equal(getattr(batch, name), getattr(again, name))
    assert batch.indices.dtype == np.int64 and batch.weights.dtype == np.float32
    np.testing.assert_array_equal(batch.weights, 1.0)
    assert batch.reward.dtype == np.float32 and batch.discount.dtype == np.float32


def test_one_step_discount_is_gamma_unless_terminated():
    buf = ReplayBuffer(4, BOX1, DISCRETE, n_envs=2, gamma=0.9)
    add_steps(buf, [[1, 2]], flags(1, 2, (0, 0)), flags(1, 2, (0, 1)))
    batch = buf.gather(np.arange(2))
    np.testing.assert_allclose(batch.discount, [0.0, 0.9])
    np.testing.assert_allclose(batch.next_obs[:, 0], [0.5, 1.5])


def test_uniform_sampling_covers_all_slots_evenly():
    buf = ReplayBuffer(8, BOX1, DISCRETE, n_envs=2, seed=3)
    add_steps(buf, np.zeros((4, 2)), flags(4, 2), flags(4, 2))
    counts = np.bincount(np.concatenate([buf.sample(8).indices for _ in range(5000)]), minlength=8)
    np.testing.assert_allclose(counts / counts.sum(), 1 / 8, atol=0.01)


def test_capacity_is_rounded_down_to_a_multiple_of_n_envs():
    buf = ReplayBuffer(10, BOX1, DISCRETE, n_envs=4)
    assert buf.capacity == 8 and len(buf) == 0


def test_add_accepts_a_transition():
    buf = ReplayBuffer(4, BOX1, DISCRETE, n_envs=2)
    buf.add(Transition(np.zeros((2, 1)), np.array([0, 1]), np.ones(2), np.ones((2, 1)), np.zeros(2, bool), np.zeros(2, bool)))
    assert len(buf) == 2


def test_uint8_image_observations_stay_uint8():
    space = gym.spaces.Box(0, 255, (8, 8, 3), np.uint8)
    buf = ReplayBuffer(16, space, gym.spaces.Box(-1, 1, (2,)), n_envs=2, n_step=2, seed=0)
    obs = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    for _ in range(3):
        buf.add(obs, np.zeros((2, 2), np.float32), np.ones(2), obs, np.zeros(2, bool), np.zeros(2, bool))
    batch = buf.sample(4)
    assert batch.obs.dtype == np.uint8 and batch.next_obs.dtype == np.uint8 and batch.obs.shape == (4, 8, 8, 3)
    assert batch.action.dtype == np.float32 and batch.action.shape == (4, 2)
    np.testing.assert_array_equal(batch.obs, obs[batch.indices % 2])


def test_dict_observations_are_stored_per_key():
    space = gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (4, 4), np.uint8), "pos": gym.spaces.Box(-1, 1, (2,))})
    buf = ReplayBuffer(8, space, DISCRETE, n_envs=2, n_step=2, seed=0)
    for t in range(5):
        obs = {"image": np.full((2, 4, 4), t, np.uint8), "pos": np.full((2, 2), t, np.float32)}
        nxt = {"image": np.full((2, 4, 4), t + 1, np.uint8), "pos": np.full((2, 2), t + 1, np.float32)}
        buf.add(obs, np.zeros(2, np.int64), np.ones(2), nxt, np.zeros(2, bool), np.zeros(2, bool))
    batch = buf.gather(np.arange(8))
    assert set(batch.obs) == {"image", "pos"} and batch.obs["image"].dtype == np.uint8
    # rows hold t = 4, 1, 2, 3; two-step segments stop at the newest step t=4
    np.testing.assert_array_equal(batch.obs["image"][::2, 0, 0], [4, 1, 2, 3])
    np.testing.assert_array_equal(batch.next_obs["image"][::2, 0, 0], [5, 3, 4, 5])
    np.testing.assert_array_equal(batch.next_obs["pos"][::2, 0], [5, 3, 4, 5])


def naive_nstep(rewards, terminated, truncated, t, newest, n, gamma):
    """Reference: walk one env's stream from step t, one step at a time."""
    ret, k = 0.0, 0
    while True:
        ret += gamma**k * rewards[t + k]
        if terminated[t + k]:
            return ret, 0.0, t + k
        if truncated[t + k] or k + 1 == n or t + k == newest:
            return ret, gamma ** (k + 1), t + k
        k += 1


@settings(max_examples=60, deadline=None)
@given(
    n_envs=st.integers(1, 3),
    n_step=st.integers(1, 4),
    extra_rows=st.integers(0, 3),
    steps=st.integers(1, 16),
    seed=st.integers(0, 2**16),
)
def test_nstep_sampling_matches_a_step_by_step_reference(n_envs, n_step, extra_rows, steps, seed):
    rows = n_step + extra_rows
    gamma = 0.9
    rng = np.random.default_rng(seed)
    rewards = rng.integers(-3, 4, (steps, n_envs)).astype(np.float32)
    terminated = rng.random((steps, n_envs)) < 0.2
    truncated = rng.random((steps, n_envs)) < 0.2
    buf = ReplayBuffer(rows * n_envs, BOX1, DISCRETE, n_envs=n_envs, n_step=n_step, gamma=gamma)
    add_steps(buf, rewards, terminated, truncated)
    assert len(buf) == min(steps, rows) * n_envs
    batch = buf.gather(np.arange(len(buf)))
    for slot in range(len(buf)):
        row, env = divmod(slot, n_envs)
        t = max(s for s in range(steps) if s % rows == row)
        ret, disc, last = naive_nstep(rewards[:, env], terminated[:, env], truncated[:, env], t, steps - 1, n_step, gamma)
        assert batch.obs[slot, 0] == 10 * t + env
        assert batch.reward[slot] == pytest.approx(ret, rel=1e-6, abs=1e-6)
        assert batch.discount[slot] == pytest.approx(disc, rel=1e-6)
        assert batch.next_obs[slot, 0] == 10 * last + env + 0.5


# --- errors ---


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        ((-5,), {}, "capacity must be a positive integer"),
        ((0,), {}, "capacity must be a positive integer"),
        ((8,), {"n_envs": 0}, "n_envs must be a positive integer"),
        ((8,), {"n_step": 0}, "n_step must be a positive integer"),
        ((8,), {"n_envs": 4, "n_step": 3}, r"capacity // n_envs \(2\) must be at least n_step \(3\)"),
        ((8,), {"gamma": 1.5}, r"gamma must be a number in \[0, 1\]"),
        ((8,), {"seed": -1}, "seed must be a non-negative integer"),
    ],
)
def test_constructor_rejects_bad_arguments_with_a_clear_message(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ReplayBuffer(*args, BOX1, DISCRETE, **kwargs)


def test_unsupported_spaces_are_rejected_by_name():
    with pytest.raises(ValueError, match="unsupported space Tuple"):
        ReplayBuffer(8, gym.spaces.Tuple([BOX1, BOX1]), DISCRETE)
    with pytest.raises(ValueError, match="action_space: a Dict space is not supported"):
        ReplayBuffer(8, BOX1, gym.spaces.Dict({"a": DISCRETE}))


def good_step(n_envs=2):
    return dict(obs=np.zeros((n_envs, 1)), action=np.zeros(n_envs, np.int64), reward=np.zeros(n_envs),
                next_obs=np.zeros((n_envs, 1)), terminated=np.zeros(n_envs, bool), truncated=np.zeros(n_envs, bool))


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("obs", np.zeros((3, 1)), r"obs has shape \(3, 1\), expected \(2, 1\)"),
        ("next_obs", np.zeros((2,)), r"next_obs has shape \(2,\), expected \(2, 1\)"),
        ("action", np.zeros((2, 1), np.int64), r"action has shape \(2, 1\), expected \(2,\)"),
        ("action", np.zeros(2, np.float32), "action has dtype float32, which cannot be stored as int64"),
        ("reward", np.zeros(3), r"reward has shape \(3,\), expected \(2,\)"),
        ("terminated", np.zeros(2, np.float64), "terminated has dtype float64"),
    ],
)
def test_add_rejects_wrong_shapes_and_dtypes_with_a_clear_message(field, value, message):
    buf = ReplayBuffer(8, BOX1, DISCRETE, n_envs=2)
    step = good_step()
    step[field] = value
    with pytest.raises(ValueError, match=message):
        buf.add(**step)
    assert len(buf) == 0  # nothing was written


def test_add_with_unknown_or_missing_dict_keys_names_them():
    space = gym.spaces.Dict({"a": BOX1, "b": BOX1})
    buf = ReplayBuffer(8, space, DISCRETE)
    obs = {"a": np.zeros((1, 1)), "x": np.zeros((1, 1))}
    with pytest.raises(ValueError, match=r"unknown keys \['x'\], missing keys \['b'\]"):
        buf.add(obs, np.zeros(1, np.int64), np.zeros(1), obs, np.zeros(1, bool), np.zeros(1, bool))


def test_add_without_all_fields_is_a_type_error():
    with pytest.raises(TypeError, match="add\\(\\) needs"):
        ReplayBuffer(8, BOX1, DISCRETE).add(np.zeros((1, 1)))


def test_sampling_an_empty_buffer_is_an_error():
    with pytest.raises(ValueError, match="cannot sample from an empty ReplayBuffer"):
        ReplayBuffer(8, BOX1, DISCRETE).sample(1)


def test_a_batch_larger_than_the_buffer_draws_the_stored_transitions_with_replacement():
    # SB3 semantics, which the zoo's `learning_starts: 0` relies on: one stored transition is enough.
    buf = ReplayBuffer(8, BOX1, DISCRETE, n_envs=2, seed=0)
    add_steps(buf, np.zeros((1, 2)), flags(1, 2), flags(1, 2))
    batch = buf.sample(128)
    assert batch.indices.shape == (128,) and set(batch.indices.tolist()) == {0, 1}
    np.testing.assert_array_equal(batch.obs[:, 0], batch.indices.astype(np.float32))  # obs = 10 * t + env
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        buf.sample(0)


def test_gather_rejects_slots_that_are_not_stored():
    buf = ReplayBuffer(8, BOX1, DISCRETE, n_envs=2)
    add_steps(buf, np.zeros((1, 2)), flags(1, 2), flags(1, 2))
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 2\)"):
        buf.gather(np.array([2]))
