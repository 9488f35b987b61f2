"""Checks every cluster-pooling layer must pass; the per-layer test files call them."""

from __future__ import annotations

import keras
import numpy as np

from tests.frame_models.helpers import (
    check_config_round_trip,
    frames,
    mask_of,
    randomize_weights,
    with_garbage,
)


def make(layer_class, rng, use_batch_norm=True, num_clusters=3):
    x, num_frames = frames(rng)
    layer = layer_class(num_clusters, use_batch_norm=use_batch_norm)
    mask = mask_of(num_frames, x.shape[1])
    layer(x, mask=mask)
    randomize_weights(layer, rng)
    return layer, x, num_frames, mask


def check_matches_reference(layer_class, reference, rng, use_batch_norm):
    layer, x, num_frames, mask = make(layer_class, rng, use_batch_norm)
    expected = reference(x, num_frames, layer)
    got = np.asarray(layer(x, mask=mask, training=False))
    assert got.shape == layer.compute_output_shape(x.shape)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert np.all(got[2] == 0.0)  # the video without frames pools to zeros


def check_padding_is_ignored(layer_class, rng):
    layer, x, num_frames, mask = make(layer_class, rng)
    for training in (False, True):
        clean = np.asarray(layer(x * mask[..., None], mask=mask, training=training))
        for garbage in (np.nan, np.inf, 1e6):
            dirty = np.asarray(
                layer(with_garbage(x, num_frames, garbage), mask=mask, training=training)
            )
            np.testing.assert_allclose(dirty, clean, rtol=1e-5, atol=1e-6)
    # Without a mask every row is a frame, so the padding would count.
    unmasked = np.asarray(layer(x, training=False))
    assert not np.allclose(unmasked[1], np.asarray(layer(x, mask=mask, training=False))[1])


def check_batch_statistics_use_real_frames_only(layer_class, rng):
    """In training mode the assignment BN normalises with moments of the real frames only."""
    layer, x, num_frames, mask = make(layer_class, rng)
    logits = x[mask] @ layer.cluster_weights.numpy()  # (real frames, K)
    mean, var = logits.mean(axis=0), logits.var(axis=0)
    bn = layer.assignment_bn
    # Feed moving statistics equal to those moments: inference must then equal training.
    bn.moving_mean.assign(mean)
    bn.moving_variance.assign(var)
    np.testing.assert_allclose(
        np.asarray(layer(x, mask=mask, training=True)),
        np.asarray(layer(x, mask=mask, training=False)),
        rtol=1e-4,
        atol=1e-5,
    )


def check_gradients_are_finite_without_frames(layer_class, rng):
    import tensorflow as tf  # the test backend; the library itself never imports it

    layer, x, _, _ = make(layer_class, rng)
    empty = np.zeros((2, 4, x.shape[-1]), "float32")
    mask = np.zeros((2, 4), bool)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(empty, mask=mask, training=True))
    grads = tape.gradient(loss, layer.trainable_weights)
    for g in grads:
        if g is not None:
            assert np.all(np.isfinite(np.asarray(g)))


def check_serialization(layer_class, rng):
    for use_batch_norm in (True, False):
        layer, x, _, mask = make(layer_class, rng, use_batch_norm)
        check_config_round_trip(layer, x, mask=mask)


def check_in_functional_model(layer_class, rng, tmp_path):
    """Builds with unknown T inside a model, trains a step, and survives a .keras round trip."""
    from frame_models.layers import FrameMask

    x, num_frames = frames(rng)
    frames_in = keras.Input((None, x.shape[-1]), name="frames")
    count_in = keras.Input((), dtype="int32", name="num_frames")
    mask = FrameMask()([count_in, frames_in])
    pooled = layer_class(3, name="pool")(frames_in, mask=mask)
    model = keras.Model([frames_in, count_in], keras.layers.Dense(2)(pooled))
    model.compile(optimizer="adam", loss="mse", run_eagerly=True)
    model.fit([x, num_frames], np.ones((len(x), 2), "float32"), verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    revived = keras.models.load_model(path)
    np.testing.assert_allclose(
        np.asarray(revived([x, num_frames])), np.asarray(model([x, num_frames])), atol=1e-6
    )
