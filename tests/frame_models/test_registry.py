"""Registry: names, errors that list the valid choices, overrides and input modes."""

import pytest

import frame_models
from frame_models import SHARED_OVERRIDES
from y8m.errors import UsageError

EXPECTED_NAMES = [
    "average_logistic",
    "average_moe_cg",
    "bow",
    "gated_bow",
    "gated_netfv",
    "gated_netrvlad",
    "gated_netvlad",
    "gru",
    "logistic",
    "lstm",
    "moe",
    "netfv",
    "netrvlad",
    "netvlad",
]
TINY = {"cluster_size": 4, "hidden_size": 8, "rnn_cells": 8, "feature_sizes": [16, 8]}


def test_names_are_sorted_and_complete():
    assert frame_models.names() == EXPECTED_NAMES


def test_unknown_model_lists_valid_names():
    with pytest.raises(UsageError) as error:
        frame_models.build("netvald", 10)
    assert "netvald" in str(error.value)
    for name in EXPECTED_NAMES:
        assert name in str(error.value)
    with pytest.raises(UsageError, match="gated_netvlad"):
        frame_models.input_mode("nope")


def test_unknown_override_names_key_and_valid_ones():
    with pytest.raises(UsageError) as error:
        frame_models.build("netvlad", 10, clusters=4)
    message = str(error.value)
    assert "clusters" in message and "cluster_size" in message and "cluster_batch_norm" in message
    # A model-specific option of another family is rejected, a shared one is accepted.
    with pytest.raises(UsageError, match="rnn_state"):
        frame_models.build("netvlad", 10, rnn_state="last", **TINY)
    frame_models.build("netvlad", 10, rnn_layers=3, **TINY)


def test_shared_overrides_accepted_everywhere():
    shared = {
        "cluster_size": 4,
        "audio_cluster_size": 2,
        "hidden_size": 8,
        "num_mixtures": 1,
        "sample_frames": 7,
        "rnn_cells": 8,
        "rnn_layers": 1,
        "gating_after_pooling": False,
        "gating_after_moe": False,
        "gating": "cg",
        "fusion": "late",
        "moe_l2": 0.0,
        "l2_penalty": 0.0,
        "input_batch_norm": False,
    }
    assert set(shared) | {"feature_names", "feature_sizes"} == SHARED_OVERRIDES
    for name in EXPECTED_NAMES:
        frame_models.build(name, 3, feature_sizes=[16, 8], **shared)
        assert set(SHARED_OVERRIDES) <= set(frame_models.valid_overrides(name))


def test_none_overrides_keep_defaults():
    model = frame_models.build(
        "netvlad", 10, cluster_size=None, hidden_size=8, feature_sizes=[16, 8]
    )
    assert model.get_layer("rgb_netvlad").num_clusters == 256
    assert model.get_layer("audio_netvlad").num_clusters == 128


@pytest.mark.parametrize(
    "overrides, flag",
    [
        ({"fusion": "middle"}, "fusion"),
        ({"gating": "relu"}, "gating"),
        ({"cluster_size": 0}, "cluster_size"),
        ({"cluster_size": "many"}, "cluster_size"),
        ({"gating_after_moe": "maybe"}, "gating_after_moe"),
        ({"moe_l2": -1}, "moe_l2"),
        ({"feature_sizes": [16]}, "feature_sizes"),
        ({"feature_sizes": "a,b"}, "feature_sizes"),
        ({"feature_names": "rgb,num_frames", "feature_sizes": "4,4"}, "feature_names"),
    ],
)
def test_bad_values_are_usage_errors(overrides, flag):
    with pytest.raises(UsageError, match=flag):
        frame_models.build("gated_netvlad", 10, **{**TINY, **overrides})


def test_bad_num_classes():
    with pytest.raises(UsageError, match="num_classes"):
        frame_models.build("moe", 0)


def test_string_values_from_a_command_line():
    model = frame_models.build(
        "netvlad", "10", **{**TINY, "cluster_size": "4", "gating_after_moe": "true"}
    )
    assert model.output.shape == (None, 10)
    assert model.get_layer("output_gating") is not None


def test_input_modes():
    assert frame_models.input_mode("gated_netvlad") == {
        "frame_level": True,
        "sample": "random",
        "num_samples": 300,
    }
    assert frame_models.input_mode("bow", sample_frames=50)["num_samples"] == 50
    assert frame_models.input_mode("lstm", sample_frames=50) == {
        "frame_level": True,
        "sample": "ordered",
        "num_samples": None,
    }
    assert frame_models.input_mode("average_logistic")["sample"] == "ordered"
    assert frame_models.input_mode("moe") == {
        "frame_level": False,
        "sample": None,
        "num_samples": None,
    }
    with pytest.raises(UsageError, match="sample_frames"):
        frame_models.input_mode("netvlad", sample_frames=0)
    with pytest.raises(UsageError, match="bogus"):
        frame_models.input_mode("netvlad", bogus=1)


def test_every_model_has_a_summary_line():
    for name in EXPECTED_NAMES:
        assert frame_models.get_entry(name).summary
