"""NetVLAGD against its numpy formula, with padding, empty videos and serialisation."""

import numpy as np
import pytest

from frame_models.layers.netvlagd import NetVLAGD
from tests.frame_models.helpers import l2n, sigmoid, weight
from tests.frame_models.layers import cluster_checks
from tests.frame_models.layers.cluster_reference import assign, assignment_params, per_video


def netvlagd_reference(x, num_frames, layer):
    params = assignment_params(layer)
    gate = sigmoid(weight(layer, "gate_weights"))  # (D, K)

    def pool(v):
        a = assign(v, params)
        vlagd = np.einsum("nk,nd->dk", a, v) * gate
        return l2n(l2n(vlagd, axis=0).reshape(-1))

    return per_video(x, num_frames, pool)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.mark.parametrize("use_batch_norm", [True, False])
def test_matches_numpy_formula(rng, use_batch_norm):
    cluster_checks.check_matches_reference(NetVLAGD, netvlagd_reference, rng, use_batch_norm)


def test_padding_is_ignored(rng):
    cluster_checks.check_padding_is_ignored(NetVLAGD, rng)


def test_batch_statistics_use_real_frames_only(rng):
    cluster_checks.check_batch_statistics_use_real_frames_only(NetVLAGD, rng)


def test_gradients_are_finite_without_frames(rng):
    cluster_checks.check_gradients_are_finite_without_frames(NetVLAGD, rng)


def test_config_round_trip(rng):
    cluster_checks.check_serialization(NetVLAGD, rng)


def test_in_functional_model(rng, tmp_path):
    cluster_checks.check_in_functional_model(NetVLAGD, rng, tmp_path)


def test_gate_is_per_dimension_and_cluster(rng):
    """The gate is a (D, K) weight; with all gates equal NetVLAGD is NetRVLAD."""
    from frame_models.layers import NetRVLAD

    layer, x, _, mask = cluster_checks.make(NetVLAGD, rng)
    assert layer.gate_weights.shape == (x.shape[-1], 3)
    assert [w.name for w in layer.trainable_weights].count("cluster_centers") == 0
    gated = np.asarray(layer(x, mask=mask, training=False))
    rvlad = NetRVLAD(3)
    rvlad(x, mask=mask)
    rvlad.set_weights([w.numpy() for w in layer.weights if w.name != "gate_weights"])
    plain = np.asarray(rvlad(x, mask=mask, training=False))
    assert not np.allclose(gated, plain)
    layer.gate_weights.assign(np.full(layer.gate_weights.shape, 0.7, "float32"))
    np.testing.assert_allclose(np.asarray(layer(x, mask=mask, training=False)), plain, atol=1e-6)
