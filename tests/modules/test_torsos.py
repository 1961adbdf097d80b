"""Torsos: mlp, CNNs, and make_torso for each kind of observation space."""
import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf

from tlrl.layers import Dense, LayerNorm, Sequential
from tlrl.modules import DictTorso, make_torso, mlp, nature_cnn, small_cnn
from tlrl.modules.torsos import is_image_space


def test_mlp_flattens_and_applies_hidden_layers_with_orthogonal_init():
    net = mlp([32, 16], activation="relu")
    y = net(tf.random.normal([4, 2, 3]))
    assert y.shape == (4, 16)
    assert np.all(y.numpy() >= 0)
    w = net.layers[1].w.numpy().astype(np.float64)  # [6, 32]: wide, rows orthonormal * sqrt(2)
    np.testing.assert_allclose(w @ w.T, 2.0 * np.eye(6), atol=1e-5)


def test_mlp_with_layer_norm_normalizes_before_the_activation():
    net = mlp([8], activation="relu", layer_norm=True)
    net(tf.zeros([2, 3]))
    kinds = [type(layer).__name__ for layer in net.layers]
    assert kinds == ["Flatten", "Dense", "LayerNorm", "Lambda"]
    assert net.layers[1].activation is None
    assert sorted(v.name for v in net.trainable_variables) == [
        "mlp/dense_0/b:0", "mlp/dense_0/w:0", "mlp/norm_0/beta:0", "mlp/norm_0/gamma:0"]


def test_nature_cnn_maps_84x84x4_frames_to_features():
    net = nature_cnn()
    out = net(tf.zeros([2, 84, 84, 4], tf.uint8))
    assert out.shape == (2, 512)
    assert [layer.w.shape.as_list() for layer in net.layers if hasattr(layer, "w")] == [
        [8, 8, 4, 32], [4, 4, 32, 64], [3, 3, 64, 64], [7 * 7 * 64, 512]]


def test_make_torso_for_flat_box_is_an_mlp():
    torso = make_torso(gym.spaces.Box(-1, 1, (5,), np.float32), hidden=(16, 8))
    assert isinstance(torso, Sequential) and torso.name == "mlp"
    assert torso(tf.zeros([3, 5])).shape == (3, 8)


def test_make_torso_for_uint8_images_scales_pixels_by_1_over_255():
    space = gym.spaces.Box(0, 255, (84, 84, 4), np.uint8)
    torso = make_torso(space)
    frames = np.random.default_rng(0).integers(0, 256, (2, 84, 84, 4)).astype(np.uint8)
    out = torso(tf.constant(frames))
    assert out.shape == (2, 512)
    x = tf.constant(frames.astype(np.float32) / 255.0)  # what the layers after the scaling must see
    for layer in torso.layers[1:]:
        x = layer(x)
    np.testing.assert_allclose(out.numpy(), x.numpy(), rtol=1e-5, atol=1e-5)


def test_make_torso_for_small_or_float_images():
    small = make_torso(gym.spaces.Box(0, 255, (10, 10, 3), np.uint8))
    assert small.name == "small_cnn" and small(tf.zeros([1, 10, 10, 3], tf.uint8)).shape == (1, 256)
    float_frames = make_torso(gym.spaces.Box(0.0, 1.0, (84, 84, 1), np.float32))
    x = tf.random.uniform([1, 84, 84, 1])
    float_frames(x)
    h = x
    for layer in float_frames.layers[1:]:
        h = layer(h)
    np.testing.assert_allclose(float_frames(x).numpy(), h.numpy(), atol=1e-6)  # scale 1: no rescaling
    custom = make_torso(gym.spaces.Box(0, 255, (84, 84, 3), np.uint8), cnn=lambda: small_cnn(features=7))
    assert custom(tf.zeros([1, 84, 84, 3], tf.uint8)).shape == (1, 7)


