"""LSTM/GRU models: classifier input per rnn_state, fusion, masking of padded frames,
bidirectional layers and ordered random subsequences."""

import keras
import numpy as np
import pytest

from tests.frame_models.models.tiny import build, frame_batch


@pytest.mark.parametrize(
    "name, rnn_state, layers, size",
    [
        ("lstm", "all", 2, 4 * 8),  # c and h of both layers, as WILLOW
        ("gru", "all", 2, 2 * 8),
        ("lstm", "last", 2, 8),  # last layer's output, as the starter code
        ("gru", "all", 3, 3 * 8),
    ],
)
def test_classifier_input(name, rnn_state, layers, size):
    model = build(name, rnn_state=rnn_state, rnn_layers=layers)
    assert model.get_layer("moe").gating_kernel.shape[0] == size
    assert [layer.name for layer in model.layers if layer.name.startswith("fused_")] == [
        f"fused_{name}_{i}" for i in range(layers)
    ]


def test_late_fusion_runs_one_stack_per_stream():
    model = build("lstm", fusion="late", rnn_state="last")
    assert model.get_layer("rgb_lstm_1") is not None and model.get_layer("audio_lstm_1") is not None
    assert model.get_layer("moe").gating_kernel.shape[0] == 2 * 8


def test_final_state_is_after_the_last_real_frame():
    """A short video padded to T frames gets the state its real frames give, not the padding's."""
    model = build("gru", rnn_state="last")
    rng = np.random.default_rng(50)
    rgb = rng.normal(size=(1, 3, 16)).astype("float32")
    audio = rng.normal(size=(1, 3, 8)).astype("float32")
    short = {"rgb": rgb, "audio": audio, "num_frames": np.array([3], "int32")}
    padded = {
        "rgb": np.concatenate([rgb, rng.normal(size=(1, 5, 16)).astype("float32")], axis=1),
        "audio": np.concatenate([audio, rng.normal(size=(1, 5, 8)).astype("float32")], axis=1),
        "num_frames": np.array([3], "int32"),
    }
    np.testing.assert_allclose(
        np.asarray(model(padded, training=False)),
        np.asarray(model(short, training=False)),
        atol=1e-6,
    )
    unmasked = dict(padded, num_frames=np.array([8], "int32"))
    assert not np.allclose(np.asarray(model(unmasked)), np.asarray(model(short)))


def test_gating_switches_apply():
    model = build("lstm", gating_after_pooling=True, gating_after_moe=True)
    names = {layer.name for layer in model.layers}
    assert {"pooled_gating", "output_gating"} <= names


def test_video_without_frames_reads_one_zero_row():
    """cuDNN rejects length-0 sequences, so an empty video is read as one zero frame."""
    model = build("lstm")
    rng = np.random.default_rng(51)
    empty = {
        "rgb": rng.normal(size=(1, 4, 16)).astype("float32"),
        "audio": rng.normal(size=(1, 4, 8)).astype("float32"),
        "num_frames": np.array([0], "int32"),
    }
    one_zero_frame = {
        "rgb": np.zeros((1, 1, 16), "float32"),
        "audio": np.zeros((1, 1, 8), "float32"),
        "num_frames": np.array([1], "int32"),
    }
    got = np.asarray(model(empty, training=False))
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, np.asarray(model(one_zero_frame, training=False)), atol=1e-6)


@pytest.mark.parametrize(
    "name, rnn_state, size",
    [("lstm", "all", 4 * 8), ("gru", "all", 2 * 8), ("lstm", "last", 8), ("gru", "last", 8)],
)
def test_bidirectional_splits_the_cells(name, rnn_state, size):
    """rnn_cells // 2 units per direction: the classifier input is as wide as unidirectional."""
    model = build(name, bidirectional=True, rnn_state=rnn_state)
    assert model.get_layer("moe").gating_kernel.shape[0] == size
    for index in range(2):
        layer = model.get_layer(f"fused_{name}_{index}")
        assert isinstance(layer, keras.layers.Bidirectional)
        assert layer.forward_layer.units == layer.backward_layer.units == 4
    assert not isinstance(build(name).get_layer(f"fused_{name}_0"), keras.layers.Bidirectional)


