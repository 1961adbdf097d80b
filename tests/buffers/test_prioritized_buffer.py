"""`PrioritizedReplayBuffer`: sampling frequencies, importance weights, priorities, errors."""
import numpy as np
import pytest

from tlrl.buffers import PrioritizedReplayBuffer, ReplayBuffer
from tests.buffers.helpers import BOX1, DISCRETE, add_steps, flags


def per_buffer(capacity=8, n_envs=1, steps=None, **kwargs):
    buf = PrioritizedReplayBuffer(capacity, BOX1, DISCRETE, n_envs=n_envs, **kwargs)
    steps = capacity // n_envs if steps is None else steps
    add_steps(buf, np.zeros((steps, n_envs)), flags(steps, n_envs), flags(steps, n_envs))
    return buf


def test_sampling_frequencies_match_priorities_to_the_power_alpha():
    buf = per_buffer(64, alpha=0.6, seed=1)
    td = np.arange(64.0) % 8  # |TD errors| 0..7, eight slots each
    buf.update_priorities(np.arange(64), td)
    p = (np.arange(8) + 1e-6) ** 0.6
    expected = p / p.sum()
    draws = np.concatenate([buf.sample(64).indices for _ in range(3125)])  # 200,000 draws
    freq = np.bincount(draws % 8, minlength=8) / draws.size
    # Sampling proportional to |TD| (alpha ignored) or uniformly would be off by 40% or more.
    np.testing.assert_allclose(freq[1:], expected[1:], rtol=0.02)
    assert freq[0] < 1e-3  # priority eps ** alpha ~ 2.5e-4 of the total


def test_stratified_sampling_is_unbiased_for_odd_batch_sizes():
    buf = per_buffer(5, alpha=1.0, eps=1.0, seed=2)
    buf.update_priorities(np.arange(5), np.array([0.0, 1.0, 2.0, 3.0, 4.0]))  # stored 1..5, total 15
    draws = np.concatenate([buf.sample(3).indices for _ in range(6000)])
    freq = np.bincount(draws, minlength=5) / draws.size
    np.testing.assert_allclose(freq, np.arange(1, 6) / 15, rtol=0.05)


def test_importance_weights_match_a_hand_computed_case():
    buf = per_buffer(4, alpha=1.0, eps=0.5, seed=0)
    buf.update_priorities(np.arange(4), np.array([0.5, 1.5, 3.5, 1.5]))  # stored p = 1, 2, 4, 2; total 9
    np.testing.assert_array_equal(buf.priorities, [1.0, 2.0, 4.0, 2.0])
    # N = 4, P = p / 9, w = (N P) ** -0.5 = (9 / (4 p)) ** 0.5 = 1.5, 1.0607, 0.75; max_w = 1.5 (p = 1)
    expected = {1.0: 1.0, 2.0: 1.0607 / 1.5, 4.0: 0.75 / 1.5}
    for _ in range(20):
        batch = buf.sample(4, beta=0.5)
        for i, w in zip(batch.indices, batch.weights):
            assert w == pytest.approx(expected[buf.priorities[i]], rel=1e-4)


def test_beta_defaults_to_the_buffer_setting_and_zero_gives_unit_weights():
    buf = per_buffer(4, beta=0.0, seed=0)
    buf.update_priorities(np.arange(4), np.array([0.1, 1.0, 5.0, 9.0]))
    np.testing.assert_array_equal(buf.sample(4).weights, 1.0)
    buf.beta = 1.0
    assert buf.sample(4).weights.min() < 1.0


def test_new_transitions_get_the_max_priority_seen():
    buf = per_buffer(8, steps=2, alpha=1.0, eps=1e-6, seed=0)
    np.testing.assert_array_equal(buf.priorities[:2], 1.0)  # the initial max
    buf.update_priorities(np.array([0, 1]), np.array([4.0, 0.5]))
    add_steps(buf, np.zeros((1, 1)), flags(1, 1), flags(1, 1))
    assert buf.priorities[2] == pytest.approx(4.0 + 1e-6)
    assert buf.max_priority == pytest.approx(4.0 + 1e-6)


def test_overwritten_slots_get_the_max_priority_and_only_stored_slots_are_sampled():
    buf = per_buffer(4, n_envs=2, steps=1, seed=0)  # 2 of 4 slots stored
    buf.update_priorities(np.array([0, 1]), np.array([2.0, 3.0]))
    assert set(np.concatenate([buf.sample(2).indices for _ in range(200)])) <= {0, 1}


def test_prioritized_batches_carry_nstep_returns_like_the_uniform_buffer():
    kwargs = dict(n_envs=2, n_step=3, gamma=0.5)
    uniform = ReplayBuffer(8, BOX1, DISCRETE, **kwargs)
    per = PrioritizedReplayBuffer(8, BOX1, DISCRETE, **kwargs, seed=0)
    rewards = np.arange(12, dtype=np.float32).reshape(6, 2)
    for buf in (uniform, per):
        add_steps(buf, rewards, flags(6, 2, (3, 0)), flags(6, 2, (4, 0), (2, 1)))
    batch = per.sample(6)
    expected = uniform.gather(batch.indices)
    for name in ("obs", "action", "reward", "next_obs", "discount"):
        np.testing.assert_array_equal(getattr(batch, name), getattr(expected, name))


@pytest.mark.parametrize(
    "indices, priorities, message",
    [
        (np.array([0, 8]), np.ones(2), r"indices must lie in \[0, 8\)"),
        (np.array([0, 1]), np.ones(3), "same length"),
        (np.array([0.0]), np.ones(1), "indices must be integers"),
        (np.array([0]), np.array([-1.0]), r"finite and >= 0 \(pass \|TD error\|\)"),
        (np.array([0]), np.array([np.inf]), "finite and >= 0"),
    ],
)
def test_update_priorities_rejects_bad_arguments(indices, priorities, message):
    with pytest.raises(ValueError, match=message):
        per_buffer(8).update_priorities(indices, priorities)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"alpha": -0.1}, "alpha must be a number >= 0"),
        ({"beta": -1}, "beta must be a number >= 0"),
        ({"eps": 0.0}, "eps must be > 0"),
    ],
)
def test_constructor_rejects_bad_prioritization_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PrioritizedReplayBuffer(8, BOX1, DISCRETE, **kwargs)


def test_sampling_an_empty_prioritized_buffer_is_an_error():
    with pytest.raises(ValueError, match="cannot sample from an empty PrioritizedReplayBuffer"):
        PrioritizedReplayBuffer(8, BOX1, DISCRETE).sample(2)


def test_a_prioritized_batch_larger_than_the_buffer_draws_with_replacement_by_priority():
    buf = per_buffer(8, steps=2, alpha=1.0, eps=1e-6, seed=0)
    buf.update_priorities(np.array([0, 1]), np.array([1.0, 3.0]))
    batch = buf.sample(128, beta=1.0)
    assert batch.indices.shape == (128,) and set(batch.indices.tolist()) == {0, 1}
    # stratified over a total of 4: the segments below 1 pick slot 0, the rest slot 1
    assert np.count_nonzero(batch.indices == 0) == 32
    np.testing.assert_allclose(batch.weights[batch.indices == 1], 1 / 3, rtol=1e-5)
