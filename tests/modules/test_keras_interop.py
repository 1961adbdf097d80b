"""Keras 3 layers and models where a tlrl module is expected (as_module / KerasModule / Sequential)."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tlrl.layers import Dense, KerasModule, Sequential, as_module
from tlrl.modules import CategoricalHead, DictTorso, ValueHead, mlp


def _keras_torso():
    return keras.Sequential([keras.layers.Dense(16, activation="tanh"), keras.layers.Dense(8, activation="tanh")])


class ActorCritic(tf.Module):
    def __init__(self, torso):
        super().__init__(name="actor_critic")
        self.torso = as_module(torso)
        self.policy = CategoricalHead(3)
        self.value = ValueHead()

    def __call__(self, obs):
        features = self.torso(obs)
        return self.policy(features), self.value(features)


def _data():
    x = tf.random.normal([64, 4])
    actions = tf.cast(x[:, 0] > 0, tf.int32) * 2
    returns = x[:, 1]
    return x, actions, returns


def test_keras_model_as_torso_trains_with_tlrl_heads():
    net = ActorCritic(_keras_torso())
    assert isinstance(net.torso, KerasModule)
    x, actions, returns = _data()
    dist, value = net(x)
    assert dist.sample().shape == (64,) and value.shape == (64,)
    variables = net.trainable_variables
    assert all(isinstance(v, tf.Variable) for v in variables)
    assert len(variables) == 4 + 2 + 2  # Keras kernels and biases, then both heads
    keras_ids = {id(v) for v in net.torso.trainable_variables}
    assert keras_ids <= {id(v) for v in variables}

    opt = keras.optimizers.Adam(1e-2)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            dist, value = net(x)
            loss = -tf.reduce_mean(dist.log_prob(actions)) + tf.reduce_mean(tf.square(value - returns))
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    before = [v.numpy() for v in net.torso.trainable_variables]
    losses = [float(step()) for _ in range(40)]
    assert losses[-1] < 0.8 * losses[0]
    for old, v in zip(before, net.torso.trainable_variables):
        assert not np.array_equal(old, v.numpy()), v.name  # the Keras weights were trained too


def test_checkpoint_of_the_containing_module_saves_and_restores_keras_weights(tmp_path):
    x = tf.random.normal([5, 4])
    net = ActorCritic(_keras_torso())
    expected = net(x)[1].numpy()
    path = tf.train.Checkpoint(model=net).save(str(tmp_path / "ckpt"))
    keys = [k for k, _ in tf.train.list_variables(path) if k.startswith("model/torso/")]
    assert len(keys) == 4  # each Keras weight saved once

    for v in net.torso.trainable_variables:  # perturb, restore in place
        v.assign(tf.zeros_like(v))
    tf.train.Checkpoint(model=net).restore(path).assert_consumed()
    assert np.array_equal(net(x)[1].numpy(), expected)

    fresh = ActorCritic(_keras_torso())  # Keras model not built yet: restore deferred to the first call
    status = tf.train.Checkpoint(model=fresh).restore(path)
    assert np.array_equal(fresh(x)[1].numpy(), expected)
    status.assert_consumed()


def test_keras_layers_inside_tlrl_sequential_are_tracked_and_trained():
    net = Sequential([Dense(8, "relu"), keras.layers.Dense(2)], name="mixed")
    x = tf.random.normal([16, 3])
    net(x)
    names = [v.name for v in net.trainable_variables]
    assert len(names) == 4 and any("kernel" in n for n in names)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(net(x)))
    grads = tape.gradient(loss, net.trainable_variables)
    assert all(g is not None for g in grads)


def test_keras_module_reading_variables_before_build_raises():
    torso = as_module(_keras_torso())
    with pytest.raises(RuntimeError, match="has no weights yet"):
        torso.trainable_variables


def test_prebuilt_functional_model_exposes_variables_before_any_call():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    torso = as_module(model)
    assert len(torso.trainable_variables) == 2

    class Holder(tf.Module):
        def __init__(self):
            super().__init__()
            self.torso = torso

    assert len(Holder().trainable_variables) == 2


def test_keras_torso_in_a_dict_torso():
    torso = DictTorso({"pixels": keras.layers.Dense(3), "state": mlp([2])})
    out = torso({"pixels": tf.zeros([2, 5]), "state": tf.zeros([2, 4])})
    assert out.shape == (2, 5)
    assert len(torso.trainable_variables) == 4


def test_as_module_passes_tlrl_modules_through_and_rejects_non_callables():
    net = mlp([2])
    assert as_module(net) is net
    wrapped = as_module(keras.layers.Dense(1))
    assert as_module(wrapped) is wrapped
    with pytest.raises(TypeError, match="must be callable"):
        as_module(42)


class SubclassedTorso(keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden = keras.layers.Dense(6, activation="relu")
        self.out = keras.layers.Dense(2)

    def call(self, x):
        return self.out(self.hidden(x))


@pytest.mark.parametrize("make", [_keras_torso, SubclassedTorso, lambda: keras.layers.Dense(3)])
def test_deferred_restore_into_keras_torso_first_called_inside_tf_function(make, tmp_path):
    x = tf.random.normal([3, 4])
    saved = as_module(make())
    expected = saved(x).numpy()
    path = tf.train.Checkpoint(torso=saved).save(str(tmp_path / "ckpt"))
    fresh = as_module(make())
    status = tf.train.Checkpoint(torso=fresh).restore(path)
    y = tf.function(fresh)(x)
    status.assert_consumed()
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-6, atol=1e-6)
    for a, b in zip(saved.variables, fresh.variables):
        assert np.array_equal(a.numpy(), b.numpy())


def test_deferred_restore_into_unbuilt_keras_sequential_applies_before_the_first_eager_call(tmp_path):
    x = tf.random.normal([3, 4])
    saved = as_module(_keras_torso())
    expected = saved(x).numpy()
    path = tf.train.Checkpoint(torso=saved).save(str(tmp_path / "ckpt"))
    fresh = as_module(_keras_torso())
    tf.train.Checkpoint(torso=fresh).restore(path)
    assert np.array_equal(fresh(x).numpy(), expected)


def test_module_with_a_keras_torso_exports_as_saved_model(tmp_path):
    class Policy(tf.Module):
        def __init__(self):
            super().__init__()
            self.torso, self.head = as_module(_keras_torso()), CategoricalHead(3)

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
        def logits(self, obs):
            return self.head(self.torso(obs)).logits_parameter()

    policy = Policy()
    x = tf.random.normal([3, 4])
    expected = policy.logits(x).numpy()
    tf.saved_model.save(policy, str(tmp_path / "policy"))
    loaded = tf.saved_model.load(str(tmp_path / "policy"))
    np.testing.assert_allclose(loaded.logits(x).numpy(), expected, rtol=1e-6, atol=1e-6)
