"""Registry: names, errors that list the valid choices, hyper-parameters, features, input modes."""

import pathlib
import subprocess
import sys

import pytest

import frame_models
from tests.frame_models.helpers import FRAME_FEATURES
from tests.frame_models.models import tiny
from tests.frame_models.models.tiny import features_for
from y8m.data import specs

FRAMES, VIDEO = tiny.FRAME_FEATURES, tiny.VIDEO_FEATURES

EXPECTED_NAMES = [
    "average_logistic",
    "average_moe_cg",
    "bow",
    "dbof",
    "gated_bow",
    "gated_dbof",
    "gated_netfv",
    "gated_netrvlad",
    "gated_netvlad",
    "gated_netvlagd",
    "gru",
    "logistic",
    "lstm",
    "mix_nextvlad",
    "moe",
    "netfv",
    "netrvlad",
    "netvlad",
    "netvlagd",
    "nextvlad",
    "soft_dbof",
    "transformer",
]
TINY = {"cluster_size": 4, "hidden_size": 8}  # a tiny cluster model
CLUSTER = ["bow", "gated_bow", "gated_netfv", "gated_netrvlad", "gated_netvlad"]
CLUSTER += ["gated_netvlagd", "netfv", "netrvlad", "netvlad", "netvlagd"]
DBOF = ["dbof", "gated_dbof", "soft_dbof"]
# drop_rate: every family's dropout before the classifier.
HEAD = {"gating_after_moe", "gating_batch_norm", "drop_rate"}
GATE = {"gating_after_pooling", "gating"}
# What each family builder takes; a variant fixed to one classifier drops the other's options.
EXPECTED_HPARAMS = {
    **{
        name: {"cluster_size", "audio_cluster_size", "cluster_batch_norm", "hidden_size"}
        | {"hidden_batch_norm", "input_batch_norm", "fusion", "num_mixtures", "moe_l2"}
        | {"sample_frames"}
        | ({"fv_couple_weights"} if name.endswith("netfv") else set())
        | GATE
        | HEAD
        for name in CLUSTER
    },
    **{
        name: {"cluster_size", "audio_cluster_size", "cluster_batch_norm", "hidden_size"}
        | {"hidden_batch_norm", "hidden_relu", "input_batch_norm", "fusion"}
        | {"num_mixtures", "moe_l2", "sample_frames"}
        | ({"frame_pooling"} if name == "dbof" else {"max_pool"})
        | GATE
        | HEAD
        for name in DBOF
    },
    **{
        name: {"fusion", "input_batch_norm", "rnn_cells", "rnn_layers", "rnn_state"}
        | {"num_mixtures", "moe_l2", "bidirectional", "random_sequence", "sample_frames"}
        | GATE
        | HEAD
        for name in ("lstm", "gru")
    },
    "average_logistic": {"l2_penalty"} | GATE | HEAD,
    "average_moe_cg": {"num_mixtures", "moe_l2"} | GATE | HEAD,
    "logistic": {"input_batch_norm", "l2_penalty"} | HEAD,
    "moe": {"input_batch_norm", "num_mixtures", "moe_l2"} | HEAD,
    "nextvlad": {"classifier", "cluster_size", "drop_rate", "expansion", "gating_reduction"}
    | {"groups", "hidden_size", "l2_penalty", "moe_l2", "num_mixtures", "sample_frames"},
    "mix_nextvlad": {"cl_lambda", "cl_temperature", "cluster_size", "drop_rate", "expansion"}
    | {"gating_reduction", "groups", "hidden_size", "l2_penalty", "mix_number", "sample_frames"},
    "transformer": {"transformer_size", "num_heads", "transformer_layers", "ff_size"}
    | {"attention_dropout", "pooling_heads", "input_batch_norm", "sample_frames"}
    | {"num_mixtures", "moe_l2"}
    | GATE
    | HEAD,
}


def test_names_are_sorted_and_complete():
    assert frame_models.names() == EXPECTED_NAMES


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError) as error:
        frame_models.build("netvald", 10, FRAMES)
    assert "netvald" in str(error.value)
    for name in EXPECTED_NAMES:
        assert name in str(error.value)
    with pytest.raises(ValueError, match="gated_netvlad"):
        frame_models.input_mode("nope")


def test_unknown_hparam_names_key_and_valid_ones():
    with pytest.raises(ValueError) as error:
        frame_models.build("netvlad", 10, FRAMES, clusters=4)
    message = str(error.value)
    assert "clusters" in message and "cluster_size" in message and "cluster_batch_norm" in message
    # An option of another family is rejected too, whether it was shared before or not.
    with pytest.raises(ValueError, match="rnn_state"):
        frame_models.build("netvlad", 10, FRAMES, rnn_state="last", **TINY)
    with pytest.raises(ValueError, match="rnn_layers"):
        frame_models.build("netvlad", 10, FRAMES, rnn_layers=3, **TINY)


