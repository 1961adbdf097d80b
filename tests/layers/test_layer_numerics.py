"""tlrl layers compute exactly the raw TF ops on the same weights: outputs and gradients."""
import numpy as np
import pytest
import tensorflow as tf

from tlrl.layers import Conv2D, Dense, Flatten, LayerNorm, Sequential


def _grads(fn, x, variables):
    """Output of fn(x) and gradients of a fixed random projection of it w.r.t. x and variables."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
        probe = tf.random.stateless_normal(y.shape, seed=[1, 2])
        loss = tf.reduce_sum(y * probe)
    grads = tape.gradient(loss, [x, *variables])
    return y, grads


def _assert_same(a, b, rtol=1e-6, atol=1e-6):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)


def test_dense_output_and_gradients_equal_raw_matmul():
    layer = Dense(5, activation="tanh")
    x = tf.random.normal([7, 3])
    layer(x)  # build
    y, (gx, gw, gb) = _grads(layer, x, [layer.w, layer.b])
    y_raw, (rx, rw, rb) = _grads(lambda t: tf.tanh(tf.matmul(t, layer.w) + layer.b), x, [layer.w, layer.b])
    for a, b in [(y, y_raw), (gx, rx), (gw, rw), (gb, rb)]:
        _assert_same(a, b)


def test_dense_without_bias_has_only_a_kernel():
    layer = Dense(2, use_bias=False, input_size=3)
    assert [v.name for v in layer.trainable_variables] == ["dense/w:0"]
    x = tf.random.normal([4, 3])
    _assert_same(layer(x), tf.matmul(x, layer.w))


def test_dense_applies_to_the_last_axis_of_rank3_inputs():
    layer = Dense(4)
    x = tf.random.normal([2, 3, 5])
    _assert_same(layer(x), tf.einsum("btf,fu->btu", x, layer.w) + layer.b, atol=1e-5)


@pytest.mark.parametrize("padding", ["VALID", "same"])
def test_conv2d_output_and_gradients_equal_raw_conv(padding):
    layer = Conv2D(6, (3, 2), strides=(2, 1), padding=padding, activation="relu")
    x = tf.random.normal([2, 9, 8, 3])
    layer(x)
    variables = [layer.w, layer.b]
    y, grads = _grads(layer, x, variables)

    def raw(t):
        return tf.nn.relu(tf.nn.conv2d(t, layer.w, strides=[1, 2, 1, 1], padding=padding.upper()) + layer.b)

    y_raw, raw_grads = _grads(raw, x, variables)
    _assert_same(y, y_raw, atol=1e-5)
    for a, b in zip(grads, raw_grads):
        _assert_same(a, b, rtol=1e-5, atol=1e-5)
    assert layer.w.shape == (3, 2, 3, 6)


def test_layer_norm_output_and_gradients_equal_raw_formula():
    layer = LayerNorm(eps=1e-3)
    x = tf.random.normal([4, 6]) * 3.0 + 1.0
    layer(x)
    layer.gamma.assign(tf.random.normal([6]))
    layer.beta.assign(tf.random.normal([6]))
    variables = [layer.gamma, layer.beta]

    def raw(t):
        mean = tf.reduce_mean(t, -1, keepdims=True)
        var = tf.reduce_mean(tf.square(t - mean), -1, keepdims=True)
        return (t - mean) / tf.sqrt(var + 1e-3) * layer.gamma + layer.beta

    y, grads = _grads(layer, x, variables)
    y_raw, raw_grads = _grads(raw, x, variables)
    _assert_same(y, y_raw, atol=1e-5)
    for a, b in zip(grads, raw_grads):
        _assert_same(a, b, rtol=1e-4, atol=1e-5)
    # normalized rows: zero mean, unit variance before the affine part
    plain = LayerNorm(scale=False, center=False)(x)
    _assert_same(tf.reduce_mean(plain, -1), np.zeros(4), atol=1e-5)
    _assert_same(tf.math.reduce_std(plain, -1), np.ones(4), atol=1e-3)


def test_layer_norm_without_scale_and_center_has_no_weights():
    layer = LayerNorm(scale=False, center=False)
    assert layer.trainable_variables == ()  # nothing to build, so no error either


def test_sequential_mlp_output_and_gradients_equal_raw_ops():
    net = Sequential([Flatten(), Dense(16, "relu"), Dense(16, "tanh"), Dense(3)], name="mlp")
    x = tf.random.normal([5, 2, 4])
    net(x)
    d1, d2, d3 = net.layers[1:]
    variables = [d1.w, d1.b, d2.w, d2.b, d3.w, d3.b]

    def raw(t):
        h = tf.reshape(t, [5, 8])
        h = tf.nn.relu(tf.matmul(h, d1.w) + d1.b)
        h = tf.tanh(tf.matmul(h, d2.w) + d2.b)
        return tf.matmul(h, d3.w) + d3.b

    y, grads = _grads(net, x, variables)
    y_raw, raw_grads = _grads(raw, x, variables)
    _assert_same(y, y_raw, atol=1e-5)
    for a, b in zip(grads, raw_grads):
        _assert_same(a, b, rtol=1e-5, atol=1e-5)
    assert {id(v) for v in net.trainable_variables} == {id(v) for v in variables}


def test_flatten_keeps_the_static_feature_size():
    out = tf.function(lambda t: Flatten()(t), input_signature=[tf.TensorSpec([None, 3, 4, 2])]) \
        .get_concrete_function().outputs[0]
    assert out.shape.as_list() == [None, 24]
