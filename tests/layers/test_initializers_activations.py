"""Initializers `(shape, dtype) -> tensor` and activations by name."""
import math

import numpy as np
import pytest
import tensorflow as tf

from tlrl.layers import Conv2D, Dense, activations, initializers


@pytest.mark.parametrize("shape", [[64, 16], [16, 64], [32, 32]])
@pytest.mark.parametrize("gain", [1.0, math.sqrt(2.0), 0.01])
def test_orthogonal_matrix_has_orthonormal_columns_or_rows_times_gain(shape, gain):
    q = initializers.orthogonal(gain)(shape, tf.float32).numpy().astype(np.float64)
    assert q.shape == tuple(shape)
    rows, cols = shape
    if rows >= cols:  # tall: Q^T Q = gain^2 I
        np.testing.assert_allclose(q.T @ q, gain ** 2 * np.eye(cols), atol=1e-5 * max(1.0, gain ** 2))
    if rows <= cols:  # wide: Q Q^T = gain^2 I
        np.testing.assert_allclose(q @ q.T, gain ** 2 * np.eye(rows), atol=1e-5 * max(1.0, gain ** 2))


def test_orthogonal_conv_kernel_is_orthogonal_as_a_matrix():
    shape = [3, 3, 4, 8]  # [h*w*in, out] = [36, 8]
    kernel = initializers.orthogonal(2.0)(shape, tf.float32).numpy()
    m = kernel.reshape(36, 8).astype(np.float64)
    np.testing.assert_allclose(m.T @ m, 4.0 * np.eye(8), atol=1e-4)
    layer = Conv2D(8, 3, w_init="orthogonal")
    layer(tf.zeros([1, 5, 5, 4]))
    m = layer.w.numpy().reshape(36, 8).astype(np.float64)
    np.testing.assert_allclose(m.T @ m, np.eye(8), atol=1e-5)


def test_orthogonal_rejects_vectors():
    with pytest.raises(ValueError, match="rank >= 2"):
        initializers.orthogonal()([5], tf.float32)


def test_orthogonal_is_reproducible_with_the_global_seed():
    tf.random.set_seed(3)
    a = initializers.orthogonal()([8, 4], tf.float32)
    tf.random.set_seed(3)
    b = initializers.orthogonal()([8, 4], tf.float32)
    assert np.array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("shape, fan_in, fan_out", [([100, 50], 100, 50), ([3, 3, 8, 16], 72, 144)])
def test_glorot_and_he_uniform_stay_within_their_bounds_and_fill_them(shape, fan_in, fan_out):
    for init, limit in [(initializers.glorot_uniform(), math.sqrt(6.0 / (fan_in + fan_out))),
                        (initializers.he_uniform(), math.sqrt(6.0 / fan_in))]:
        w = init(shape, tf.float32).numpy()
        assert w.shape == tuple(shape) and w.dtype == np.float32
        assert np.abs(w).max() <= limit
        assert np.abs(w).max() > 0.9 * limit  # uniform over the whole range
        np.testing.assert_allclose(w.std(), limit / math.sqrt(3.0), rtol=0.1)


def test_zeros_and_constant_fill_the_shape_in_the_dtype():
    assert np.array_equal(initializers.zeros()([2, 3], tf.float32).numpy(), np.zeros([2, 3], np.float32))
    c = initializers.constant(-0.5)([4], tf.float64)
    assert c.dtype == tf.float64 and np.array_equal(c.numpy(), np.full([4], -0.5))
    layer = Dense(3, w_init=initializers.constant(0.25), b_init=initializers.constant(1.0), input_size=2)
    assert np.array_equal(layer.w.numpy(), np.full([2, 3], 0.25, np.float32))
    assert np.array_equal(layer.b.numpy(), np.ones([3], np.float32))


def test_initializers_resolve_by_name_callable_or_default():
    assert callable(initializers.get("he_uniform"))
    fn = initializers.zeros()
    assert initializers.get(fn) is fn
    w = initializers.get(None, default="zeros")([2], tf.float32)
    assert np.array_equal(w.numpy(), [0.0, 0.0])


def test_unknown_initializer_name_raises_with_close_matches():
    with pytest.raises(ValueError, match="Unknown initializer 'orthogonl'.*Did you mean orthogonal"):
        initializers.get("orthogonl")
    with pytest.raises(ValueError, match="Unknown initializer 'glorot_normal'.*Did you mean glorot_uniform"):
        Dense(2, w_init="glorot_normal")


def test_activations_resolve_to_tf_functions():
    assert activations.get(None) is None and activations.get("linear") is None
    assert activations.get("relu") is tf.nn.relu
    x = tf.constant([-2.0, 0.5])
    for name in activations.ACTIVATIONS:
        fn = activations.get(name)
        if fn is not None:
            assert fn(x).shape == (2,)
            assert activations.name_of(fn) in (name, "silu")  # "swish" is an alias of silu
    custom = lambda t: t * 2.0  # noqa: E731
    assert activations.get(custom) is custom and activations.name_of(custom) is None


def test_unknown_activation_name_raises_with_close_matches():
    with pytest.raises(ValueError, match="Unknown activation 'rleu'.*Did you mean 'relu'"):
        activations.get("rleu")
    with pytest.raises(ValueError, match="Did you mean 'tanh'"):
        Dense(3, activation="tahn")
