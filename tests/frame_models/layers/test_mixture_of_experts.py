"""MixtureOfExperts against the starter code's formula, with the dummy expert."""

import numpy as np
import pytest

from frame_models.layers import MixtureOfExperts
from tests.frame_models.helpers import check_config_round_trip, randomize_weights, sigmoid, weight


def reference(x, layer):
    """p_c = sum_{m<M} softmax_{M+1}(x G_c)_m * sigmoid(x E_{c,m} + e_{c,m}), class by class."""
    num_classes, mixtures = layer.num_classes, layer.num_mixtures
    gates, kernel, bias = (
        weight(layer, "gating_kernel"),
        weight(layer, "expert_kernel"),
        weight(layer, "expert_bias"),
    )
    out = np.zeros((len(x), num_classes))
    for c in range(num_classes):
        logits = x @ gates[:, c * (mixtures + 1) : (c + 1) * (mixtures + 1)]  # (B, M+1)
        g = np.exp(logits - logits.max(1, keepdims=True))
        g /= g.sum(1, keepdims=True)
        for m in range(mixtures):
            expert = sigmoid(x @ kernel[:, c * mixtures + m] + bias[c * mixtures + m])
            out[:, c] += g[:, m] * expert
    return out


@pytest.mark.parametrize("num_mixtures", [1, 2, 4])
def test_matches_formula(num_mixtures):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(5, 7)).astype("float32")
    layer = MixtureOfExperts(num_classes=3, num_mixtures=num_mixtures)
    layer(x)
    randomize_weights(layer, rng)
    got = np.asarray(layer(x))
    assert got.shape == layer.compute_output_shape(x.shape) == (5, 3)
    np.testing.assert_allclose(got, reference(x, layer), rtol=1e-5, atol=1e-6)
    assert np.all((got >= 0) & (got <= 1))


def test_dummy_expert_can_switch_a_class_off():
    """A dominant dummy gate drives the probability to 0 whatever the experts say."""
    x = np.ones((1, 2), "float32")
    layer = MixtureOfExperts(num_classes=1, num_mixtures=2)
    layer(x)
    layer.gating_kernel.assign(np.array([[0.0, 0.0, 50.0]] * 2, "float32"))
    layer.expert_bias.assign(np.array([50.0, 50.0], "float32"))
    assert float(np.asarray(layer(x))[0, 0]) < 1e-6


def test_l2_penalty_is_slim_style():
    """Regularisation loss = l2 * sum(w^2) / 2 over both kernels (not the bias)."""
    layer = MixtureOfExperts(num_classes=2, num_mixtures=2, l2_penalty=0.1)
    layer(np.zeros((1, 3), "float32"))
    expected = (
        0.1
        * (
            (weight(layer, "gating_kernel") ** 2).sum()
            + (weight(layer, "expert_kernel") ** 2).sum()
        )
        / 2
    )
    np.testing.assert_allclose(float(sum(np.asarray(v) for v in layer.losses)), expected, rtol=1e-5)
    assert MixtureOfExperts(2, l2_penalty=0.0).get_config()["l2_penalty"] == 0.0


def test_config_round_trip():
    x = np.random.default_rng(7).normal(size=(2, 4)).astype("float32")
    layer = MixtureOfExperts(num_classes=3, num_mixtures=3, l2_penalty=1e-6)
    layer(x)
    check_config_round_trip(layer, x)
