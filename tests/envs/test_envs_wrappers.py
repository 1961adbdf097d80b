"""RunningMeanStd, ObservationNormalizer and RewardNormalizer."""
import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tlrl.envs import ObservationNormalizer, RewardNormalizer, RunningMeanStd

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def batches(draw):
    dim = draw(st.integers(1, 3))
    n_batches = draw(st.integers(1, 6))
    return [draw(hnp.arrays(np.float64, (draw(st.integers(1, 20)), dim), elements=finite)) for _ in range(n_batches)]


@settings(max_examples=60, deadline=None)
@given(batches())
def test_running_mean_std_matches_numpy_over_concatenated_batches(bs):
    rms = RunningMeanStd(shape=(bs[0].shape[1],))
    for b in bs:
        rms.update(b)
    everything = np.concatenate(bs)
    np.testing.assert_allclose(rms.mean, everything.mean(axis=0), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(rms.var, everything.var(axis=0), rtol=1e-7, atol=1e-7)
    assert rms.count == len(everything)
    assert rms.mean.dtype == np.float64 and rms.var.dtype == np.float64


def test_running_mean_std_handles_scalars_images_and_rejects_wrong_shapes():
    rms = RunningMeanStd(())
    rms.update(np.array([1.0, 2.0, 3.0]))
    rms.update(np.float32(4.0))
    assert rms.mean == pytest.approx(2.5) and rms.var == pytest.approx(1.25) and rms.count == 4
    image = RunningMeanStd((2, 2, 1))
    image.update(np.arange(24, dtype=np.uint8).reshape(6, 2, 2, 1))
    np.testing.assert_allclose(image.mean[..., 0], np.arange(24).reshape(6, 2, 2).mean(0))
    with pytest.raises(ValueError, match=r"shape \(2, 2, 1\) got a batch of shape \(3, 4\)"):
        image.update(np.zeros((3, 4)))


def test_before_any_update_normalization_is_the_identity_up_to_clipping():
    norm = ObservationNormalizer((2,), clip=5.0)
    np.testing.assert_allclose(norm.normalize(np.array([[0.5, -7.0]])), [[0.5, -5.0]], rtol=1e-6)


def test_observation_normalizer_normalizes_and_clips_batches():
    rng = np.random.default_rng(0)
    norm = ObservationNormalizer((3,), clip=2.0)
    batch = rng.normal([1.0, -5.0, 100.0], [1.0, 0.1, 30.0], size=(5000, 3))
    norm.update(batch)
    out = norm.normalize(batch)
    assert out.dtype == np.float32 and out.shape == batch.shape
    assert np.all(np.abs(out) <= 2.0)
    np.testing.assert_allclose(norm.normalize(batch[None, :10]), out[None, :10])  # any leading dims
    np.testing.assert_allclose(np.median(out, axis=0), 0.0, atol=0.1)


def test_observation_normalizer_state_round_trips_through_npz_without_pickle():
    rng = np.random.default_rng(1)
    norm = ObservationNormalizer((4,))
    for _ in range(3):
        norm.update(rng.normal(size=(16, 4)))
    state = norm.get_state()
    assert set(state) == {"mean", "var", "count"} and all(isinstance(v, np.ndarray) for v in state.values())
    buffer = io.BytesIO()
    np.savez(buffer, **state)
    buffer.seek(0)
    loaded = dict(np.load(buffer, allow_pickle=False))
    fresh = ObservationNormalizer((4,))
    fresh.set_state(loaded)
    x = rng.normal(size=(8, 4))
    np.testing.assert_array_equal(fresh.normalize(x), norm.normalize(x))
    state["mean"][:] = 99.0  # get_state returns copies
    assert not np.any(norm.get_state()["mean"] == 99.0)
    with pytest.raises(ValueError, match="shapes"):
        ObservationNormalizer((3,)).set_state(loaded)
    with pytest.raises(ValueError, match="missing"):
        fresh.set_state({"mean": loaded["mean"]})


def test_frozen_observation_normalizer_does_not_update():
    norm = ObservationNormalizer((2,))
    norm.update(np.ones((4, 2)))
    before = norm.get_state()
    norm.frozen = True
    norm.update(np.full((100, 2), 50.0))
    after = norm.get_state()
    for key in before:
        np.testing.assert_array_equal(before[key], after[key])
    norm.frozen = False
    norm.update(np.full((100, 2), 50.0))
    assert norm.get_state()["count"] == 104


def test_reward_normalizer_tracks_discounted_return_reset_on_done():
    norm = RewardNormalizer(gamma=0.5, eps=0.0)
    # Two envs; env 0 ends its episode after the second step.
    norm.update(np.array([1.0, 2.0]), np.array([False, False]))   # returns 1, 2
    norm.update(np.array([1.0, 0.0]), np.array([True, False]))    # returns 1.5, 1 -> env 0 reset
    norm.update(np.array([1.0, 4.0]), np.array([False, False]))   # returns 1 (fresh), 4.5
    returns = np.array([1.0, 2.0, 1.5, 1.0, 1.0, 4.5])
    assert norm.rms.var == pytest.approx(returns.var())
    assert norm.get_state()["count"] == 6
    np.testing.assert_allclose(norm.normalize(np.array([2.0, -1.0])), np.array([2.0, -1.0]) / returns.std(),
                               rtol=1e-6)


def test_reward_normalizer_frozen_and_state_round_trip():
    norm = RewardNormalizer(gamma=0.9, clip=3.0)
    rng = np.random.default_rng(2)
    for _ in range(50):
        norm.update(rng.normal(size=4), rng.random(4) < 0.1)
    state = norm.get_state()
    norm.frozen = True
    norm.update(np.full(4, 1e6), np.zeros(4, bool))
    np.testing.assert_array_equal(norm.get_state()["var"], state["var"])
    other = RewardNormalizer(gamma=0.9, clip=3.0)
    other.set_state(state)
    r = np.array([0.5, -100.0, 3.0])
    np.testing.assert_array_equal(other.normalize(r), norm.normalize(r))
    assert np.abs(other.normalize(r)).max() <= 3.0
