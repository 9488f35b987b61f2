"""The transformer model: defaults, options, a planted problem it learns, padding, saving."""

import keras
import numpy as np
import pytest

import frame_models
from frame_models.layers.attention_pooling import AttentionPooling, TransformerEncoderBlock
from frame_models.losses import CrossEntropyLoss
from tests.frame_models.models.tiny import FRAME_SIZES, NUM_CLASSES, build, frame_batch


@pytest.fixture
def rng():
    return np.random.default_rng(80)


def planted(rng, videos=64, steps=6):
    """Noise videos; class c is present iff one of the real frames is prototype c (plus noise)."""
    size = sum(FRAME_SIZES.values())
    prototypes = rng.normal(scale=3.0, size=(NUM_CLASSES, size))
    num_frames = rng.integers(1, steps + 1, size=videos).astype("int32")
    x = rng.normal(size=(videos, steps, size))
    y = np.zeros((videos, NUM_CLASSES), "float32")
    for b, n in enumerate(num_frames):
        classes = rng.choice(NUM_CLASSES, size=min(n, 2), replace=False)
        where = rng.choice(n, size=len(classes), replace=False)
        x[b, where] = prototypes[classes] + rng.normal(scale=0.3, size=(len(classes), size))
        y[b, classes] = 1.0
    x[np.arange(steps)[None, :] >= num_frames[:, None]] = 0.0
    rgb, audio = np.split(x.astype("float32"), [FRAME_SIZES["rgb"]], axis=-1)
    return {"rgb": rgb, "audio": audio, "num_frames": num_frames}, y


def test_registry_entry_and_defaults():
    assert frame_models.input_mode("transformer", sample_frames=32) == {
        "frame_level": True,
        "sample": "random",
        "num_samples": 32,
    }
    assert "l2_penalty" not in frame_models.valid_hparams("transformer")
    model = frame_models.build("transformer", NUM_CLASSES, [("rgb", 16), ("audio", 8)])
    blocks = [layer for layer in model.layers if isinstance(layer, TransformerEncoderBlock)]
    assert [(b.model_size, b.num_heads, b.ff_size, b.dropout) for b in blocks] == [
        (512, 8, 1024, 0.0)
    ] * 2
    assert model.get_layer("projection").kernel.shape == (24, 512)
    assert model.get_layer("attention_pooling").num_heads == 1
    assert model.get_layer("head_dropout").rate == 0.2
    assert model.get_layer("moe").gating_kernel.shape[0] == 512
    assert model.get_layer("input_bn") is not None


def test_options_shape_the_model():
    model = build(
        "transformer",
        transformer_layers=3,
        pooling_heads=2,
        input_batch_norm=False,
        gating_after_pooling=True,
        gating_after_moe=True,
        attention_dropout=0.1,
    )
    names = {layer.name for layer in model.layers}
    assert {f"encoder_block_{i}" for i in range(3)} <= names and "encoder_block_3" not in names
    assert "input_bn" not in names and {"pooled_gating", "output_gating"} <= names
    assert "head_dropout" not in names  # TINY drop_rate 0
    assert model.get_layer("encoder_block_0").dropout == 0.1
    assert isinstance(model.get_layer("attention_pooling"), AttentionPooling)
    assert model.get_layer("moe").gating_kernel.shape[0] == 2 * 8


@pytest.mark.parametrize(
    "option, value",
    [
        ("num_heads", 3),  # does not divide transformer_size 8
        ("transformer_size", 0),
        ("transformer_layers", "two"),
        ("ff_size", -1),
        ("attention_dropout", 1.0),
        ("drop_rate", 1.5),
        ("pooling_heads", 0),
        ("gating", "sigmoid"),
    ],
)
def test_bad_options_name_themselves(option, value):
    with pytest.raises(ValueError, match=f"--{option}"):
        build("transformer", **{option: value})


def test_learns_a_planted_problem(rng):
    keras.utils.set_random_seed(81)
    x, y = planted(rng)
    model = build("transformer")
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=CrossEntropyLoss())
    before = model.evaluate(x, y, batch_size=32, verbose=0)
    model.fit(x, y, batch_size=16, epochs=40, verbose=0)
    after = model.evaluate(x, y, batch_size=32, verbose=0)
    assert after < 0.5 * before, (before, after)
    # The planted frames decide: most true classes rank in the top 2.
    scores = model.predict(x, verbose=0)
    top2 = np.argsort(-scores, axis=1)[:, :2]
    hits = np.take_along_axis(y, top2, axis=1).sum() / y.sum()
    assert hits > 0.7, hits


def test_padding_and_frame_order_are_ignored(rng):
    model = build("transformer", transformer_layers=2, pooling_heads=2)
    batch = frame_batch(rng, num_frames=(6, 3, 0))
    expected = np.asarray(model(batch, training=False))
    assert np.all(np.isfinite(expected))
    dirty = {k: v.copy() for k, v in batch.items()}
    for key in ("rgb", "audio"):
        dirty[key][1, 3:] = np.inf
        dirty[key][2] = np.nan
    np.testing.assert_allclose(np.asarray(model(dirty, training=False)), expected, atol=1e-6)
    # No positional signal: shuffling a video's real frames changes nothing.
    shuffled = {k: v.copy() for k, v in batch.items()}
    for key in ("rgb", "audio"):
        shuffled[key][1, :3] = batch[key][1, [2, 0, 1]]
    np.testing.assert_allclose(np.asarray(model(shuffled, training=False)), expected, atol=1e-6)
    # A longer T of padding gives the same predictions too.
    longer = {
        k: np.concatenate([v, np.zeros((3, 4, v.shape[-1]), v.dtype)], 1)
        for k, v in batch.items()
        if k != "num_frames"
    }
    longer["num_frames"] = batch["num_frames"]
    np.testing.assert_allclose(np.asarray(model(longer, training=False)), expected, atol=1e-6)


def test_save_and_load_give_the_same_outputs(rng, tmp_path):
    model = build("transformer", transformer_layers=2, pooling_heads=2, attention_dropout=0.1)
    batch = frame_batch(rng)
    model.compile(optimizer="adam", loss=CrossEntropyLoss())
    model.fit(batch, (rng.random((3, NUM_CLASSES)) < 0.3).astype("float32"), verbose=0)
    path = tmp_path / "transformer.keras"
    model.save(path)
    revived = keras.models.load_model(path)
    assert revived.get_layer("encoder_block_1").get_config() == (
        model.get_layer("encoder_block_1").get_config()
    )
    np.testing.assert_allclose(
        np.asarray(revived(batch, training=False)),
        np.asarray(model(batch, training=False)),
        atol=1e-6,
    )


@pytest.mark.parametrize("jit_compile", [False, True])
def test_compiled_graph_training_and_predict(rng, jit_compile):
    """fit/predict in tf.function graphs (unknown T), also under XLA, agree with eager calls."""
    model = build("transformer")
    batch = frame_batch(rng)
    y = (rng.random((3, NUM_CLASSES)) < 0.3).astype("float32")
    model.compile(optimizer="adam", loss=CrossEntropyLoss(), jit_compile=jit_compile)
    history = model.fit(batch, y, batch_size=3, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    np.testing.assert_allclose(
        model.predict(batch, verbose=0), np.asarray(model(batch, training=False)), atol=1e-5
    )


@pytest.mark.parametrize("policy_name", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_output_is_float32(rng, policy_name):
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy_name)
    try:
        model = build("transformer")
        out = model(frame_batch(rng), training=False)
    finally:
        keras.config.set_dtype_policy(policy)
    assert out.dtype == "float32"
    assert np.all(np.isfinite(np.asarray(out)))
