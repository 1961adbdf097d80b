"""The numpy forward pass must match the TF one (same weights), and its sampling must be exact and seeded."""
import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf

from tlrl.modules import (CategoricalHead, GaussianHead, MultiCategoricalHead, QHead, ValueHead, make_torso, mlp,
                          nature_cnn)
from tlrl.numpy_policy import NumpyModule, NumpyUnsupported, numpy_q_function, supports_numpy
from tlrl.spaces import to_tf_obs

RNG = np.random.default_rng(0)


def _built(*modules, x):
    """Call the TF modules once (creating their variables) and return the TF output."""
    y = tf.nest.map_structure(tf.constant, x)
    for m in modules:
        y = m(y)
    return y


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid", "elu", "softplus", "silu", "leaky_relu", "linear"])
def test_mlp_torso_matches_tf(activation):
    torso = mlp([32, 16], activation)
    x = RNG.normal(size=(7, 5)).astype(np.float32)
    expected = _built(torso, x=x).numpy()
    np_torso = NumpyModule(torso)
    np_torso.sync()
    np.testing.assert_allclose(np_torso(x), expected, rtol=1e-5, atol=1e-5)


def test_layer_norm_torso_and_multi_dim_input_match_tf():
    torso = mlp([16, 16], "tanh", layer_norm=True)
    x = RNG.normal(size=(4, 3, 2)).astype(np.float32)  # flattened inside
    expected = _built(torso, x=x).numpy()
    np_torso = NumpyModule(torso)
    np_torso.sync()
    np.testing.assert_allclose(np_torso(x), expected, rtol=1e-5, atol=1e-5)


