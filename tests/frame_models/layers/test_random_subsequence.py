"""RandomSubsequence: ordered random subsets in training, evenly spaced frames at inference."""

import itertools

import keras
import numpy as np
import pytest

from frame_models.layers.random_subsequence import RandomSubsequence
from tests.frame_models.helpers import check_config_round_trip


def numbered(num_frames, steps, size=3, garbage=np.nan):
    """Frames whose values are their index + 1 (so 0 marks padding), garbage on padding."""
    num_frames = np.asarray(num_frames, "int32")
    index = np.arange(1, steps + 1, dtype="float32")[None, :, None]
    x = np.broadcast_to(index, (len(num_frames), steps, size)).copy()
    x[np.arange(steps)[None, :] >= num_frames[:, None]] = garbage
    return x, num_frames


def picked(layer, x, num_frames, training):
    """The frame indices each video kept (-1 after its kept frames) and the new counts."""
    out, kept = layer([x, num_frames], training=training)
    out, kept = np.asarray(out), np.asarray(kept)
    assert out.shape == (len(x), layer.num_samples, x.shape[-1])
    np.testing.assert_array_equal(out, np.broadcast_to(out[..., :1], out.shape))
    return out[..., 0].astype(int) - 1, kept


@pytest.mark.parametrize("n", [0, 1, 3, 4, 7, 12])
def test_training_picks_sorted_distinct_real_frames(n):
    layer = RandomSubsequence(4, seed=3)
    x, num_frames = numbered([n] * 50, steps=12)
    indices, kept = picked(layer, x, num_frames, training=True)
    assert np.all(kept == min(4, n))
    for row in indices:
        real = row[: min(4, n)]
        assert np.all(np.diff(real) > 0)  # sorted and distinct
        assert np.all((real >= 0) & (real < n))  # real frames only (no NaN, no padding)
        assert np.all(row[min(4, n) :] == -1)  # exact zeros after the kept frames
    if n <= 4:  # a short video keeps all its frames, in order
        assert np.all(indices[:, :n] == np.arange(n))


def test_training_reaches_every_subset_uniformly():
    """300 draws of 2 frames out of 4: all 6 subsets, each about 50 times."""
    layer = RandomSubsequence(2, seed=0)
    x, num_frames = numbered([4] * 300, steps=6)
    indices, _ = picked(layer, x, num_frames, training=True)
    counts = {s: 0 for s in itertools.combinations(range(4), 2)}
    for row in indices:
        counts[tuple(row)] += 1
    assert sum(counts.values()) == 300
    assert all(25 <= c <= 80 for c in counts.values()), counts


def test_seeds_make_draws_reproducible():
    x, num_frames = numbered([10] * 8, steps=10)
    a = picked(RandomSubsequence(3, seed=7), x, num_frames, True)[0]
    b = picked(RandomSubsequence(3, seed=7), x, num_frames, True)[0]
    np.testing.assert_array_equal(a, b)
    layer = RandomSubsequence(3, seed=7)
    first, second = (picked(layer, x, num_frames, True)[0] for _ in range(2))
    assert not np.array_equal(first, second)  # the generator moves on between calls


def test_inference_is_evenly_spaced_and_deterministic():
    layer = RandomSubsequence(4, seed=1)
    x, num_frames = numbered([12, 10, 4, 3, 0, 20], steps=12)  # 20 > T counts as 12
    indices, kept = picked(layer, x, num_frames, training=False)
    np.testing.assert_array_equal(kept, [4, 4, 4, 3, 0, 4])
    for row, n in zip(indices, [12, 10]):
        np.testing.assert_array_equal(row, np.floor((np.arange(4) + 0.5) * n / 4).astype(int))
    np.testing.assert_array_equal(indices[1], [1, 3, 6, 8])
    np.testing.assert_array_equal(indices[2], [0, 1, 2, 3])
    np.testing.assert_array_equal(indices[3], [0, 1, 2, -1])
    np.testing.assert_array_equal(indices[4], [-1, -1, -1, -1])
    np.testing.assert_array_equal(indices[5], indices[0])
    again, _ = picked(layer, x, num_frames, training=False)
    np.testing.assert_array_equal(again, indices)


@pytest.mark.parametrize("training", [False, True])
def test_fewer_rows_than_samples_and_several_streams(training):
    """T < S works, and every stream keeps the same frames."""
    layer = RandomSubsequence(5, seed=2)
    x, num_frames = numbered([3, 1], steps=3)
    audio = 10.0 * x[..., :2]
    rgb_out, audio_out, kept = layer([x, audio, num_frames], training=training)
    np.testing.assert_array_equal(np.asarray(kept), [3, 1])
    np.testing.assert_array_equal(np.asarray(audio_out), 10.0 * np.asarray(rgb_out)[..., :2])
    np.testing.assert_array_equal(np.asarray(rgb_out)[0, :, 0], [1, 2, 3, 0, 0])
    np.testing.assert_array_equal(np.asarray(rgb_out)[1, :, 0], [1, 0, 0, 0, 0])


def test_gradients_reach_the_kept_frames_only():
    import tensorflow as tf  # the test backend; the library itself never imports it

    layer = RandomSubsequence(2, seed=0)
    x = tf.Variable(np.random.default_rng(0).normal(size=(3, 5, 2)).astype("float32"))
    num_frames = np.array([5, 1, 0], "int32")
    with tf.GradientTape() as tape:
        out, _ = layer([x, num_frames], training=True)
        loss = tf.reduce_sum(out)
    grad = np.asarray(tape.gradient(loss, x))
    assert np.all(np.isfinite(grad))
    np.testing.assert_array_equal(grad.sum(axis=(1, 2)), [4.0, 2.0, 0.0])


def test_bad_num_samples():
    with pytest.raises(ValueError, match="num_samples"):
        RandomSubsequence(0)


def test_config_round_trip():
    x, num_frames = numbered([6, 2, 0], steps=6, garbage=0.0)
    layer = RandomSubsequence(3, seed=5, name="subsequence")
    assert layer.get_config()["num_samples"] == 3 and layer.get_config()["seed"] == 5
    check_config_round_trip(layer, [x, num_frames], training=False)


def test_in_functional_model(tmp_path):
    """Unknown T in a model, a compiled training step, and a .keras round trip."""
    x, num_frames = numbered([6, 2, 0], steps=6, garbage=0.0)
    frames_in = keras.Input((None, 3), name="frames")
    count_in = keras.Input((), dtype="int32", name="num_frames")
    sampled, kept = RandomSubsequence(4, seed=1, name="subsequence")([frames_in, count_in])
    assert sampled.shape == (None, 4, 3) and kept.dtype == "int32"
    pooled = keras.layers.Flatten()(sampled)
    model = keras.Model([frames_in, count_in], keras.layers.Dense(2)(pooled))
    model.compile(optimizer="adam", loss="mse")
    model.fit([x, num_frames], np.ones((3, 2), "float32"), verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    revived = keras.models.load_model(path)
    np.testing.assert_allclose(
        np.asarray(revived([x, num_frames])), np.asarray(model([x, num_frames])), atol=1e-6
    )


def test_draws_change_between_compiled_training_steps():
    """In a tf.function the seed generator still advances: each step sees new frames."""
    import tensorflow as tf

    layer = RandomSubsequence(3, seed=4)
    x, num_frames = numbered([10] * 16, steps=10)
    step = tf.function(lambda a, n: layer([a, n], training=True)[0])
    first, second = np.asarray(step(x, num_frames)), np.asarray(step(x, num_frames))
    assert not np.array_equal(first, second)
