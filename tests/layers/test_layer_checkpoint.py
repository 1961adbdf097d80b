"""tf.train.Checkpoint round-trips layers bit-exactly, also into fresh, not yet built modules."""
import numpy as np
import tensorflow as tf

from tlrl.layers import Conv2D, Dense, Flatten, LayerNorm, Sequential
from tlrl.modules import GaussianHead, mlp


def _net():
    return Sequential([Conv2D(4, 3, activation="relu"), Flatten(), LayerNorm(), Dense(5, "tanh"), Dense(2)],
                      name="net")


def _values(module):
    return [v.numpy() for v in module.variables]


def test_checkpoint_restores_perturbed_weights_bit_exactly(tmp_path):
    net = _net()
    net(tf.random.normal([2, 6, 6, 3]))
    saved = _values(net)
    path = tf.train.Checkpoint(net=net).save(str(tmp_path / "ckpt"))
    for v in net.variables:
        v.assign_add(tf.random.normal(v.shape))
    assert not all(np.array_equal(a, v.numpy()) for a, v in zip(saved, net.variables))
    tf.train.Checkpoint(net=net).restore(path).assert_consumed()
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(saved, net.variables))


def test_restore_into_a_fresh_unbuilt_module_is_deferred_to_its_first_call(tmp_path):
    x = tf.random.normal([3, 6, 6, 3])
    net = _net()
    expected = net(x).numpy()
    path = tf.train.Checkpoint(net=net).save(str(tmp_path / "ckpt"))

    fresh = _net()  # no variables yet
    status = tf.train.Checkpoint(net=fresh).restore(path)
    y = fresh(x)  # variables are created here and take the saved values
    status.assert_consumed()
    assert all(np.array_equal(a, b) for a, b in zip(_values(net), _values(fresh)))
    assert np.array_equal(expected, y.numpy())


def test_deferred_restore_also_applies_when_the_first_call_is_traced(tmp_path):
    x = tf.random.normal([4, 3])
    net = mlp([8, 8])
    net(x)
    path = tf.train.Checkpoint(m=net).save(str(tmp_path / "ckpt"))
    fresh = mlp([8, 8])
    status = tf.train.Checkpoint(m=fresh).restore(path)
    forward = tf.function(fresh)
    y = forward(x)  # built inside the trace
    status.assert_consumed()
    assert all(np.array_equal(a, b) for a, b in zip(_values(net), _values(fresh)))
    np.testing.assert_array_equal(y.numpy(), tf.function(net)(x).numpy())


def test_head_and_torso_checkpoint_keys_follow_attribute_names(tmp_path):
    class Policy(tf.Module):
        def __init__(self):
            super().__init__()
            self.torso, self.head = mlp([4]), GaussianHead(2)

    policy = Policy()
    policy.head(policy.torso(tf.zeros([1, 3])))
    path = tf.train.Checkpoint(policy=policy).save(str(tmp_path / "ckpt"))
    keys = {name for name, _ in tf.train.list_variables(path)}
    assert "policy/head/log_std/.ATTRIBUTES/VARIABLE_VALUE" in keys
    assert "policy/torso/layers/1/w/.ATTRIBUTES/VARIABLE_VALUE" in keys
    assert "policy/head/mean/w/.ATTRIBUTES/VARIABLE_VALUE" in keys


def test_dense_built_with_input_size_restores_immediately(tmp_path):
    a = Dense(3, input_size=2)
    path = tf.train.Checkpoint(d=a).save(str(tmp_path / "ckpt"))
    b = Dense(3, input_size=2)
    tf.train.Checkpoint(d=b).restore(path).assert_consumed()
    assert np.array_equal(a.w.numpy(), b.w.numpy())
