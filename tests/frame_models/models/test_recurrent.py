"""LSTM/GRU models: classifier input per rnn_state, fusion, masking of padded frames."""

import numpy as np
import pytest

from tests.frame_models.models.tiny import build


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
