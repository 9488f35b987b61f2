"""NetFV against its numpy formula (free and coupled centres), with padding, empty videos and
serialisation, old configs included."""

import json
import zipfile

import keras
import numpy as np
import pytest

from frame_models.layers import FrameMask, NetFV
from tests.frame_models.helpers import (
    check_config_round_trip,
    frames,
    l2n,
    mask_of,
    randomize_weights,
    weight,
)
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


def _fv_reference(x, num_frames, layer, centers):
    """Eq. 3.11-3.12 with the given (D, K) centres (free or coupled)."""
    params = cluster_reference.assignment_params(layer)
    sigma = weight(layer, "covariance_weights") ** 2 + 1e-6

    def pool(v):
        a = cluster_reference.assign(v, params)
        z = (v[:, :, None] - centers[None]) / sigma[None]  # (N, D, K)
        fv1 = np.einsum("nk,ndk->dk", a, z)
        fv2 = np.einsum("nk,ndk->dk", a, z**2 - 1.0)
        return np.concatenate([l2n(l2n(fv1, axis=0).reshape(-1)), l2n(fv2.reshape(-1))])

    return cluster_reference.per_video(x, num_frames, pool)


@pytest.mark.parametrize("couple_weights", [False, True])
def test_coupled_and_free_centres_match_numpy(rng, couple_weights):
    x, num_frames = frames(rng)
    mask = mask_of(num_frames, x.shape[1])
    layer = NetFV(3, couple_weights=couple_weights)
    layer(x, mask=mask)
    randomize_weights(layer, rng)
    if couple_weights:
        centers = 0.01 * weight(layer, "cluster_weights")
        assert layer.cluster_centers is None
        assert not any(w.path.endswith("cluster_centers") for w in layer.weights)
    else:
        centers = weight(layer, "cluster_centers")
    expected = _fv_reference(x, num_frames, layer, centers)
    got = np.asarray(layer(x, mask=mask, training=False))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_coupling_saves_the_centre_weights(rng):
    x, num_frames = frames(rng)
    free, coupled = NetFV(3), NetFV(3, couple_weights=True, coupling_factor=0.5)
    free(x), coupled(x)
    assert free.count_params() - coupled.count_params() == x.shape[-1] * 3
    assert coupled.get_config()["coupling_factor"] == 0.5
    # The factor is used: with factor 0.5 the centres are half the assignment weights.
    expected = _fv_reference(x, num_frames, coupled, 0.5 * weight(coupled, "cluster_weights"))
    mask = mask_of(num_frames, x.shape[1])
    np.testing.assert_allclose(
        np.asarray(coupled(x, mask=mask, training=False)), expected, rtol=1e-4, atol=1e-5
    )


def test_coupled_config_round_trip(rng):
    x, num_frames = frames(rng)
    layer = NetFV(3, couple_weights=True)
    mask = mask_of(num_frames, x.shape[1])
    layer(x, mask=mask)
    randomize_weights(layer, rng)
    check_config_round_trip(layer, x, mask=mask)


def test_config_without_the_key_loads_as_before(rng, tmp_path):
    """A .keras file written before couple_weights existed has free centres and loads as such."""
    x, num_frames = frames(rng)
    frames_in = keras.Input((None, x.shape[-1]), name="frames")
    count_in = keras.Input((), dtype="int32", name="num_frames")
    mask = FrameMask()([count_in, frames_in])
    model = keras.Model([frames_in, count_in], NetFV(3, name="fv")(frames_in, mask=mask))
    randomize_weights(model.get_layer("fv"), rng)
    path = tmp_path / "model.keras"
    model.save(path)
    old = tmp_path / "old.keras"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(old, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                (fv,) = [c for c in config["config"]["layers"] if c["config"]["name"] == "fv"]
                del fv["config"]["couple_weights"], fv["config"]["coupling_factor"]
                data = json.dumps(config).encode()
            dst.writestr(item, data)
    revived = keras.models.load_model(old)
    assert revived.get_layer("fv").couple_weights is False
    np.testing.assert_allclose(
        np.asarray(revived([x, num_frames])), np.asarray(model([x, num_frames])), atol=1e-6
    )
    config = model.get_layer("fv").get_config()
    del config["couple_weights"]
    assert NetFV.from_config(config).couple_weights is False
