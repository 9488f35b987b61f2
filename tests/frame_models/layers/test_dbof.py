"""SoftDBoF, GatedDBoF and DBoF against numpy formulas, with padding, empty videos and saving."""

import functools

import numpy as np
import pytest

from frame_models.layers.dbof import DBoF, GatedDBoF, SoftDBoF, masked_max
from tests.frame_models.helpers import (
    BN_EPSILON,
    batch_norm_inference,
    bn_params,
    check_config_round_trip,
    frames,
    l2n,
    mask_of,
    sigmoid,
    weight,
)
from tests.frame_models.layers import cluster_checks
from tests.frame_models.layers.cluster_reference import assign, assignment_params, per_video

SOFT_MAX = functools.partial(SoftDBoF, max_pool=True)
AVERAGE = functools.partial(DBoF, pooling="average")
# Every layer here with its numpy reference.
LAYERS = {
    "soft": SoftDBoF,
    "soft_max_pool": SOFT_MAX,
    "gated": GatedDBoF,
    "dbof_max": DBoF,
    "dbof_average": AVERAGE,
}


def _frame_max(a):
    """Max over the frames of one video; zeros without frames."""
    return a.max(axis=0) if len(a) else np.zeros(a.shape[1])


def soft_dbof_reference(x, num_frames, layer):
    params = assignment_params(layer)

    def pool(v):
        a = assign(v, params)  # (N, K)
        pooled = l2n(a.sum(axis=0))
        return np.concatenate([pooled, l2n(_frame_max(a))]) if layer.max_pool else pooled

    return per_video(x, num_frames, pool)


def _gate_logits(peak, layer):
    z = peak @ weight(layer, "dim_red") @ weight(layer, "gate_weights")
    if layer.use_batch_norm:
        return batch_norm_inference(z, bn_params(layer, "gate_bn"))
    return z + weight(layer, "gate_biases")


def gated_dbof_reference(x, num_frames, layer):
    params = assignment_params(layer)

    def pool(v):
        a = assign(v, params)
        g = sigmoid(_gate_logits(l2n(_frame_max(a)), layer))
        return l2n(g * a.sum(axis=0))

    return per_video(x, num_frames, pool)


def dbof_reference(x, num_frames, layer):
    w = weight(layer, "projection_weights")

    def pool(v):
        z = v @ w
        if layer.use_batch_norm:
            z = batch_norm_inference(z, bn_params(layer, "projection_bn"))
        else:
            z = z + weight(layer, "projection_biases")
        h = np.clip(z, 0.0, 6.0)  # relu6
        if layer.pooling == "max":
            return _frame_max(h)
        return h.mean(axis=0) if len(h) else np.zeros(w.shape[1])

    return per_video(x, num_frames, pool)


REFERENCES = {
    "soft": soft_dbof_reference,
    "soft_max_pool": soft_dbof_reference,
    "gated": gated_dbof_reference,
    "dbof_max": dbof_reference,
    "dbof_average": dbof_reference,
}


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.mark.parametrize("use_batch_norm", [True, False])
@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_matches_numpy_formula(rng, kind, use_batch_norm):
    cluster_checks.check_matches_reference(LAYERS[kind], REFERENCES[kind], rng, use_batch_norm)


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_padding_is_ignored(rng, kind):
    cluster_checks.check_padding_is_ignored(LAYERS[kind], rng)


@pytest.mark.parametrize("kind", ["soft", "soft_max_pool"])
def test_batch_statistics_use_real_frames_only(rng, kind):
    cluster_checks.check_batch_statistics_use_real_frames_only(LAYERS[kind], rng)


def _batch_norm_training(z, p):
    return p["gamma"] * (z - z.mean(axis=0)) / np.sqrt(z.var(axis=0) + BN_EPSILON) + p["beta"]


