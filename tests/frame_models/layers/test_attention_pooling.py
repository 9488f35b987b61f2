"""TransformerEncoderBlock and AttentionPooling against numpy formulas, padding and saving."""

import math

import keras
import numpy as np
import pytest

from frame_models.layers import FrameMask, MaskedAverage
from frame_models.layers.attention_pooling import AttentionPooling, TransformerEncoderBlock
from tests.frame_models.helpers import (
    check_config_round_trip,
    frames,
    mask_of,
    randomize_weights,
    softmax,
    weight,
    with_garbage,
)

SIZE, HEADS, FF = 8, 2, 12
_erf = np.vectorize(math.erf)


@pytest.fixture
def rng():
    return np.random.default_rng(70)


def layer_norm(z, layer, name):
    sub = getattr(layer, name)
    mean, var = z.mean(-1, keepdims=True), z.var(-1, keepdims=True)
    normed = (z - mean) / np.sqrt(var + sub.epsilon)
    return normed * weight(layer, f"{name}/gamma") + weight(layer, f"{name}/beta")


def gelu(z):
    return 0.5 * z * (1.0 + _erf(z / math.sqrt(2.0)))


def block_reference(x, num_frames, layer):
    """The pre-LN block on each video's real frames alone; padded rows are zero."""
    w = {
        k: weight(layer, f"attention/{k}")
        for k in ("query/kernel", "query/bias", "key/kernel", "key/bias", "value/kernel")
    }
    w["value/bias"] = weight(layer, "attention/value/bias")
    out_kernel = weight(layer, "attention/attention_output/kernel")  # (N, H, D)
    out_bias = weight(layer, "attention/attention_output/bias")
    head_size = out_kernel.shape[1]
    out = np.zeros(x.shape, np.float64)
    for b, n in enumerate(num_frames):
        if not n:
            continue
        v = x[b, :n].astype(np.float64)  # (n, D), the padding never read
        h = layer_norm(v, layer, "attention_norm")
        q, k, val = (
            np.einsum("td,dnh->tnh", h, w[f"{p}/kernel"]) + w[f"{p}/bias"]
            for p in ("query", "key", "value")
        )
        scores = np.einsum("tnh,snh->nts", q, k) / math.sqrt(head_size)  # (N, T, S)
        heads = np.einsum("nts,snh->tnh", softmax(scores), val)
        v = v + np.einsum("tnh,nhd->td", heads, out_kernel) + out_bias
        hidden = layer_norm(v, layer, "feed_forward_norm") @ weight(
            layer, "feed_forward_hidden/kernel"
        ) + weight(layer, "feed_forward_hidden/bias")
        ff = gelu(hidden) @ weight(layer, "feed_forward_output/kernel") + weight(
            layer, "feed_forward_output/bias"
        )
        out[b, :n] = v + ff
    return out


def pooling_reference(x, num_frames, queries):
    heads = queries.shape[1]
    out = np.zeros((len(x), heads * x.shape[-1]))
    for b, n in enumerate(num_frames):
        if n:
            real = x[b, :n].astype(np.float64)  # (n, D)
            weights = softmax((real @ queries).T)  # (heads, n), over frames
            out[b] = (weights @ real).reshape(-1)  # head-major
    return out


def make_block(rng, dropout=0.0):
    x, num_frames = frames(rng, size=SIZE)
    mask = mask_of(num_frames, x.shape[1])
    layer = TransformerEncoderBlock(SIZE, HEADS, FF, dropout=dropout)
    layer(x, mask=mask)
    randomize_weights(layer, rng)
    return layer, x, num_frames, mask


def make_pooling(rng, num_heads=3):
    x, num_frames = frames(rng, size=SIZE)
    mask = mask_of(num_frames, x.shape[1])
    layer = AttentionPooling(num_heads)
    layer(x, mask=mask)
    randomize_weights(layer, rng)
    return layer, x, num_frames, mask


def test_block_matches_numpy_formula(rng):
    layer, x, num_frames, mask = make_block(rng)
    got = np.asarray(layer(with_garbage(x, num_frames), mask=mask, training=False))
    assert got.shape == layer.compute_output_shape(x.shape)
    np.testing.assert_allclose(got, block_reference(x, num_frames, layer), rtol=1e-4, atol=1e-5)
    assert np.all(got[~mask] == 0.0)  # padded rows and the video without frames


def test_block_padding_is_ignored(rng):
    layer, x, num_frames, mask = make_block(rng)
    for training in (False, True):
        clean = np.asarray(layer(x * mask[..., None], mask=mask, training=training))
        for garbage in (np.nan, np.inf, 1e6):
            dirty = layer(with_garbage(x, num_frames, garbage), mask=mask, training=training)
            np.testing.assert_allclose(np.asarray(dirty), clean, rtol=1e-5, atol=1e-6)
    # The short video alone, without padding rows, gets the same frames out.
    alone = np.asarray(layer(x[1:2, :2], training=False))
    np.testing.assert_allclose(alone[0], clean[1, :2], rtol=1e-5, atol=1e-6)
    # Without a mask the padding would be attended to.
    unmasked = np.asarray(layer(x, training=False))
    assert not np.allclose(unmasked[1, :2], clean[1, :2])


def test_block_is_permutation_equivariant(rng):
    """No positional signal: shuffling the real frames shuffles the outputs the same way."""
    layer, x, num_frames, mask = make_block(rng)
    order = np.array([3, 0, 5, 1, 4, 2])
    out = np.asarray(layer(x, mask=mask, training=False))
    shuffled = np.asarray(layer(x[:1, order], mask=mask[:1], training=False))
    np.testing.assert_allclose(shuffled[0], out[0, order], rtol=1e-5, atol=1e-6)


