"""Lazy build, eager build, variable names, and clear errors for bad arguments and inputs."""
import numpy as np
import pytest
import tensorflow as tf

from tlrl.layers import Conv2D, Dense, Flatten, Lambda, LayerNorm, Sequential


def test_variables_are_created_on_first_call_from_the_input_shape():
    layer = Dense(4)
    assert not layer.built
    layer(tf.zeros([2, 7]))
    assert layer.built
    assert layer.w.shape == (7, 4) and layer.b.shape == (4,)
    assert layer.input_size == 7


def test_input_size_builds_eagerly():
    layer = Dense(4, input_size=np.int64(3))
    assert layer.built
    assert [v.shape.as_list() for v in layer.trainable_variables] == [[4], [3, 4]]


def test_variable_names_are_stable_and_nested_by_module():
    from tlrl.modules import mlp

    net = mlp([8, 8])
    net(tf.zeros([1, 3]))
    names = sorted(v.name for v in net.trainable_variables)
    assert names == ["mlp/dense_0/b:0", "mlp/dense_0/w:0", "mlp/dense_1/b:0", "mlp/dense_1/w:0"]
    # the same names when the first call is traced by tf.function
    net2 = mlp([8, 8])
    tf.function(net2)(tf.zeros([1, 3]))
    assert sorted(v.name for v in net2.trainable_variables) == names


@pytest.mark.parametrize("make", [lambda: Dense(3), lambda: Conv2D(2, 3), lambda: LayerNorm(),
                                  lambda: Sequential([Dense(2)])])
def test_reading_variables_before_build_raises_a_helpful_error(make):
    layer = make()
    for attr in ("trainable_variables", "variables"):
        with pytest.raises(RuntimeError, match="created on the first call.*input_size"):
            getattr(layer, attr)


def test_weightless_layers_have_no_variables_before_or_after_a_call():
    for layer in (Flatten(), Lambda(tf.nn.relu), Sequential([Flatten(), Lambda(tf.nn.relu)])):
        assert layer.trainable_variables == ()
        layer(tf.ones([2, 3]))
        assert layer.trainable_variables == ()


def test_build_with_an_explicit_shape_equals_building_on_call():
    net = Sequential([Dense(5), Dense(2)])
    net.build([None, 4])
    assert net.built
    assert [v.shape.as_list() for v in net.layers[0].trainable_variables] == [[5], [4, 5]]
    assert net(tf.zeros([3, 4])).shape == (3, 2)


@pytest.mark.parametrize("units", [0, -3, 2.5, "4", True, None])
def test_dense_rejects_units_that_are_not_positive_integers(units):
    with pytest.raises(ValueError, match="Dense units must be a positive integer"):
        Dense(units)


def test_dense_accepts_numpy_integers():
    assert Dense(np.int64(3)).units == 3


@pytest.mark.parametrize("kwargs, match", [
    (dict(filters=0, kernel_size=3), "filters must be a positive integer"),
    (dict(filters=4, kernel_size=-1), "kernel_size must be a positive integer"),
    (dict(filters=4, kernel_size=(3, 3, 3)), "an int or a pair"),
    (dict(filters=4, kernel_size=3, strides=0), "strides must be a positive integer"),
    (dict(filters=4, kernel_size=3, padding="FULL"), "padding must be 'VALID' or 'SAME'"),
    (dict(filters=4, kernel_size=3, padding=1), "padding must be 'VALID' or 'SAME'"),
])
def test_conv2d_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Conv2D(**kwargs)


def test_dense_rejects_a_different_last_dimension_after_build():
    layer = Dense(3)
    layer(tf.zeros([2, 4]))
    with pytest.raises(ValueError, match="built for inputs with last dimension 4, got shape"):
        layer(tf.zeros([2, 5]))


def test_dense_rejects_rank1_inputs():
    with pytest.raises(ValueError, match=r"expects inputs of shape \[batch, ..., features\]"):
        Dense(3)(tf.zeros([4]))


def test_conv2d_rejects_other_channels_or_ranks_after_build():
    layer = Conv2D(2, 3)
    layer(tf.zeros([1, 5, 5, 3]))
    with pytest.raises(ValueError, match="built for NHWC inputs with 3 channels"):
        layer(tf.zeros([1, 5, 5, 4]))
    with pytest.raises(ValueError, match="built for NHWC inputs"):
        layer(tf.zeros([5, 5, 3]))
    with pytest.raises(ValueError, match="expects NHWC inputs of rank 4"):
        Conv2D(2, 3)(tf.zeros([5, 5, 3]))


def test_layer_norm_rejects_a_different_last_dimension_after_build():
    layer = LayerNorm()
    layer(tf.zeros([2, 3]))
    with pytest.raises(ValueError, match="built for last dimension 3"):
        layer(tf.zeros([2, 4]))


def test_sequential_and_lambda_reject_things_that_are_not_callable():
    with pytest.raises(TypeError, match="Sequential item 1 is a int"):
        Sequential([Dense(2), 3])
    with pytest.raises(TypeError, match="Lambda needs a callable"):
        Lambda("relu")