def test_gated_batch_statistics(rng):
    """Training mode: assignment moments over real frames only, gate moments over the videos."""
    layer, x, num_frames, mask = cluster_checks.make(GatedDBoF, rng)
    params = assignment_params(layer)
    logits = x[mask] @ params["W"]
    assignment = {**params["bn"], "moving_mean": logits.mean(0), "moving_variance": logits.var(0)}
    peaks, sums = [], []
    for b, n in enumerate(num_frames):
        a = assign(np.asarray(x[b, :n], np.float64), {"W": params["W"], "bn": assignment})
        peaks.append(l2n(_frame_max(a)))
        sums.append(a.sum(axis=0))
    z = np.stack(peaks) @ weight(layer, "dim_red") @ weight(layer, "gate_weights")
    expected = l2n(sigmoid(_batch_norm_training(z, bn_params(layer, "gate_bn"))) * np.stack(sums))
    got = np.asarray(layer(x, mask=mask, training=True))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_dbof_batch_statistics_use_real_frames_only(rng):
    layer, x, num_frames, mask = cluster_checks.make(DBoF, rng)
    z = x[mask] @ layer.projection_weights.numpy()
    layer.projection_bn.moving_mean.assign(z.mean(axis=0))
    layer.projection_bn.moving_variance.assign(z.var(axis=0))
    np.testing.assert_allclose(
        np.asarray(layer(x, mask=mask, training=True)),
        np.asarray(layer(x, mask=mask, training=False)),
        rtol=1e-4,
        atol=1e-5,
    )


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_gradients_are_finite_without_frames(rng, kind):
    cluster_checks.check_gradients_are_finite_without_frames(LAYERS[kind], rng)


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_config_round_trip(rng, kind):
    cluster_checks.check_serialization(LAYERS[kind], rng)


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_in_functional_model(rng, tmp_path, kind):
    cluster_checks.check_in_functional_model(LAYERS[kind], rng, tmp_path)


def test_output_shapes():
    x = np.zeros((2, 3, 5), "float32")
    for layer, size in [
        (SoftDBoF(4), 4),
        (SoftDBoF(4, max_pool=True), 8),
        (GatedDBoF(4), 4),
        (DBoF(6), 6),
    ]:
        out = layer(x)
        assert out.shape == (2, size) == layer.compute_output_shape(x.shape)


def test_gate_weights_shapes(rng):
    layer, x, _, _ = cluster_checks.make(GatedDBoF, rng)
    assert layer.dim_red.shape == (3, x.shape[-1]) and layer.gate_weights.shape == (x.shape[-1], 3)


def test_masked_max_lets_no_padding_win(rng):
    """All real values negative: zero (or NaN) padding must not be the maximum."""
    import tensorflow as tf  # the test backend; the library itself never imports it

    x, num_frames = frames(rng)
    x = -np.abs(x) - 1.0
    mask = mask_of(num_frames, x.shape[1])
    dirty = x.copy()
    dirty[~mask] = np.nan
    got = np.asarray(masked_max(dirty, mask))
    np.testing.assert_allclose(got[0], x[0].max(axis=0))
    np.testing.assert_allclose(got[1], x[1, :2].max(axis=0))
    assert np.all(got[2] == 0.0)
    variable = tf.Variable(x)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(masked_max(variable, mask))
    grad = np.asarray(tape.gradient(loss, variable))
    assert np.all(np.isfinite(grad)) and np.all(grad[~mask] == 0.0)
    assert grad[0].sum() == pytest.approx(x.shape[-1])  # one winner per dimension


def test_bad_arguments():
    with pytest.raises(ValueError, match="pooling"):
        DBoF(4, pooling="median")
    with pytest.raises(ValueError, match="num_clusters"):
        DBoF(0)
    with pytest.raises(ValueError, match="num_clusters"):
        GatedDBoF(0)


def test_soft_dbof_without_max_pool_is_soft_bow(rng):
    from frame_models.layers import SoftBoW

    layer, x, _, mask = cluster_checks.make(SoftDBoF, rng)
    bow = SoftBoW(3)
    bow(x, mask=mask)
    bow.set_weights(layer.get_weights())
    np.testing.assert_allclose(
        np.asarray(layer(x, mask=mask, training=False)),
        np.asarray(bow(x, mask=mask, training=False)),
        atol=1e-6,
    )
    check_config_round_trip(layer, x, mask=mask)
