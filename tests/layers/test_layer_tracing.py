"""Layers inside tf.function and XLA: same results, and no retracing at a fixed shape."""
import numpy as np
import pytest
import tensorflow as tf

from tlrl.layers import Conv2D, Dense, Flatten, LayerNorm, Sequential
from tlrl.modules import CategoricalHead, mlp, nature_cnn


def _small_cnn():
    return Sequential([Conv2D(4, 3, 2, activation="relu"), Flatten(), LayerNorm(), Dense(3)])


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("make, shape", [(lambda: mlp([16, 16]), [8, 5]), (_small_cnn, [2, 9, 9, 3])])
def test_first_call_in_tf_function_builds_and_later_calls_never_retrace(make, shape, jit):
    net = make()
    traces = []

    @tf.function(jit_compile=jit)
    def forward(x):
        traces.append(1)  # Python side effect: runs once per trace
        return net(x)

    y = forward(tf.random.normal(shape))  # builds the variables inside the trace
    assert net.built
    n_first = len(traces)
    for _ in range(5):
        forward(tf.random.normal(shape))
    assert len(traces) == n_first  # no retrace for inputs of the same shape and dtype
    assert forward.experimental_get_tracing_count() <= 2  # the creating trace (+ one without creation)
    x = tf.random.normal(shape)
    np.testing.assert_allclose(forward(x).numpy(), net(x).numpy(), rtol=1e-5, atol=1e-5)
    assert y.shape[0] == shape[0]


@pytest.mark.parametrize("jit", [False, True])
def test_compiled_train_step_runs_without_retracing_and_learns(jit):
    torso, head = mlp([32]), CategoricalHead(3)
    x = tf.random.normal([64, 4])
    labels = tf.cast(x[:, 0] > 0, tf.int32) + tf.cast(x[:, 1] > 0, tf.int32)
    head(torso(x))
    variables = torso.trainable_variables + head.trainable_variables
    opt = tf.keras.optimizers.SGD(0.5)
    traces = []

    @tf.function(jit_compile=jit)
    def step(x, labels):
        traces.append(1)
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(head(torso(x)).log_prob(labels))
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    losses = [float(step(x, labels)) for _ in range(30)]
    count = len(traces)
    step(x, labels)
    assert len(traces) == count <= 2  # 2 when the optimizer creates its slots in the first trace
    assert losses[-1] < 0.7 * losses[0]


def test_input_signature_with_unknown_batch_traces_once_for_all_batch_sizes():
    net = nature_cnn(features=16)
    net.build([None, 36, 36, 4])  # variables first, so the only trace is the one of the signature
    forward = tf.function(net, input_signature=[tf.TensorSpec([None, 36, 36, 4], tf.uint8)])
    for batch in (1, 3, 7):
        assert forward(tf.zeros([batch, 36, 36, 4], tf.uint8)).shape == (batch, 16)
    assert forward.experimental_get_tracing_count() == 1


def test_layer_call_adds_no_ops_beyond_the_math():
    layer = Dense(3, "relu", input_size=4)
    graph = tf.function(layer).get_concrete_function(tf.TensorSpec([None, 4])).graph
    ops = sorted(op.type for op in graph.get_operations()
                 if op.type not in ("Placeholder", "ReadVariableOp", "Identity", "NoOp"))
    assert ops == ["BiasAdd", "MatMul", "Relu"]