def _reference_states(layer, real):
    """A (1, n, D) video's final states from `layer`'s two directions run on its real frames."""
    forward = layer.forward_layer(real)[1:]  # [h] or [h, c]
    config = {**layer.backward_layer.get_config(), "go_backwards": False, "name": "reference"}
    backward_as_forward = type(layer.backward_layer).from_config(config)
    backward_as_forward(real)
    backward_as_forward.set_weights(layer.backward_layer.get_weights())
    backward = backward_as_forward(real[:, ::-1])[1:]  # the frames read last to first
    wrong_way = backward_as_forward(real)[1:]
    states = [*reversed(forward), *reversed(backward)]  # WILLOW's (c, h) per direction
    return np.concatenate([np.asarray(s)[0] for s in states]), np.asarray(wrong_way[0])[0]


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_bidirectional_final_states_of_masked_videos(name):
    """Padded with NaN, each direction's final state is the one of the real frames alone."""
    model = build(name, bidirectional=True, rnn_layers=1)
    rng = np.random.default_rng(52)
    batch = frame_batch(rng, num_frames=(6, 3, 0), steps=6)
    dirty = dict(batch)
    pad = np.arange(6)[None, :] >= batch["num_frames"][:, None]
    for key in ("rgb", "audio"):
        dirty[key] = batch[key].copy()
        dirty[key][pad] = np.nan
    states = np.asarray(keras.Model(model.input, model.get_layer("states").output)(dirty))
    fused = np.asarray(keras.Model(model.input, model.get_layer("early_fusion").output)(batch))
    layer = model.get_layer(f"fused_{name}_0")
    half = states.shape[1] // 2
    for b, n in enumerate((6, 3)):
        expected, wrong_way = _reference_states(layer, fused[b : b + 1, :n])
        np.testing.assert_allclose(states[b], expected, rtol=1e-5, atol=1e-6)
        # The backward direction really reads the frames in reverse.
        assert not np.allclose(states[b, -wrong_way.size :], wrong_way)
        assert not np.allclose(states[b, :half], states[b, half:])
    assert np.all(np.isfinite(np.asarray(model(dirty))))


def test_bidirectional_needs_two_cells():
    with pytest.raises(ValueError, match="rnn_cells"):
        build("gru", bidirectional=True, rnn_cells=1)


def _subsample(batch, indices):
    out = {key: batch[key][:, indices] for key in ("rgb", "audio")}
    out["num_frames"] = np.full(len(batch["num_frames"]), len(indices), "int32")
    return out


def test_random_sequence_at_inference_reads_evenly_spaced_frames():
    model = build("gru", random_sequence=True, sample_frames=3)
    assert model.get_layer("random_subsequence").num_samples == 3
    batch = frame_batch(np.random.default_rng(53), num_frames=(6,), steps=6)
    out = np.asarray(model(batch, training=False))
    np.testing.assert_allclose(np.asarray(model(batch, training=False)), out)  # deterministic
    # floor((i + 1/2) 6 / 3) = frames 1, 3 and 5; a 3-frame video is read whole.
    np.testing.assert_allclose(
        np.asarray(model(_subsample(batch, [1, 3, 5]), training=False)), out, atol=1e-6
    )


def test_random_sequence_in_training_draws_new_frames():
    model = build("lstm", random_sequence=True, sample_frames=3)
    batch = frame_batch(np.random.default_rng(54), num_frames=(6,) * 8, steps=6)
    first = np.asarray(model(batch, training=True))
    assert not np.allclose(np.asarray(model(batch, training=True)), first)
    short = frame_batch(np.random.default_rng(55), num_frames=(2, 0), steps=4)
    np.testing.assert_allclose(  # videos of at most S frames are read whole either way
        np.asarray(model(short, training=True)), np.asarray(model(short, training=False)), atol=1e-6
    )


def test_sample_frames_is_a_recurrent_option():
    import frame_models

    model = build("lstm", random_sequence=True)
    assert model.get_layer("random_subsequence").num_samples == 150  # WILLOW's README
    assert "random_subsequence" not in {layer.name for layer in build("lstm").layers}
    # The reader still feeds every frame in order: the model subsamples.
    mode = frame_models.input_mode("lstm", random_sequence=True, sample_frames=50)
    assert mode == {"frame_level": True, "sample": "ordered", "num_samples": None}
