"""PooledRepresentation: concat -> FC -> BN (or bias) -> CG / GLU / nothing."""

import keras
import numpy as np
import pytest

from frame_models.layers import GLU, ContextGating, PooledRepresentation
from tests.frame_models.helpers import (
    batch_norm_inference,
    bn_params,
    check_config_round_trip,
    randomize_weights,
    sigmoid,
    weight,
)


@pytest.fixture
def streams():
    rng = np.random.default_rng(9)
    return [rng.normal(size=(4, 5)).astype("float32"), rng.normal(size=(4, 3)).astype("float32")]


def test_batch_norm_and_context_gating_match_formula(streams):
    layer = PooledRepresentation(6, gating="cg")
    layer(streams)
    randomize_weights(layer, np.random.default_rng(10))
    h = np.concatenate(streams, axis=1) @ weight(layer, "kernel")
    h = batch_norm_inference(h, bn_params(layer, "hidden_bn"))
    gates = batch_norm_inference(
        h @ weight(layer, "context_gating/gating_weights"),
        bn_params(layer, "context_gating/gates_bn"),
    )
    got = np.asarray(layer(streams, training=False))
    assert got.shape == layer.compute_output_shape([s.shape for s in streams]) == (4, 6)
    np.testing.assert_allclose(got, sigmoid(gates) * h, rtol=1e-5, atol=1e-6)


def test_bias_without_batch_norm_or_gating(streams):
    layer = PooledRepresentation(6, use_batch_norm=False, gating=None)
    layer(streams)
    randomize_weights(layer, np.random.default_rng(11))
    expected = np.concatenate(streams, axis=1) @ weight(layer, "kernel") + weight(layer, "bias")
    np.testing.assert_allclose(np.asarray(layer(streams)), expected, rtol=1e-5, atol=1e-6)
    assert layer.gate is None and layer.hidden_bn is None


def test_single_tensor_input(streams):
    layer = PooledRepresentation(2, gating=None)
    assert tuple(layer(streams[0]).shape) == (4, 2)


@pytest.mark.parametrize("gating, gate_class", [("cg", ContextGating), ("glu", GLU)])
def test_gating_choice_and_round_trip(streams, gating, gate_class):
    layer = PooledRepresentation(
        6, gating=gating, kernel_initializer=keras.initializers.RandomNormal(stddev=0.3)
    )
    layer(streams)
    assert isinstance(layer.gate, gate_class)
    check_config_round_trip(layer, streams)
    assert layer.get_config()["kernel_initializer"]["config"]["stddev"] == 0.3


def test_rejects_unknown_gating():
    with pytest.raises(ValueError, match="gating"):
        PooledRepresentation(4, gating="max")