def test_block_dropout_only_in_training(rng):
    layer, x, num_frames, mask = make_block(rng, dropout=0.5)
    plain = TransformerEncoderBlock(SIZE, HEADS, FF)
    plain(x, mask=mask)
    plain.set_weights(layer.get_weights())
    np.testing.assert_allclose(
        np.asarray(layer(x, mask=mask, training=False)),
        np.asarray(plain(x, mask=mask, training=False)),
        atol=1e-6,
    )
    dropped = np.asarray(layer(with_garbage(x, num_frames), mask=mask, training=True))
    assert np.all(np.isfinite(dropped)) and np.all(dropped[~mask] == 0.0)
    assert not np.allclose(dropped, np.asarray(layer(x, mask=mask, training=False)))


def test_pooling_matches_numpy_formula(rng):
    for num_heads in (1, 3):
        layer, x, num_frames, mask = make_pooling(rng, num_heads)
        queries = weight(layer, "queries")
        got = np.asarray(layer(with_garbage(x, num_frames), mask=mask))
        assert got.shape == layer.compute_output_shape(x.shape) == (3, num_heads * SIZE)
        np.testing.assert_allclose(
            got, pooling_reference(x, num_frames, queries), rtol=1e-5, atol=1e-6
        )
        assert np.all(got[2] == 0.0)  # the video without frames
        unmasked = np.asarray(layer(x))
        np.testing.assert_allclose(
            unmasked, pooling_reference(x, [6, 6, 6], queries), rtol=1e-5, atol=1e-6
        )


def test_pooling_starts_as_the_masked_average(rng):
    x, num_frames = frames(rng, size=SIZE)
    mask = mask_of(num_frames, x.shape[1])
    dirty = with_garbage(x, num_frames, np.inf)
    got = np.asarray(AttentionPooling(2)(dirty, mask=mask))
    average = np.asarray(MaskedAverage()(dirty, mask=mask))
    np.testing.assert_allclose(got, np.concatenate([average, average], -1), atol=1e-6)


def test_gradients_are_finite_without_frames(rng):
    import tensorflow as tf  # the test backend; the library itself never imports it

    empty = tf.constant(np.full((2, 4, SIZE), np.nan, "float32"))
    mask = np.zeros((2, 4), bool)
    block, _, _, _ = make_block(rng)
    pooling, _, _, _ = make_pooling(rng)
    with tf.GradientTape() as tape:
        tape.watch(empty)
        out = pooling(block(empty, mask=mask, training=True), mask=mask)
        loss = tf.reduce_sum(out) + tf.reduce_sum(tf.square(out))
    assert np.all(np.asarray(out) == 0.0)
    grads = tape.gradient(loss, [empty] + block.trainable_weights + pooling.trainable_weights)
    assert all(g is not None and np.all(np.isfinite(np.asarray(g))) for g in grads)


def test_mixed_precision_is_finite(rng):
    x, num_frames = frames(rng, size=SIZE)
    mask = mask_of(num_frames, x.shape[1])
    block = TransformerEncoderBlock(SIZE, HEADS, FF, dtype="mixed_float16")
    pooling = AttentionPooling(2, query_initializer="random_normal", dtype="mixed_float16")
    out = pooling(block(with_garbage(x, num_frames), mask=mask), mask=mask)
    assert out.dtype == "float16"
    out = np.asarray(out, np.float32)
    assert np.all(np.isfinite(out)) and np.all(out[2] == 0.0)


def test_argument_checks():
    with pytest.raises(ValueError, match="num_heads must divide model_size"):
        TransformerEncoderBlock(8, 3, 16)
    with pytest.raises(ValueError, match="ff_size"):
        TransformerEncoderBlock(8, 2, 0)
    with pytest.raises(ValueError, match="dropout"):
        TransformerEncoderBlock(8, 2, 16, dropout=1.0)
    with pytest.raises(ValueError, match="model_size=8"):
        TransformerEncoderBlock(8, 2, 16)(np.zeros((1, 3, 6), "float32"))
    with pytest.raises(ValueError, match="num_heads"):
        AttentionPooling(0)


def test_config_round_trip(rng):
    layer, x, _, mask = make_block(rng, dropout=0.25)
    assert layer.get_config()["dropout"] == 0.25
    check_config_round_trip(layer, x, mask=mask, training=False)
    layer, x, _, mask = make_pooling(rng)
    check_config_round_trip(layer, x, mask=mask)


def test_in_functional_model(rng, tmp_path):
    """Builds with unknown T inside a model, trains a step, and survives a .keras round trip."""
    x, num_frames = frames(rng)
    frames_in = keras.Input((None, x.shape[-1]), name="frames")
    count_in = keras.Input((), dtype="int32", name="num_frames")
    mask = FrameMask()([count_in, frames_in])
    h = keras.layers.Dense(SIZE)(frames_in)
    h = TransformerEncoderBlock(SIZE, HEADS, FF, dropout=0.1, name="block")(h, mask=mask)
    pooled = AttentionPooling(2, name="pool")(h, mask=mask)
    model = keras.Model([frames_in, count_in], keras.layers.Dense(2)(pooled))
    model.compile(optimizer="adam", loss="mse")
    model.fit([x, num_frames], np.ones((len(x), 2), "float32"), verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    revived = keras.models.load_model(path)
    assert isinstance(revived.get_layer("block"), TransformerEncoderBlock)
    np.testing.assert_allclose(
        np.asarray(revived([x, num_frames])), np.asarray(model([x, num_frames])), atol=1e-6
    )
