"""GAE(lambda) of `tlrl.buffers.gae`, against hand-computed arrays."""
import numpy as np
import pytest

from tlrl.buffers import gae
from tests.buffers.helpers import flags

# Two envs, 4 steps, gamma = 0.5, lambda = 0.5 (so gamma * lambda = 0.25).
# env 0: terminated at t=1; env 1: truncated at t=2 with V(final obs) = 4.
REWARDS = np.array([[1, 2], [1, 0], [1, 2], [1, 0]], np.float32)
VALUES = np.array([[1, 0], [2, 1], [3, 0], [4, 1]], np.float32)
LAST_VALUE = np.array([8, 2], np.float32)
TERMINATED = flags(4, 2, (1, 0))
TRUNCATED = flags(4, 2, (2, 1))
FINAL_VALUES = np.zeros((4, 2), np.float32)
FINAL_VALUES[2, 1] = 4.0


def test_gae_matches_hand_computed_arrays_with_two_envs_ending_at_different_steps():
    adv, ret = gae(REWARDS, VALUES, LAST_VALUE, TERMINATED, TRUNCATED, FINAL_VALUES, gamma=0.5, lam=0.5)
    # env 0 deltas: 1 + .5*2 - 1 = 1, 1 + 0 - 2 = -1 (terminated), 1 + .5*4 - 3 = 0, 1 + .5*8 - 4 = 1
    #   A3 = 1, A2 = 0 + .25*1 = .25, A1 = -1 (no carry across the end), A0 = 1 + .25*(-1) = .75
    # env 1 deltas: 2 + .5*1 - 0 = 2.5, 0 + 0 - 1 = -1, 2 + .5*4 - 0 = 4 (truncated: V(final)=4), 0 + .5*2 - 1 = 0
    #   A3 = 0, A2 = 4 (no carry), A1 = -1 + .25*4 = 0, A0 = 2.5 + .25*0 = 2.5
    np.testing.assert_allclose(adv, [[0.75, 2.5], [-1.0, 0.0], [0.25, 4.0], [1.0, 0.0]])
    np.testing.assert_allclose(ret, [[1.75, 2.5], [1.0, 1.0], [3.25, 4.0], [5.0, 1.0]])
    assert adv.dtype == np.float32 and ret.dtype == np.float32


def test_gae_bootstraps_on_truncation():
    adv, _ = gae([[1.0]], [[0.0]], [100.0], [[False]], [[True]], [[3.0]], gamma=0.5, lam=0.9)
    assert adv[0, 0] == pytest.approx(1.0 + 0.5 * 3.0)  # from V(final obs), not from last_value


def test_gae_does_not_bootstrap_on_termination():
    adv, _ = gae([[1.0]], [[0.5]], [100.0], [[True]], [[False]], [[3.0]], gamma=0.5, lam=0.9)
    assert adv[0, 0] == pytest.approx(1.0 - 0.5)


def test_gae_with_lambda_one_gives_discounted_returns_minus_values():
    rewards = np.ones((3, 1))
    adv, ret = gae(rewards, np.zeros((3, 1)), [8.0], np.zeros((3, 1), bool), np.zeros((3, 1), bool), None, 0.5, 1.0)
    np.testing.assert_allclose(ret[:, 0], [1 + 0.5 + 0.25 + 0.125 * 8, 1 + 0.5 + 0.25 * 8, 1 + 0.5 * 8])


def test_gae_requires_final_values_when_a_step_is_truncated():
    with pytest.raises(ValueError, match="final_values is required"):
        gae(REWARDS, VALUES, LAST_VALUE, TERMINATED, TRUNCATED, None, gamma=0.5, lam=0.5)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("values", np.zeros((3, 2)), "values has shape"),
        ("last_value", np.zeros(3), "last_value has shape"),
        ("final_values", np.zeros((4, 1)), "final_values has shape"),
        ("rewards", np.zeros(4), r"rewards must be \[T, n_envs\]"),
    ],
)
def test_gae_rejects_misshaped_inputs_with_a_clear_message(field, value, message):
    args = dict(rewards=REWARDS, values=VALUES, last_value=LAST_VALUE, terminated=TERMINATED,
                truncated=TRUNCATED, final_values=FINAL_VALUES)
    args[field] = value
    with pytest.raises(ValueError, match=message):
        gae(gamma=0.5, lam=0.5, **args)
