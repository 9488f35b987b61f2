"""ContextGating against sigmoid(W x + b) * x, with and without batch norm on the gates."""

import numpy as np
import pytest

from frame_models.layers import ContextGating
from tests.frame_models.helpers import (
    batch_norm_inference,
    bn_params,
    check_config_round_trip,
    randomize_weights,
    sigmoid,
    weight,
)


@pytest.fixture
def x():
    return np.random.default_rng(1).normal(size=(4, 6)).astype("float32")


def test_with_bias_matches_formula(x):
    layer = ContextGating(use_batch_norm=False)
    layer(x)
    randomize_weights(layer, np.random.default_rng(2))
    w, b = weight(layer, "gating_weights"), weight(layer, "gating_biases")
    expected = sigmoid(x @ w + b) * x
    np.testing.assert_allclose(np.asarray(layer(x)), expected, rtol=1e-5, atol=1e-6)


def test_with_batch_norm_matches_formula(x):
    layer = ContextGating()
    layer(x)
    randomize_weights(layer, np.random.default_rng(3))
    gates = batch_norm_inference(x @ weight(layer, "gating_weights"), bn_params(layer, "gates_bn"))
    np.testing.assert_allclose(
        np.asarray(layer(x, training=False)), sigmoid(gates) * x, rtol=1e-5, atol=1e-6
    )
    assert not any(w.path.endswith("gating_biases") for w in layer.weights)


def test_gates_only_damp(x):
    """|y| <= |x| elementwise and the sign is kept: the gate is in [0, 1]."""
    layer = ContextGating(use_batch_norm=False)
    y = np.asarray(layer(x))
    assert np.all(np.abs(y) <= np.abs(x) + 1e-7)
    assert np.all(np.sign(y) * np.sign(x) >= 0)


@pytest.mark.parametrize("use_batch_norm", [True, False])
def test_config_round_trip(x, use_batch_norm):
    layer = ContextGating(use_batch_norm=use_batch_norm)
    layer(x)
    randomize_weights(layer, np.random.default_rng(4))
    check_config_round_trip(layer, x)
    assert layer.compute_output_shape(x.shape) == x.shape
