"""NeXtVLAD against its numpy formula (winners_facts 1.2), with padding, empty videos, any T."""

import keras
import numpy as np
import pytest

from frame_models.layers import FrameMask
from frame_models.layers.nextvlad import NeXtVLAD
from tests.frame_models.helpers import (
    BN_EPSILON,
    batch_norm_inference,
    bn_params,
    check_config_round_trip,
    frames,
    l2n,
    mask_of,
    randomize_weights,
    sigmoid,
    softmax,
    weight,
    with_garbage,
)

N, K, G, EXPANSION = 6, 3, 3, 2  # d = 2 * 6 / 3 = 4
D = EXPANSION * N // G


@pytest.fixture
def rng():
    return np.random.default_rng(11)


def make(rng, steps=6):
    x, num_frames = frames(rng, steps=steps, size=N)  # a full, a short and an empty video
    mask = mask_of(num_frames, steps)
    layer = NeXtVLAD(K, expansion=EXPANSION, groups=G)
    layer(x, mask=mask)
    randomize_weights(layer, rng)
    return layer, x, num_frames, mask


def pre_bn(layer, x, num_frames, cluster_bn):
    """(B, d*K) vectors before vlad_bn; `cluster_bn(logits)` normalises the (n, G*K) logits."""
    we, be = weight(layer, "expansion_kernel"), weight(layer, "expansion_bias")
    wa, ba = weight(layer, "attention_kernel"), weight(layer, "attention_bias")
    wc, centres = weight(layer, "cluster_weights"), weight(layer, "cluster_centers")
    out = []
    for b, n in enumerate(num_frames):
        expanded = np.asarray(x[b, :n], np.float64) @ we + be  # (n, λN)
        attention = sigmoid(expanded @ wa + ba)  # (n, G), from the whole expanded frame
        alpha = softmax(cluster_bn(expanded @ wc).reshape(n, G, K))  # (n, G, K)
        slices = expanded.reshape(n, G, D)
        vlad = np.zeros((D, K))
        for t in range(n):
            for g in range(G):
                for k in range(K):
                    weight_tgk = attention[t, g] * alpha[t, g, k]
                    vlad[:, k] += weight_tgk * (slices[t, g] - centres[:, k])
        out.append(l2n(vlad, axis=0).reshape(-1))  # intra-normalisation, index j*K + k
    return np.stack(out)


def inference_reference(layer, x, num_frames):
    cluster = bn_params(layer, "cluster_bn")
    flat = pre_bn(layer, x, num_frames, lambda z: batch_norm_inference(z, cluster))
    return batch_norm_inference(flat, bn_params(layer, "vlad_bn"))


def training_reference(layer, x, num_frames):
    """Batch statistics: of the real frames' logits for cluster_bn, of the videos for vlad_bn."""
    real = np.concatenate([x[b, :n] for b, n in enumerate(num_frames)]).astype(np.float64)
    logits = (real @ weight(layer, "expansion_kernel") + weight(layer, "expansion_bias")) @ weight(
        layer, "cluster_weights"
    )
    cluster = bn_params(layer, "cluster_bn")
    cluster.update(moving_mean=logits.mean(0), moving_variance=logits.var(0))
    flat = pre_bn(layer, x, num_frames, lambda z: batch_norm_inference(z, cluster))
    vlad = bn_params(layer, "vlad_bn")
    vlad.update(moving_mean=flat.mean(0), moving_variance=flat.var(0))
    return batch_norm_inference(flat, vlad)


def test_matches_numpy_formula(rng):
    layer, x, num_frames, mask = make(rng)
    got = np.asarray(layer(x, mask=mask, training=False))
    assert got.shape == (3, D * K) == layer.compute_output_shape(x.shape)
    np.testing.assert_allclose(got, inference_reference(layer, x, num_frames), rtol=1e-4, atol=1e-5)
    # The empty video pools to zero before vlad_bn.
    vlad = bn_params(layer, "vlad_bn")
    expected = vlad["beta"] - vlad["gamma"] * vlad["moving_mean"] / np.sqrt(
        vlad["moving_variance"] + BN_EPSILON
    )
    np.testing.assert_allclose(got[2], expected, rtol=1e-5, atol=1e-6)


