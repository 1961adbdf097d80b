"""`RolloutBuffer`: GAE through the buffer, flat outputs, Dict observations, errors."""
import gymnasium as gym
import numpy as np
import pytest

from tlrl.buffers import RolloutBuffer, gae
from tests.buffers.helpers import BOX1, DISCRETE


def filled(n_steps=4, n_envs=2, obs_space=BOX1):
    """The two-env case of test_gae: env 0 terminates at t=1, env 1 is truncated at t=2 (V(final)=4)."""
    buf = RolloutBuffer(n_steps, n_envs, obs_space, DISCRETE, gamma=0.5, gae_lambda=0.5)
    rewards = [[1, 2], [1, 0], [1, 2], [1, 0]]
    values = [[1, 0], [2, 1], [3, 0], [4, 1]]
    for t in range(n_steps):
        obs = (10.0 * t + np.arange(n_envs, dtype=np.float32))[:, None]
        buf.add(obs, [t % 3, (t + 1) % 3], rewards[t], [t == 1, False], [False, t == 2],
                value=np.array(values[t], np.float32)[:, None], log_prob=[-0.5 * t, -1.0],
                final_value=[0.0, 4.0] if t == 2 else None)
    return buf


def test_rollout_buffer_computes_hand_checked_gae_and_returns_flat_time_major_arrays():
    buf = filled()
    assert buf.full and len(buf) == 8
    buf.compute_returns_and_advantages(last_value=np.array([[8.0], [2.0]]))
    out = buf.get()
    assert set(out) == {"obs", "action", "log_prob", "value", "advantage", "return"}
    # flat index = t * n_envs + env; numbers from test_gae's hand computation
    np.testing.assert_allclose(out["advantage"], [0.75, 2.5, -1.0, 0.0, 0.25, 4.0, 1.0, 0.0])
    np.testing.assert_allclose(out["return"], [1.75, 2.5, 1.0, 1.0, 3.25, 4.0, 5.0, 1.0])
    np.testing.assert_array_equal(out["obs"][:, 0], [0, 1, 10, 11, 20, 21, 30, 31])
    np.testing.assert_array_equal(out["action"], [0, 1, 1, 2, 2, 0, 0, 1])
    np.testing.assert_allclose(out["log_prob"], [0, -1, -0.5, -1, -1, -1, -1.5, -1])
    assert out["obs"].shape == (8, 1) and out["advantage"].dtype == np.float32


def test_get_returns_copies_that_survive_the_next_rollout():
    buf = filled()
    buf.compute_returns_and_advantages([8.0, 2.0])
    out = buf.get()
    buf.reset()
    assert not buf.full and len(buf) == 0
    buf.add(np.full((2, 1), 99.0), [0, 0], [0, 0], [False, False], [False, False], [0, 0], [0, 0])
    assert out["obs"][0, 0] == 0.0


def test_truncation_without_final_value_is_refused_at_add():
    buf = RolloutBuffer(2, 2, BOX1, DISCRETE)
    with pytest.raises(ValueError, match=r"final_value is required: envs \[1\] were truncated"):
        buf.add(np.zeros((2, 1)), [0, 0], [0, 0], [False, False], [False, True], [0, 0], [0, 0])


def test_final_value_is_ignored_where_the_episode_did_not_end_by_truncation():
    a, b = RolloutBuffer(1, 2, BOX1, DISCRETE, gamma=0.5), RolloutBuffer(1, 2, BOX1, DISCRETE, gamma=0.5)
    a.add(np.zeros((2, 1)), [0, 0], [1, 1], [True, False], [False, False], [0, 0], [0, 0], final_value=[50, 50])
    b.add(np.zeros((2, 1)), [0, 0], [1, 1], [True, False], [False, False], [0, 0], [0, 0])
    for buf in (a, b):
        buf.compute_returns_and_advantages([2.0, 2.0])
    np.testing.assert_array_equal(a.get()["advantage"], b.get()["advantage"])
    np.testing.assert_allclose(a.get()["advantage"], [1.0, 2.0])


def test_rollout_buffer_uses_the_gae_function():
    buf = filled()
    buf.compute_returns_and_advantages([8.0, 2.0])
    adv, _ = gae(buf._reward, buf._value, [8.0, 2.0], buf._terminated, buf._truncated, buf._final_value, 0.5, 0.5)
    np.testing.assert_array_equal(buf.get()["advantage"], adv.reshape(-1))


def test_dict_observations_come_back_as_a_dict_of_flat_arrays():
    space = gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (3, 3), np.uint8), "x": BOX1})
    buf = RolloutBuffer(2, 2, space, DISCRETE)
    for t in range(2):
        obs = {"image": np.full((2, 3, 3), t, np.uint8), "x": np.zeros((2, 1))}
        buf.add(obs, [0, 1], [0, 0], [False, False], [False, False], [0, 0], [0, 0])
    buf.compute_returns_and_advantages([0.0, 0.0])
    obs = buf.get()["obs"]
    assert obs["image"].shape == (4, 3, 3) and obs["image"].dtype == np.uint8 and obs["x"].shape == (4, 1)
    np.testing.assert_array_equal(obs["image"][:, 0, 0], [0, 0, 1, 1])


def test_adding_to_a_full_buffer_is_an_error():
    buf = filled()
    with pytest.raises(ValueError, match=r"RolloutBuffer is full \(4 steps\): call reset\(\)"):
        buf.add(np.zeros((2, 1)), [0, 0], [0, 0], [False, False], [False, False], [0, 0], [0, 0])


def test_get_before_computing_advantages_is_an_error():
    with pytest.raises(ValueError, match="call compute_returns_and_advantages"):
        filled().get()


def test_computing_advantages_before_the_buffer_is_full_is_an_error():
    buf = RolloutBuffer(3, 1, BOX1, DISCRETE)
    buf.add(np.zeros((1, 1)), [0], [0], [False], [False], [0], [0])
    with pytest.raises(ValueError, match="not full: 1 of 3 steps added"):
        buf.compute_returns_and_advantages([0.0])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(value=[0, 0, 0]), r"value has shape \(3,\), expected \(2,\)"),
        (dict(log_prob=np.zeros((2, 2))), r"log_prob has shape \(2, 2\)"),
        (dict(obs=np.zeros((2, 2))), r"obs has shape \(2, 2\), expected \(2, 1\)"),
    ],
)
def test_add_rejects_misshaped_inputs_with_a_clear_message(kwargs, message):
    step = dict(obs=np.zeros((2, 1)), action=[0, 0], reward=[0, 0], terminated=[False, False],
                truncated=[False, False], value=[0, 0], log_prob=[0, 0])
    step.update(kwargs)
    with pytest.raises(ValueError, match=message):
        RolloutBuffer(2, 2, BOX1, DISCRETE).add(**step)


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        ((0, 1), {}, "n_steps must be a positive integer"),
        ((4, -1), {}, "n_envs must be a positive integer"),
        ((4, 1), {"gae_lambda": 2.0}, r"gae_lambda must be a number in \[0, 1\]"),
    ],
)
def test_constructor_rejects_bad_arguments(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        RolloutBuffer(*args, BOX1, DISCRETE, **kwargs)