def test_hparam_of_another_model_is_an_error():
    """Once silently dropped (the old SHARED_OVERRIDES); now a ValueError listing valid ones."""
    with pytest.raises(ValueError) as error:
        frame_models.build("lstm", 10, FRAMES, cluster_size=64)
    message = str(error.value)
    assert "'lstm'" in message and "cluster_size" in message
    assert "rnn_cells" in message and "rnn_state" in message
    with pytest.raises(ValueError, match="sample_frames"):
        frame_models.input_mode("average_logistic", sample_frames=50)
    with pytest.raises(ValueError, match="num_mixtures"):
        frame_models.build("logistic", 10, VIDEO, num_mixtures=4)
    with pytest.raises(ValueError, match="l2_penalty"):
        frame_models.build("gated_netvlad", 10, FRAMES, l2_penalty=0.0, **TINY)
    # Feature lists are the `features` argument, not hyper-parameters.
    for key in ("feature_names", "feature_sizes"):
        with pytest.raises(ValueError, match=key):
            frame_models.build("moe", 10, VIDEO, **{key: "a"})


@pytest.mark.parametrize("name", EXPECTED_NAMES)
def test_each_model_takes_its_family_options(name):
    assert set(frame_models.valid_hparams(name)) == EXPECTED_HPARAMS[name]
    assert frame_models.valid_overrides(name) == frame_models.valid_hparams(name)
    values = {
        "cluster_size": 4,
        "audio_cluster_size": 2,
        "cluster_batch_norm": True,
        "hidden_size": 8,
        "hidden_batch_norm": True,
        "input_batch_norm": True,
        "fusion": "late",
        "num_mixtures": 1,
        "moe_l2": 0.0,
        "l2_penalty": 0.0,
        "sample_frames": 7,
        "rnn_cells": 8,
        "rnn_layers": 1,
        "rnn_state": "last",
        "gating_after_pooling": True,
        "gating": "glu",
        "gating_after_moe": True,
        "gating_batch_norm": False,
        "drop_rate": 0.5,
        "fv_couple_weights": True,
        "max_pool": True,
        "frame_pooling": "average",
        "hidden_relu": True,
        "bidirectional": True,
        "random_sequence": True,
        "classifier": "moe",
        "expansion": 2,
        "groups": 2,
        "gating_reduction": 2,
        "mix_number": 2,
        "cl_temperature": 2.0,
        "cl_lambda": 4.0,
        "transformer_size": 8,
        "num_heads": 2,
        "transformer_layers": 1,
        "ff_size": 16,
        "attention_dropout": 0.1,
        "pooling_heads": 2,
    }
    hparams = {k: values[k] for k in EXPECTED_HPARAMS[name]}
    model = frame_models.build(name, 3, features_for(name), **hparams)
    assert model.output.shape == (None, 3)


def test_none_hparams_keep_defaults():
    model = frame_models.build("netvlad", 10, FRAMES, cluster_size=None, hidden_size=8)
    assert model.get_layer("rgb_netvlad").num_clusters == 256
    assert model.get_layer("audio_netvlad").num_clusters == 128
    # A None for an option the model does not take is no option at all.
    frame_models.build("moe", 10, VIDEO, cluster_size=None)


@pytest.mark.parametrize(
    "hparams, flag",
    [
        ({"fusion": "middle"}, "fusion"),
        ({"gating": "relu"}, "gating"),
        ({"cluster_size": 0}, "cluster_size"),
        ({"cluster_size": "many"}, "cluster_size"),
        ({"gating_after_moe": "maybe"}, "gating_after_moe"),
        ({"moe_l2": -1}, "moe_l2"),
        ({"sample_frames": 0}, "sample_frames"),
        ({"drop_rate": 1.0}, "drop_rate"),
        ({"drop_rate": -0.1}, "drop_rate"),
        ({"drop_rate": "half"}, "drop_rate"),
    ],
)
def test_bad_values_are_value_errors(hparams, flag):
    with pytest.raises(ValueError, match=flag):
        frame_models.build("gated_netvlad", 10, FRAMES, **{**TINY, **hparams})


@pytest.mark.parametrize(
    "features, pattern",
    [
        ([], "non-empty sequence"),
        ("rgb", "non-empty sequence"),
        (None, "non-empty sequence"),
        ([("rgb", 16, 3)], "non-empty sequence"),
        ([("rgb", "a")], "size of feature 'rgb'"),
        ([("rgb", 0)], "size of feature 'rgb'"),
        ([("rgb", 16), ("rgb", 8)], "distinct"),
        ([("rgb", 4), ("num_frames", 4)], "num_frames"),
        ([("", 4)], "non-empty strings"),
    ],
)
def test_bad_features_are_value_errors(features, pattern):
    with pytest.raises(ValueError, match=pattern):
        frame_models.build("gated_netvlad", 10, features, **TINY)


