"""NetRVLAD against its numpy formula, with padding, empty videos and serialisation."""

import numpy as np
import pytest

from frame_models.layers import NetRVLAD
from tests.frame_models.layers import cluster_checks, cluster_reference


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.mark.parametrize("use_batch_norm", [True, False])
def test_matches_numpy_formula(rng, use_batch_norm):
    cluster_checks.check_matches_reference(
        NetRVLAD, cluster_reference.netrvlad, rng, use_batch_norm
    )


def test_padding_is_ignored(rng):
    cluster_checks.check_padding_is_ignored(NetRVLAD, rng)


def test_batch_statistics_use_real_frames_only(rng):
    cluster_checks.check_batch_statistics_use_real_frames_only(NetRVLAD, rng)


def test_gradients_are_finite_without_frames(rng):
    cluster_checks.check_gradients_are_finite_without_frames(NetRVLAD, rng)


def test_config_round_trip(rng):
    cluster_checks.check_serialization(NetRVLAD, rng)


def test_in_functional_model(rng, tmp_path):
    cluster_checks.check_in_functional_model(NetRVLAD, rng, tmp_path)
