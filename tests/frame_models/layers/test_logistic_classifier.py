"""LogisticClassifier against sigmoid(x W + b)."""

import numpy as np

from frame_models.layers import LogisticClassifier
from tests.frame_models.helpers import check_config_round_trip, randomize_weights, sigmoid, weight


def test_matches_formula_and_round_trips():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(4, 5)).astype("float32")
    layer = LogisticClassifier(num_classes=3, l2_penalty=0.2)
    layer(x)
    randomize_weights(layer, rng)
    expected = sigmoid(x @ weight(layer, "kernel") + weight(layer, "bias"))
    got = np.asarray(layer(x))
    assert got.shape == layer.compute_output_shape(x.shape) == (4, 3)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        float(sum(np.asarray(v) for v in layer.losses)),
        0.2 * (weight(layer, "kernel") ** 2).sum() / 2,
        rtol=1e-5,
    )
    check_config_round_trip(layer, x)
