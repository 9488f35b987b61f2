"""GLU against sigmoid(W1 x + b1) * (W2 x + b2)."""

import numpy as np
import pytest

from frame_models.layers import GLU
from tests.frame_models.helpers import check_config_round_trip, randomize_weights, sigmoid, weight


@pytest.mark.parametrize("units", [None, 3])
def test_matches_formula(units):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 6)).astype("float32")
    layer = GLU(units)
    layer(x)
    randomize_weights(layer, rng)
    gates = sigmoid(x @ weight(layer, "gate_kernel") + weight(layer, "gate_bias"))
    expected = gates * (x @ weight(layer, "linear_kernel") + weight(layer, "linear_bias"))
    got = np.asarray(layer(x))
    assert got.shape == layer.compute_output_shape(x.shape) == (4, units or 6)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    check_config_round_trip(layer, x)


def test_rejects_bad_units():
    with pytest.raises(ValueError, match="units"):
        GLU(0)
