"""Every registered model: builds tiny, ignores padding, trains a step, saves and loads."""

import keras
import numpy as np
import pytest

import frame_models
from frame_models.losses import CrossEntropyLoss
from tests.frame_models.models.tiny import (
    NUM_CLASSES,
    batch_for,
    build,
    frame_batch,
    is_frame_level,
    labels,
)

ALL = frame_models.names()
FRAME_LEVEL = [name for name in ALL if is_frame_level(name)]


@pytest.fixture
def rng():
    return np.random.default_rng(30)


@pytest.mark.parametrize("name", ALL)
def test_inputs_and_probabilities(name, rng):
    model = build(name)
    batch = batch_for(name, rng)
    assert sorted(model.input) == sorted(batch)
    out = model(batch, training=False)
    assert out.dtype == "float32"
    out = np.asarray(out)
    assert out.shape == (3, NUM_CLASSES)
    assert np.all(np.isfinite(out)) and np.all((out >= 0) & (out <= 1))


@pytest.mark.parametrize("name", FRAME_LEVEL)
def test_padding_changes_nothing(name, rng):
    model = build(name)
    batch = frame_batch(rng, num_frames=(6, 2, 0, 9))  # 9 > T: every row is a frame
    expected = np.asarray(model(batch, training=False))
    dirty = dict(batch)
    pad = np.arange(6)[None, :] >= batch["num_frames"][:, None]
    for key in ("rgb", "audio"):
        dirty[key] = batch[key].copy()
        dirty[key][pad] = np.nan
    np.testing.assert_allclose(np.asarray(model(dirty, training=False)), expected, atol=1e-6)
    # The short video alone, without padding, gets the same prediction.
    alone = {"rgb": batch["rgb"][1:2, :2], "audio": batch["audio"][1:2, :2]}
    alone["num_frames"] = np.array([2], "int32")
    np.testing.assert_allclose(np.asarray(model(alone, training=False)), expected[1:2], atol=1e-6)
    # Batch statistics in training mode ignore padding too.
    np.testing.assert_allclose(
        np.asarray(model(dirty, training=True)),
        np.asarray(model(batch, training=True)),
        atol=1e-5,
    )


@pytest.mark.parametrize("name", ALL)
def test_train_step_and_keras_round_trip(name, rng, tmp_path):
    model = build(name)
    batch, y = batch_for(name, rng), labels(rng)
    before = [w.copy() for w in model.get_weights()]
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=CrossEntropyLoss(), run_eagerly=True)
    history = model.fit(batch, y, batch_size=3, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))

    path = tmp_path / f"{name}.keras"
    model.save(path)
    revived = keras.models.load_model(path)
    assert revived.name == name
    np.testing.assert_allclose(
        np.asarray(revived(batch, training=False)),
        np.asarray(model(batch, training=False)),
        atol=1e-6,
    )
    assert isinstance(revived.loss, CrossEntropyLoss)


@pytest.mark.parametrize("name", ["gated_netvlad", "lstm"])
def test_compiled_graph_training_and_predict(name, rng):
    """fit/predict in tf.function graphs (unknown T) agree with eager calls."""
    model = build(name)
    batch, y = batch_for(name, rng), labels(rng)
    model.compile(optimizer="adam", loss=CrossEntropyLoss(), jit_compile=False)
    model.fit(batch, y, batch_size=3, epochs=2, verbose=0)
    np.testing.assert_allclose(
        model.predict(batch, verbose=0), np.asarray(model(batch, training=False)), atol=1e-5
    )


@pytest.mark.parametrize(
    "name, policy_name",
    [
        ("gated_netfv", "mixed_float16"),
        ("lstm", "mixed_float16"),
        ("moe", "mixed_float16"),
        ("gated_netvlad", "mixed_bfloat16"),
    ],
)
def test_mixed_precision_output_is_float32(name, policy_name, rng):
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy_name)
    try:
        model = build(name)
        out = model(batch_for(name, rng), training=False)
    finally:
        keras.config.set_dtype_policy(policy)
    assert out.dtype == "float32"
    assert np.all(np.isfinite(np.asarray(out)))
