"""NetFV against its numpy formula, with padding, empty videos and serialisation."""

import numpy as np
import pytest

from frame_models.layers import NetFV
from tests.frame_models.layers import cluster_checks, cluster_reference


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.mark.parametrize("use_batch_norm", [True, False])
def test_matches_numpy_formula(rng, use_batch_norm):
    cluster_checks.check_matches_reference(NetFV, cluster_reference.netfv, rng, use_batch_norm)


def test_padding_is_ignored(rng):
    cluster_checks.check_padding_is_ignored(NetFV, rng)


def test_batch_statistics_use_real_frames_only(rng):
    cluster_checks.check_batch_statistics_use_real_frames_only(NetFV, rng)


def test_gradients_are_finite_without_frames(rng):
    cluster_checks.check_gradients_are_finite_without_frames(NetFV, rng)


def test_config_round_trip(rng):
    cluster_checks.check_serialization(NetFV, rng)


def test_in_functional_model(rng, tmp_path):
    cluster_checks.check_in_functional_model(NetFV, rng, tmp_path)


def test_covariances_stay_positive(rng):
    """sigma = w^2 + 1e-6: flipping the sign of the covariance weights changes nothing."""
    layer, x, _, mask = cluster_checks.make(NetFV, rng)
    before = np.asarray(layer(x, mask=mask))
    layer.covariance_weights.assign(-layer.covariance_weights.numpy())
    np.testing.assert_allclose(np.asarray(layer(x, mask=mask)), before, rtol=1e-6)