def test_is_image_space_needs_hwc_with_few_channels():
    assert is_image_space(gym.spaces.Box(0, 255, (64, 64, 3), np.uint8))
    assert not is_image_space(gym.spaces.Box(0, 1, (64, 64, 9), np.float32))
    assert not is_image_space(gym.spaces.Box(0, 1, (4, 4, 3), np.float32))
    assert not is_image_space(gym.spaces.Box(0, 1, (64, 64), np.float32))


@pytest.mark.parametrize("start", [0, 3])
def test_make_torso_for_discrete_one_hot_encodes_the_observation(start):
    space = gym.spaces.Discrete(4, start=start)
    torso = make_torso(space, hidden=(8,))
    obs = tf.constant([start + 2, start, start + 3])
    out = torso(obs)
    assert out.shape == (3, 8)
    net = torso.layers[-1]  # the mlp after the one-hot
    one_hot = np.eye(4, dtype=np.float32)[[2, 0, 3]]
    np.testing.assert_allclose(out.numpy(), net(tf.constant(one_hot)).numpy(), atol=1e-6)


def test_make_torso_for_dict_concatenates_features_in_sorted_key_order():
    space = gym.spaces.Dict({"zeta": gym.spaces.Box(-1, 1, (3,), np.float32),
                             "alpha": gym.spaces.Box(-1, 1, (2,), np.float32),
                             "mid": gym.spaces.Discrete(5)})
    torso = make_torso(space, hidden=(4,))
    assert isinstance(torso, DictTorso) and torso.keys == ["alpha", "mid", "zeta"]
    obs = {"zeta": tf.random.normal([2, 3]), "alpha": tf.random.normal([2, 2]), "mid": tf.constant([1, 4])}
    out = torso(obs).numpy()
    assert out.shape == (2, 12)
    parts = [torso.torsos[k](obs[k]).numpy() for k in ("alpha", "mid", "zeta")]
    np.testing.assert_array_equal(out, np.concatenate(parts, axis=-1))
    names = [v.name for v in torso.trainable_variables]
    assert len(set(names)) == len(names) == 6  # one scope per key keeps names distinct
    assert "dict_torso/alpha/mlp/dense_0/w:0" in names


def test_dict_torso_reports_missing_keys_and_empty_dicts():
    torso = DictTorso({"a": mlp([2]), "b": mlp([2])})
    with pytest.raises(KeyError, match=r"lacks keys \['b'\]"):
        torso({"a": tf.zeros([1, 2])})
    with pytest.raises(ValueError, match="at least one key"):
        DictTorso({})


def test_make_torso_for_multi_binary_and_multi_discrete_is_an_mlp():
    for space in (gym.spaces.MultiBinary(6), gym.spaces.MultiDiscrete([2, 3, 4])):
        torso = make_torso(space, hidden=(5,))
        n = int(np.prod(space.shape))
        assert torso(tf.zeros([2, n])).shape == (2, 5)


def test_make_torso_rejects_unsupported_spaces():
    with pytest.raises(TypeError, match="No default torso for observation space.*pass your own torso"):
        make_torso(gym.spaces.Tuple([gym.spaces.Discrete(2)]))


def test_custom_torso_parts_compose_with_tlrl_layers():
    torso = Sequential([small_cnn(features=16), LayerNorm(), Dense(4)], name="custom")
    assert torso(tf.zeros([2, 12, 12, 1])).shape == (2, 4)
    assert any(v.name.startswith("custom/small_cnn/conv_0/") for v in torso.trainable_variables)


def test_small_cnn_sees_every_pixel_of_a_small_image():
    """Regression: VALID padding on the strided conv dropped the last row/column (Catch's paddle row)."""
    import tensorflow as tf

    from tlrl.modules.torsos import small_cnn

    net = small_cnn()
    x = tf.random.uniform([1, 10, 10, 1])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(net(x) ** 2)
    grad = tape.gradient(y, x).numpy()[0, :, :, 0]
    assert (abs(grad).sum(axis=1) > 0).all() and (abs(grad).sum(axis=0) > 0).all()