def test_batch_statistics_use_real_frames_only(rng):
    layer, x, num_frames, mask = make(rng)
    # NaN in the padding: it must reach no sum and no batch-norm moment.
    dirty = with_garbage(x, num_frames, np.nan)
    got = np.asarray(layer(dirty, mask=mask, training=True))
    np.testing.assert_allclose(got, training_reference(layer, x, num_frames), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("training", [False, True])
def test_padding_is_ignored(rng, training):
    layer, x, num_frames, mask = make(rng)
    clean = np.asarray(layer(x * mask[..., None], mask=mask, training=training))
    for garbage in (np.nan, np.inf, 1e6):
        dirty = layer(with_garbage(x, num_frames, garbage), mask=mask, training=training)
        np.testing.assert_allclose(np.asarray(dirty), clean, rtol=1e-5, atol=1e-5)
    # Zero padding still counts without a mask: the expansion bias makes it non-zero.
    unmasked = np.asarray(layer(x * mask[..., None], training=False))
    assert not np.allclose(unmasked[1], np.asarray(layer(x, mask=mask, training=False))[1])


def test_any_number_of_frames(rng):
    """T comes from the input: the same videos padded to 6 or 11 rows pool the same."""
    layer, x, num_frames, mask = make(rng)
    longer = np.concatenate([x * mask[..., None], np.zeros((3, 5, N), "float32")], axis=1)
    np.testing.assert_allclose(
        np.asarray(layer(longer, mask=mask_of(num_frames, 11), training=False)),
        np.asarray(layer(x, mask=mask, training=False)),
        rtol=1e-5,
        atol=1e-6,
    )
    one = np.asarray(layer(x[1:2, :2], training=False))
    np.testing.assert_allclose(one, np.asarray(layer(x, mask=mask, training=False))[1:2], atol=1e-5)


def test_gradients_are_finite_without_frames(rng):
    import tensorflow as tf  # the test backend; the library itself never imports it

    layer, x, _, _ = make(rng)
    for batch, mask in (
        (np.full((2, 4, N), np.nan, "float32"), np.zeros((2, 4), bool)),  # no frame at all
        (with_garbage(x, np.array([6, 2, 0]), np.nan), mask_of(np.array([6, 2, 0]), 6)),
    ):
        with tf.GradientTape() as tape:
            out = layer(batch, mask=mask, training=True)
            loss = tf.reduce_sum(out * tf.range(D * K, dtype=out.dtype))
        assert np.all(np.isfinite(np.asarray(out)))
        for g in tape.gradient(loss, layer.trainable_weights):
            assert g is not None and np.all(np.isfinite(np.asarray(g)))


def test_variance_scaling_initialisation():
    layer = NeXtVLAD(64, expansion=2, groups=4)
    layer.build((None, None, 256))
    shapes = {w.path.split("/", 1)[1]: tuple(w.shape) for w in layer.weights}
    assert shapes["expansion_kernel"] == (256, 512) and shapes["attention_kernel"] == (512, 4)
    assert shapes["cluster_weights"] == (512, 4 * 64) and shapes["cluster_centers"] == (128, 64)
    for name, fan_in in (
        ("expansion_kernel", 256),
        ("attention_kernel", 512),
        ("cluster_weights", 512),
        ("cluster_centers", 128),
    ):
        w = np.asarray(getattr(layer, name))
        np.testing.assert_allclose(w.std(), np.sqrt(2 / fan_in), rtol=0.1, err_msg=name)
    assert not np.any(np.asarray(layer.expansion_bias))
    assert not np.any(np.asarray(layer.attention_bias))
    assert layer.count_params() == (
        256 * 512 + 512 + 512 * 4 + 4 + 512 * 256 + 128 * 64 + 4 * 256 + 4 * 128 * 64
    )


def test_arguments_are_checked():
    for kwargs, name in (
        ({"num_clusters": 0}, "num_clusters"),
        ({"num_clusters": 2.5}, "num_clusters"),
        ({"num_clusters": 4, "expansion": 0}, "expansion"),
        ({"num_clusters": 4, "groups": -1}, "groups"),
        ({"num_clusters": 4, "groups": "many"}, "groups"),
    ):
        with pytest.raises(ValueError, match=name):
            NeXtVLAD(**kwargs)
    with pytest.raises(ValueError, match="divisible by groups"):
        NeXtVLAD(4, expansion=1, groups=2).build((None, None, 5))
    with pytest.raises(ValueError, match="divisible by groups"):
        NeXtVLAD(4, expansion=1, groups=2).compute_output_shape((None, None, 5))


def test_config_round_trip(rng):
    layer, x, _, mask = make(rng)
    check_config_round_trip(layer, x, mask=mask)
    assert layer.get_config()["expansion"] == EXPANSION and layer.get_config()["groups"] == G


def test_in_functional_model(rng, tmp_path):
    """Builds with unknown T inside a model, trains a step, and survives a .keras round trip."""
    x, num_frames = frames(rng, size=N)
    frames_in = keras.Input((None, N), name="frames")
    count_in = keras.Input((), dtype="int32", name="num_frames")
    mask = FrameMask()([count_in, frames_in])
    pooled = NeXtVLAD(K, EXPANSION, G, name="pool")(frames_in, mask=mask)
    assert pooled.shape == (None, D * K)
    model = keras.Model([frames_in, count_in], keras.layers.Dense(2)(pooled))
    model.compile(optimizer="adam", loss="mse", run_eagerly=True)
    model.fit([x, num_frames], np.ones((len(x), 2), "float32"), verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    revived = keras.models.load_model(path)
    np.testing.assert_allclose(
        np.asarray(revived([x, num_frames])), np.asarray(model([x, num_frames])), atol=1e-6
    )
    longer = np.concatenate([x, np.zeros((3, 4, N), "float32")], axis=1)
    np.testing.assert_allclose(
        np.asarray(revived([longer, num_frames])), np.asarray(model([x, num_frames])), atol=1e-5
    )