def test_dict_and_discrete_observation_torsos_match_tf():
    space = gym.spaces.Dict({"pos": gym.spaces.Box(-1, 1, (3,)), "cell": gym.spaces.Discrete(5)})
    torso = make_torso(space, hidden=(8,))
    x = {"pos": RNG.normal(size=(6, 3)).astype(np.float32), "cell": RNG.integers(0, 5, size=6).astype(np.float32)}
    expected = _built(torso, x=x).numpy()
    np_torso = NumpyModule(torso)
    np_torso.sync()
    np.testing.assert_allclose(np_torso(x), expected, rtol=1e-5, atol=1e-5)
    # with the space, inputs are cast as `tlrl.spaces.to_tf_obs` casts them for TF (Discrete: int32): same values
    raw = {"pos": x["pos"].astype(np.float64), "cell": x["cell"].astype(np.int64)}
    typed = NumpyModule(torso, observation_space=space)
    typed.sync()
    np.testing.assert_array_equal(typed(raw), np_torso(x))
    np.testing.assert_allclose(typed(raw), _built(torso, x=to_tf_obs(space, raw)).numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("space", [gym.spaces.Discrete(7), gym.spaces.Box(-1, 1, (3,), np.float64),
                                   gym.spaces.MultiBinary(4)], ids=["discrete", "float64_box", "multibinary"])
def test_observations_are_cast_like_the_tf_networks_get_them(space):
    torso = make_torso(space, hidden=(8,))
    raw = np.stack([space.sample() for _ in range(5)])
    expected = _built(torso, x=to_tf_obs(space, raw)).numpy()
    np_torso = NumpyModule(torso, observation_space=space)
    np_torso.sync()
    out = np_torso(raw)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    untyped = NumpyModule(torso)  # without a space: float32, the old cast; the same numbers
    untyped.sync()
    np.testing.assert_array_equal(untyped(raw), out)


@pytest.mark.parametrize("dueling", [False, True])
def test_q_head_and_numpy_q_function_match_tf(dueling):
    space = gym.spaces.Box(-1, 1, (4,), np.float32)

    class QNet(tf.Module):
        def __init__(self):
            super().__init__()
            self.torso, self.head = make_torso(space, hidden=(16,), activation="relu"), QHead(3, dueling=dueling)

        def __call__(self, obs):
            return self.head(self.torso(obs))

    net = QNet()
    x = RNG.normal(size=(10, 4)).astype(np.float32)
    expected = net(tf.constant(x)).numpy()
    q = numpy_q_function(net, space)  # synced at creation
    np.testing.assert_allclose(q(x), expected, rtol=1e-5, atol=1e-5)
    for v in q.variables:
        v.assign(v * 0.5)
    q.sync()
    np.testing.assert_allclose(q(x), net(tf.constant(x)).numpy(), rtol=1e-5, atol=1e-5)
    assert len(q.variables) == (6 if dueling else 4)

    class CnnQ(QNet):
        def __init__(self):
            super().__init__()
            self.torso = nature_cnn()

    image = CnnQ()
    image(tf.zeros([1, 36, 36, 1]))
    assert numpy_q_function(image) is None  # no numpy convolution: the caller acts in TF


def test_categorical_head_matches_tf():
    torso, head = mlp([16]), CategoricalHead(4)
    x = RNG.normal(size=(9, 3)).astype(np.float32)
    dist = _built(torso, head, x=x)
    policy = NumpyModule(torso, head)
    policy.sync()
    np_dist = policy(x)
    np.testing.assert_allclose(np_dist.logits, dist.logits_parameter().numpy(), rtol=1e-5, atol=1e-5)
    actions = np.arange(9) % 4
    np.testing.assert_allclose(np_dist.log_prob(actions), dist.log_prob(actions).numpy(), atol=1e-5)
    np.testing.assert_allclose(np_dist.entropy(), dist.entropy().numpy(), atol=1e-5)
    np.testing.assert_array_equal(np_dist.mode(), dist.mode().numpy())
    sampled, log_prob = np_dist.sample_and_log_prob(np.random.default_rng(1))
    np.testing.assert_allclose(log_prob, dist.log_prob(sampled).numpy(), atol=1e-5)


def test_multi_categorical_head_matches_tf():
    torso, head = mlp([16]), MultiCategoricalHead([3, 2, 5])
    x = RNG.normal(size=(6, 4)).astype(np.float32)
    dist = _built(torso, head, x=x)
    policy = NumpyModule(torso, head)
    policy.sync()
    np_dist = policy(x)
    actions = np.stack([np.arange(6) % 3, np.arange(6) % 2, np.arange(6) % 5], axis=1)
    np.testing.assert_allclose(np_dist.log_prob(actions), dist.log_prob(actions).numpy(), atol=1e-4)
    np.testing.assert_array_equal(np_dist.mode(), dist.mode().numpy())
    sampled, log_prob = np_dist.sample_and_log_prob(np.random.default_rng(1))
    assert sampled.shape == (6, 3) and np.all(sampled < [3, 2, 5])
    np.testing.assert_allclose(log_prob, dist.log_prob(sampled).numpy(), atol=1e-4)
    np.testing.assert_allclose(np_dist.entropy(), dist.entropy().numpy(), atol=1e-4)


@pytest.mark.parametrize("state_dependent_std", [False, True])
def test_gaussian_head_matches_tf(state_dependent_std):
    torso, head = mlp([16]), GaussianHead(2, state_dependent_std=state_dependent_std, log_std_init=-0.5)
    x = RNG.normal(size=(5, 3)).astype(np.float32)
    dist = _built(torso, head, x=x)
    policy = NumpyModule(torso, head)
    policy.sync()
    np_dist = policy(x)
    np.testing.assert_allclose(np_dist.mode(), dist.mode().numpy(), rtol=1e-5, atol=1e-5)
    sampled, log_prob = np_dist.sample_and_log_prob(np.random.default_rng(3))
    assert sampled.dtype == np.float32
    np.testing.assert_allclose(log_prob, dist.log_prob(sampled).numpy(), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(np_dist.entropy(), dist.entropy().numpy(), atol=1e-5)


def test_value_head_matches_tf():
    torso, head = mlp([16, 16]), ValueHead()
    x = RNG.normal(size=(8, 4)).astype(np.float32)
    expected = _built(torso, head, x=x).numpy()
    np_value = NumpyModule(torso, head)
    np_value.sync()
    out = np_value(x)
    assert out.shape == (8,)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_categorical_sampling_follows_the_probabilities_and_is_seeded():
    logits = np.log(np.array([[0.1, 0.6, 0.3]] * 20000, np.float32))
    from tlrl.numpy_policy import NumpyCategorical

    dist = NumpyCategorical(logits)
    a = dist.sample(np.random.default_rng(7))
    np.testing.assert_allclose(np.bincount(a, minlength=3) / len(a), [0.1, 0.6, 0.3], atol=0.01)
    np.testing.assert_array_equal(a, dist.sample(np.random.default_rng(7)))
    # a probability of exactly zero is never sampled
    zero = NumpyCategorical(np.array([[0.0, -np.inf, 0.0]] * 1000, np.float32))
    assert not np.any(zero.sample(np.random.default_rng(0)) == 1)


def test_gaussian_sampling_has_the_right_moments_and_is_seeded():
    from tlrl.numpy_policy import NumpyDiagGaussian

    dist = NumpyDiagGaussian(np.full([50000, 2], [1.0, -2.0], np.float32), np.log(np.array([0.5, 2.0], np.float32)))
    x = dist.sample(np.random.default_rng(0))
    np.testing.assert_allclose(x.mean(0), [1.0, -2.0], atol=0.03)
    np.testing.assert_allclose(x.std(0), [0.5, 2.0], atol=0.03)
    np.testing.assert_array_equal(x, dist.sample(np.random.default_rng(0)))


def test_sync_takes_the_new_weights_and_values_in_variable_order():
    torso, head = mlp([8]), ValueHead()
    x = RNG.normal(size=(3, 2)).astype(np.float32)
    _built(torso, head, x=x)
    np_value = NumpyModule(torso, head)
    with pytest.raises(RuntimeError, match="sync"):
        np_value(x)
    np_value.sync()
    before = np_value(x)
    for v in np_value.variables:
        v.assign(v + 0.1)
    np.testing.assert_array_equal(np_value(x), before)  # a snapshot until the next sync
    np_value.sync([v.numpy() for v in np_value.variables])
    np.testing.assert_allclose(np_value(x), _built(torso, head, x=x).numpy(), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="arrays for"):
        np_value.sync([])


def test_unsupported_modules_say_so():
    cnn = nature_cnn()
    cnn(tf.zeros([1, 36, 36, 1]))
    assert not supports_numpy(cnn)
    with pytest.raises(NumpyUnsupported, match="no numpy"):
        NumpyModule(cnn)
    gelu = mlp([4], "gelu")
    gelu(tf.zeros([1, 2]))
    with pytest.raises(NumpyUnsupported, match="gelu"):
        NumpyModule(gelu)


def test_docstring_examples_run():
    import doctest

    import tlrl.numpy_policy as module

    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted >= 5
