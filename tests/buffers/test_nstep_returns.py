"""n-step returns of `tlrl.buffers.nstep`, against hand-computed arrays."""
import numpy as np
import pytest

from tlrl.buffers import nstep_returns, nstep_window
from tests.buffers.helpers import flags

# Two envs, 6 steps, gamma = 0.5, n = 3.
# env 0: rewards 1..6, terminated at t=3, truncated at t=4.
# env 1: rewards 10..60, truncated at t=2.
REWARDS = np.array([[1, 10], [2, 20], [3, 30], [4, 40], [5, 50], [6, 60]], np.float32)
TERMINATED = flags(6, 2, (3, 0))
TRUNCATED = flags(6, 2, (4, 0), (2, 1))


def test_nstep_returns_match_hand_computed_arrays_across_envs_and_episode_ends():
    returns, discounts, offsets = nstep_returns(REWARDS, TERMINATED, TRUNCATED, gamma=0.5, n_step=3)
    # env 0: t0 = 1 + .5*2 + .25*3; t1 = 2 + .5*3 + .25*4 (ends by termination at t3);
    #        t2 = 3 + .5*4 (terminates); t3 = 4; t4 = 5 (truncated); t5 = 6 (end of data)
    # env 1: t0 = 10 + 10 + 7.5 (truncated at its 3rd step); t1 = 20 + 15; t2 = 30;
    #        t3 = 40 + 25 + 15; t4 = 50 + 30 (end of data); t5 = 60
    np.testing.assert_allclose(returns, [[2.75, 27.5], [4.5, 35.0], [5.0, 30.0], [4.0, 80.0], [5.0, 80.0], [6.0, 60.0]])
    np.testing.assert_allclose(discounts, [[0.125, 0.125], [0.0, 0.25], [0.0, 0.5], [0.0, 0.125], [0.5, 0.25], [0.5, 0.5]])
    np.testing.assert_array_equal(offsets, [[2, 2], [2, 1], [1, 0], [0, 2], [0, 1], [0, 0]])
    assert returns.dtype == np.float32 and discounts.dtype == np.float32 and offsets.dtype == np.int64


def test_truncation_stops_the_segment_but_still_bootstraps():
    r, d, o = nstep_returns([1.0, 1.0, 1.0], [False] * 3, [True, False, False], gamma=0.9, n_step=3)
    assert (r[0], d[0], o[0]) == (1.0, np.float32(0.9), 0)


def test_termination_stops_the_segment_without_bootstrap():
    r, d, o = nstep_returns([1.0, 1.0, 1.0], [True, False, False], [False] * 3, gamma=0.9, n_step=3)
    assert (r[0], d[0], o[0]) == (1.0, 0.0, 0)


def test_terminated_and_truncated_together_count_as_termination():
    r, d, o = nstep_returns([1.0, 2.0], [True, False], [True, False], gamma=0.5, n_step=2)
    assert (r[0], d[0], o[0]) == (1.0, 0.0, 0)


def test_one_step_returns_are_the_rewards():
    r, d, o = nstep_returns(REWARDS, TERMINATED, TRUNCATED, gamma=0.5, n_step=1)
    np.testing.assert_array_equal(r, REWARDS)
    np.testing.assert_array_equal(d, np.where(TERMINATED, 0.0, 0.5))
    assert not o.any()


def test_window_horizon_cuts_segments_without_termination():
    rewards = np.array([[1.0, 2.0, 4.0], [1.0, 2.0, 4.0], [1.0, 2.0, 4.0]])
    none = np.zeros((3, 3), bool)
    r, d, o = nstep_window(rewards, none, none, 0.5, horizon=[1, 2, 3])
    np.testing.assert_allclose(r, [1.0, 2.0, 3.0])
    np.testing.assert_allclose(d, [0.5, 0.25, 0.125])
    np.testing.assert_array_equal(o, [0, 1, 2])


def test_window_accepts_extra_leading_dims():
    rewards = np.ones((2, 3, 4), np.float32)
    done = np.zeros((2, 3, 4), bool)
    r, d, o = nstep_window(rewards, done, done, 0.5)
    assert r.shape == d.shape == o.shape == (2, 3)
    np.testing.assert_allclose(r, 1.875)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(rewards=[[1.0, 2.0]], terminated=[[False]], truncated=[[False, False]]), "share one shape"),
        (dict(rewards=[[1.0, 2.0]], terminated=[[False, False]], truncated=[[False, False]], horizon=[3]), r"\[1, 2\]"),
        (dict(rewards=[[1.0, 2.0]], terminated=[[False, False]], truncated=[[False, False]], horizon=[1, 1]), "horizon has shape"),
    ],
)
def test_nstep_window_rejects_bad_arguments_with_a_clear_message(kwargs, message):
    with pytest.raises(ValueError, match=message):
        nstep_window(gamma=0.9, **kwargs)


def test_nstep_returns_rejects_a_non_positive_n_step():
    with pytest.raises(ValueError, match="n_step must be a positive integer"):
        nstep_returns([1.0], [False], [False], 0.9, 0)
