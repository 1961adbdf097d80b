"""Policy heads (features -> tfp distribution) and value heads."""
import math

import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tlrl.modules import (CategoricalHead, ContinuousQ, DeterministicHead, GaussianHead, MultiCategoricalHead, QHead,
                          SquashedGaussianHead, ValueHead, make_policy_head, mlp, small_cnn)

tfd = tfp.distributions
B = 6


def _features(dim=5, batch=B):
    return tf.random.normal([batch, dim])


def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_categorical_head_samples_actions_and_log_prob_is_log_softmax():
    head = CategoricalHead(4)
    x = _features()
    dist = head(x)
    head.logits.w.assign(tf.random.normal(head.logits.w.shape))  # leave the near-uniform init
    dist = head(x)
    assert dist.sample().shape == (B,)
    actions = np.arange(B) % 4
    logits = (x @ head.logits.w + head.logits.b).numpy()
    expected = _log_softmax(logits.astype(np.float64))[np.arange(B), actions]
    np.testing.assert_allclose(dist.log_prob(actions).numpy(), expected, rtol=1e-5, atol=1e-5)
    assert [v.name for v in head.trainable_variables] == ["categorical_head/logits/b:0",
                                                          "categorical_head/logits/w:0"]


def test_multi_categorical_samples_one_action_per_dimension_and_sums_log_probs():
    nvec = [3, 5, 2]
    head = MultiCategoricalHead(np.array(nvec))
    x = _features()
    head(x)
    head.logits.w.assign(tf.random.normal(head.logits.w.shape))
    dist = head(x)
    sample = dist.sample().numpy()
    assert sample.shape == (B, 3)
    flat = (x @ head.logits.w + head.logits.b).numpy().astype(np.float64)
    actions = np.stack([np.arange(B) % n for n in nvec], axis=1)
    expected, offset = np.zeros(B), 0
    for d, n in enumerate(nvec):
        expected += _log_softmax(flat[:, offset:offset + n])[np.arange(B), actions[:, d]]
        offset += n
    np.testing.assert_allclose(dist.log_prob(actions).numpy(), expected, rtol=1e-5, atol=1e-5)
    per_dim_entropy = sum(tfd.Categorical(logits=flat[:, o:o + n]).entropy().numpy()
                          for o, n in zip(np.cumsum([0] + nvec[:-1]), nvec))
    np.testing.assert_allclose(dist.entropy().numpy(), per_dim_entropy, rtol=1e-5, atol=1e-5)


def test_multi_categorical_padding_never_samples_invalid_actions():
    nvec = [2, 7, 1, 4]
    head = MultiCategoricalHead(nvec)
    x = _features(batch=500)
    head(x)
    head.logits.w.assign(10.0 * tf.random.normal(head.logits.w.shape))  # peaked, varied logits
    samples = head(x).sample(8).numpy().reshape(-1, 4)
    assert samples.shape == (4000, 4)
    for d, n in enumerate(nvec):
        assert samples[:, d].min() >= 0 and samples[:, d].max() < n
    assert np.all(samples[:, 2] == 0)  # a dimension of size 1 has a single action
    mode = head(x).mode().numpy()
    assert np.all(mode < np.array(nvec))