def test_feature_forms():
    """Pairs, a mapping, objects with name and size (the run layer's specs.Feature)."""
    one = frame_models.build("netvlad", 10, [("rgb", "16")], **TINY)
    assert sorted(one.input) == ["num_frames", "rgb"]
    assert one.input["rgb"].shape == (None, None, 16)
    mapping = frame_models.build("moe", 10, {"mean_rgb": 16, "mean_audio": 8})
    assert {k: v.shape for k, v in mapping.input.items()} == {
        "mean_rgb": (None, 16),
        "mean_audio": (None, 8),
    }
    model = frame_models.build("netvlad", 10, specs.FRAME_FEATURES, hidden_size=8)
    assert model.input["rgb"].shape == (None, None, 1024)
    assert model.input["audio"].shape == (None, None, 128)
    assert frame_models.Feature("rgb", 4) == ("rgb", 4)


def test_bad_num_classes():
    with pytest.raises(ValueError, match="num_classes"):
        frame_models.build("moe", 0, VIDEO)


def test_string_values_from_a_command_line():
    model = frame_models.build(
        "netvlad", "10", FRAMES, **{**TINY, "cluster_size": "4", "gating_after_moe": "true"}
    )
    assert model.output.shape == (None, 10)
    assert model.get_layer("output_gating") is not None


def test_input_modes():
    # Without sample_frames the caller fills in its own frame count (300 for YouTube-8M).
    assert frame_models.input_mode("gated_netvlad") == {
        "frame_level": True,
        "sample": "random",
        "num_samples": None,
    }
    assert frame_models.input_mode("bow", sample_frames=50)["num_samples"] == 50
    assert frame_models.input_mode("bow", sample_frames="50", cluster_size=4)["num_samples"] == 50
    assert frame_models.input_mode("lstm", rnn_cells=8) == {
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
    with pytest.raises(ValueError, match="sample_frames"):
        frame_models.input_mode("netvlad", sample_frames=0)
    with pytest.raises(ValueError, match="bogus"):
        frame_models.input_mode("netvlad", bogus=1)


def test_sample_frames_of_an_ordered_family_is_passed_through():
    """lstm/gru take sample_frames as their own option; their reader still reads every frame."""
    model = frame_models.build(
        "lstm", 10, FRAMES, rnn_cells=8, random_sequence=True, sample_frames="7"
    )
    assert model.get_layer("random_subsequence").num_samples == 7
    assert frame_models.input_mode("lstm", sample_frames=7)["num_samples"] is None
    assert frame_models.input_mode("gru", sample_frames="7", random_sequence=True) == {
        "frame_level": True,
        "sample": "ordered",
        "num_samples": None,
    }
    for bad in (0, -3, "many"):
        with pytest.raises(ValueError, match="sample_frames"):
            frame_models.build("lstm", 10, FRAMES, rnn_cells=8, sample_frames=bad)
        with pytest.raises(ValueError, match="sample_frames"):
            frame_models.input_mode("gru", sample_frames=bad)
    entry = frame_models.get_entry("lstm")
    assert "sample_frames" in entry.family_hparams
    assert "sample_frames" not in frame_models.get_entry("netvlad").family_hparams


def test_sample_frames_shapes_nothing():
    a = frame_models.build("netvlad", 10, FRAMES, **TINY)
    b = frame_models.build("netvlad", 10, FRAMES, sample_frames=7, **TINY)
    assert a.count_params() == b.count_params()
    assert [layer.name for layer in a.layers] == [layer.name for layer in b.layers]


def test_dataset_features_give_the_known_input_layout():
    model = frame_models.build("gated_netvlad", 3862, FRAME_FEATURES)
    assert {k: v.shape for k, v in model.input.items()} == {
        "rgb": (None, None, 1024),
        "audio": (None, None, 128),
        "num_frames": (None,),
    }


def test_register_model_checks_its_arguments():
    def family(num_classes, features, /, *, width=1):
        raise AssertionError("not called")

    with pytest.raises(ValueError, match="sample"):
        frame_models.register_model(family, sample="shuffled")
    with pytest.raises(ValueError, match="depth"):
        frame_models.register_model(family, sample=None, exclude=("depth",))
    with pytest.raises(ValueError, match="registered twice"):
        frame_models.register_model(family, sample=None)(
            frame_models.registry._MODELS["moe"].builder
        )


def test_every_model_has_a_summary_line():
    for name in EXPECTED_NAMES:
        assert frame_models.get_entry(name).summary


def test_imports_no_y8m_module():
    code = (
        "import sys, frame_models, frame_models.summary, frame_models.losses\n"
        "bad = sorted(m for m in sys.modules if m == 'y8m' or m.startswith('y8m.'))\n"
        "assert not bad, bad\n"
    )
    root = pathlib.Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
