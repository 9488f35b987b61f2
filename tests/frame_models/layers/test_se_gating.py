"""SEGating against z * sigmoid(W2 ReLU(BN(W1 z))), with its bottleneck and serialisation."""

import keras
import numpy as np
import pytest

from frame_models.layers.se_gating import SEGating
from tests.frame_models.helpers import (
    batch_norm_inference,
    bn_params,
    check_config_round_trip,
    randomize_weights,
    sigmoid,
    weight,
)


@pytest.fixture
def z():
    return np.random.default_rng(5).normal(size=(5, 12)).astype("float32")


def make(z, reduction=4, seed=6):
    layer = SEGating(reduction)
    layer(z)
    randomize_weights(layer, np.random.default_rng(seed))
    return layer


def test_matches_formula_in_inference(z):
    layer = make(z)
    w1, w2 = weight(layer, "gating_weights_1"), weight(layer, "gating_weights_2")
    assert w1.shape == (12, 3) and w2.shape == (3, 12)
    hidden = np.maximum(batch_norm_inference(z @ w1, bn_params(layer, "gating_bn")), 0.0)
    expected = z * sigmoid(hidden @ w2)
    got = np.asarray(layer(z, training=False))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert layer.compute_output_shape(z.shape) == z.shape
    # No biases: the two kernels and the batch norm are all there is (2 H^2 / r + 4 H / r).
    assert len(layer.trainable_weights) == 4
    assert layer.count_params() == 2 * 12 * 3 + 4 * 3


def test_training_uses_batch_statistics(z):
    layer = make(z)
    w1, w2 = weight(layer, "gating_weights_1"), weight(layer, "gating_weights_2")
    bn = bn_params(layer, "gating_bn")
    h = z.astype(np.float64) @ w1
    h = bn["gamma"] * (h - h.mean(0)) / np.sqrt(h.var(0) + 1e-3) + bn["beta"]
    expected = z * sigmoid(np.maximum(h, 0.0) @ w2)
    np.testing.assert_allclose(np.asarray(layer(z, training=True)), expected, rtol=1e-4, atol=1e-5)


def test_gates_only_damp(z):
    y = np.asarray(make(z)(z, training=False))
    assert np.all(np.abs(y) <= np.abs(z) + 1e-7)
    assert np.all(np.sign(y) * np.sign(z) >= 0)


def test_variance_scaling_initialisation():
    layer = SEGating(2)
    layer.build((None, 512))
    w1 = np.asarray(layer.gating_weights_1)
    np.testing.assert_allclose(w1.std(), np.sqrt(2 / 512), rtol=0.05)
    # Truncated at two standard deviations of the underlying normal.
    assert np.abs(w1).max() < 2 * np.sqrt(2 / 512) / 0.87962566 + 1e-6


def test_arguments_are_checked():
    for bad in (0, -2, 2.5, "x", None, True):
        with pytest.raises(ValueError, match="reduction"):
            SEGating(bad)
    with pytest.raises(ValueError, match="reduction"):
        SEGating(16).build((None, 8))


def test_gradients_are_finite(z):
    import tensorflow as tf  # the test backend; the library itself never imports it

    layer = make(z)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(np.zeros_like(z), training=True))
    for g in tape.gradient(loss, layer.trainable_weights):
        assert g is None or np.all(np.isfinite(np.asarray(g)))


def test_config_round_trip(z):
    layer = make(z, reduction=3)
    check_config_round_trip(layer, z)
    assert layer.get_config()["reduction"] == 3


def test_in_functional_model(z, tmp_path):
    x_in = keras.Input((z.shape[-1],))
    model = keras.Model(x_in, keras.layers.Dense(2)(SEGating(4, name="se")(x_in)))
    model.compile(optimizer="adam", loss="mse", run_eagerly=True)
    model.fit(z, np.ones((len(z), 2), "float32"), verbose=0)
    path = tmp_path / "se.keras"
    model.save(path)
    revived = keras.models.load_model(path)
    np.testing.assert_allclose(np.asarray(revived(z)), np.asarray(model(z)), atol=1e-6)