@pytest.mark.parametrize("state_dependent", [False, True])
def test_gaussian_log_prob_matches_the_diagonal_normal_formula(state_dependent):
    head = GaussianHead(3, state_dependent_std=state_dependent, log_std_init=-0.5)
    x = _features()
    dist = head(x)
    mean = (x @ head.mean.w + head.mean.b).numpy().astype(np.float64)
    if state_dependent:
        log_std = np.clip((x @ head.log_std_layer.w + head.log_std_layer.b).numpy(), -20, 2).astype(np.float64)
    else:
        log_std = np.broadcast_to(head.log_std.numpy(), mean.shape).astype(np.float64)
        assert np.allclose(head.log_std.numpy(), -0.5)
    a = np.random.default_rng(0).normal(size=mean.shape)
    expected = (-0.5 * ((a - mean) / np.exp(log_std)) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
    np.testing.assert_allclose(dist.log_prob(a.astype(np.float32)).numpy(), expected, rtol=1e-5, atol=1e-4)
    assert dist.sample().shape == (B, 3) and dist.event_shape == (3,)
    std = dist.stddev().numpy()
    if state_dependent:
        assert not np.allclose(std[0], std[1])  # the std depends on the state
        assert not hasattr(head, "log_std")
    else:
        assert np.allclose(std, std[0])  # one std for every state
        assert "gaussian_head/log_std:0" in [v.name for v in head.trainable_variables]


def test_gaussian_state_dependent_log_std_is_clipped():
    head = GaussianHead(2, state_dependent_std=True)
    x = _features()
    head(x)
    head.log_std_layer.b.assign([100.0, -100.0])
    std = head(x).stddev().numpy()
    np.testing.assert_allclose(std[:, 0], math.exp(2.0), rtol=1e-5)
    np.testing.assert_allclose(std[:, 1], math.exp(-20.0), rtol=1e-4)


@pytest.mark.parametrize("low, high", [([-1.0, -1.0], [1.0, 1.0]), ([-0.3, -7.1], [0.7, 3.3]),
                                       ([0.0, -1e30], [1e-3, 1e30])])
def test_deterministic_head_maps_extreme_pre_activations_exactly_to_the_bounds(low, high):
    space = gym.spaces.Box(np.array(low, np.float32), np.array(high, np.float32))
    head = DeterministicHead(space)
    x = tf.constant([[1.0, 1.0], [-1.0, -1.0], [0.3, -0.2]])
    head(x)
    head.layer.w.assign(tf.fill([2, 2], 1e4))
    head.layer.b.assign(tf.zeros([2]))
    out = head(x).numpy()
    assert np.array_equal(out[0], space.high)
    assert np.array_equal(out[1], space.low)
    assert np.all(out >= space.low) and np.all(out <= space.high)
    head.layer.w.assign(tf.random.normal([2, 2]))
    out = head(tf.random.normal([200, 2]) * 5).numpy()
    assert np.all(out >= space.low) and np.all(out <= space.high)


def test_deterministic_head_is_differentiable_inside_the_bounds():
    head = DeterministicHead(gym.spaces.Box(-2.0, 3.0, (2,), np.float32))
    x = _features(dim=2)
    with tf.GradientTape() as tape:
        out = head(x)
    grads = tape.gradient(out, head.trainable_variables)
    assert all(np.abs(g.numpy()).sum() > 0 for g in grads)


def test_deterministic_head_rejects_unbounded_or_non_box_spaces():
    with pytest.raises(ValueError, match="finite action bounds"):
        DeterministicHead(gym.spaces.Box(-np.inf, np.inf, (2,), np.float32))
    with pytest.raises(TypeError, match="needs a Box action space"):
        DeterministicHead(gym.spaces.Discrete(3))


def test_squashed_gaussian_log_prob_is_tfps_tanh_transformed_normal_and_log_std_is_clipped():
    head, x = SquashedGaussianHead(3), _features()
    head(x)  # creates the variables
    head.log_std.b.assign([30.0, -30.0, 0.0])  # clipped to SB3's [-20, 2] in the first two dimensions
    mean, log_std = head(x)
    assert np.all(log_std.numpy()[:, 0] == 2.0) and np.all(log_std.numpy()[:, 1] == -20.0)
    noise = tf.random.normal(mean.shape) * 3.0
    action, log_prob = head.sample(mean, log_std, noise)
    m, s = tf.cast(mean, tf.float64), tf.exp(tf.cast(log_std, tf.float64))
    u = m + s * tf.cast(noise, tf.float64)  # log pi(tanh(u)) = log N(u) - log |d tanh(u) / du|, in float64
    expected = tf.reduce_sum(tfd.Normal(m, s).log_prob(u) - tfp.bijectors.Tanh().forward_log_det_jacobian(u, 0), -1)
    np.testing.assert_allclose(log_prob.numpy(), expected.numpy(), rtol=1e-4, atol=1e-3)
    assert np.all(np.abs(action.numpy()) <= 1.0) and np.all(np.isfinite(log_prob.numpy()))
    np.testing.assert_allclose(head.mode(mean).numpy(), np.tanh(mean.numpy()), rtol=1e-6, atol=1e-6)
    with tf.GradientTape() as tape:  # reparameterized: the log-density depends on the weights through the sample
        _, lp = head.sample(*head(x), noise)
    assert all(g is not None for g in tape.gradient(lp, head.trainable_variables))


def test_value_head_returns_one_value_per_state():
    assert ValueHead()(_features()).shape == (B,)


def test_q_head_plain_and_dueling_shapes():
    x = _features()
    assert QHead(4)(x).shape == (B, 4)
    assert QHead(4, dueling=True)(x).shape == (B, 4)


def test_dueling_q_head_satisfies_the_mean_advantage_identity():
    head = QHead(5, dueling=True)
    x = _features()
    head(x)
    for v in head.trainable_variables:
        v.assign(tf.random.normal(v.shape))
    q = head(x).numpy().astype(np.float64)
    value = (x @ head.value.w + head.value.b).numpy()[:, 0]
    adv = (x @ head.advantage.w + head.advantage.b).numpy()
    np.testing.assert_allclose(q.mean(-1), value, rtol=1e-5, atol=1e-5)  # mean_a Q(s, a) = V(s)
    np.testing.assert_allclose(q - q.mean(-1, keepdims=True), adv - adv.mean(-1, keepdims=True), atol=1e-5)


def test_continuous_q_shapes_with_flat_and_image_observations():
    q = ContinuousQ((16, 16))
    assert q(tf.random.normal([B, 3]), tf.random.normal([B, 2])).shape == (B,)
    assert q.net.layers[1].w.shape == (5, 16)  # obs and action concatenated
    q_img = ContinuousQ((8,), torso=small_cnn(features=12))
    obs = tf.random.uniform([B, 10, 10, 3], 0, 255, tf.int32)
    assert q_img(tf.cast(obs, tf.uint8), tf.zeros([B, 1])).shape == (B,)
    assert q_img.net.layers[1].w.shape == (13, 8)


def test_make_policy_head_dispatches_on_the_action_space():
    assert isinstance(make_policy_head(gym.spaces.Discrete(3)), CategoricalHead)
    multi = make_policy_head(gym.spaces.MultiDiscrete([2, 3]))
    assert isinstance(multi, MultiCategoricalHead) and multi.nvec == [2, 3]
    gauss = make_policy_head(gym.spaces.Box(-1, 1, (2, 3), np.float32), state_dependent_std=True)
    assert isinstance(gauss, GaussianHead) and gauss.dim == 6 and gauss.state_dependent_std


def test_make_policy_head_rejects_unsupported_spaces():
    with pytest.raises(TypeError, match="No policy head for action space.*supported: Discrete, MultiDiscrete, Box"):
        make_policy_head(gym.spaces.Tuple([gym.spaces.Discrete(2)]))


def test_heads_compose_with_a_torso_in_tf_function():
    torso, head = mlp([8]), make_policy_head(gym.spaces.MultiDiscrete([3, 4]))

    @tf.function
    def act(obs):
        dist = head(torso(obs))
        a = dist.sample()
        return a, dist.log_prob(a)

    a, logp = act(tf.zeros([4, 2]))
    assert a.shape == (4, 2) and logp.shape == (4,)
    act(tf.ones([4, 2]))
    assert act.experimental_get_tracing_count() <= 2
