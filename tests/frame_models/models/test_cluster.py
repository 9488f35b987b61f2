"""Cluster-pooling models: cluster counts, fusion, and the Table 3.3 gating switches."""

import numpy as np
import pytest

import frame_models
from frame_models.layers import GLU, ContextGating, NetFV, NetRVLAD, NetVLAD, SoftBoW
from frame_models.layers.netvlagd import NetVLAGD
from tests.frame_models.models.tiny import NUM_CLASSES, build, frame_batch


def layer_names(model):
    return {layer.name for layer in model.layers}


@pytest.mark.parametrize(
    "name, layer_class, clusters",
    [
        ("netvlad", NetVLAD, 256),
        ("netrvlad", NetRVLAD, 256),
        ("netfv", NetFV, 128),
        ("bow", SoftBoW, 4096),
        ("netvlagd", NetVLAGD, 256),
    ],
)
def test_thesis_cluster_counts(name, layer_class, clusters):
    model = build(name, cluster_size=None, audio_cluster_size=None)
    rgb, audio = model.get_layer(f"rgb_{name}"), model.get_layer(f"audio_{name}")
    assert type(rgb) is layer_class and type(audio) is layer_class
    assert (rgb.num_clusters, audio.num_clusters) == (clusters, clusters // 2)


def test_audio_cluster_size_and_third_stream():
    model = frame_models.build(
        "netvlad",
        NUM_CLASSES,
        [("rgb", 16), ("audio", 8), ("extra", 4)],
        cluster_size=6,
        audio_cluster_size=5,
        hidden_size=8,
    )
    assert model.get_layer("rgb_netvlad").num_clusters == 6
    assert model.get_layer("audio_netvlad").num_clusters == 5
    assert model.get_layer("extra_netvlad").num_clusters == 5
    assert model.get_layer("pooled_representation").kernel.shape == (16 * 6 + 8 * 5 + 4 * 5, 8)
    assert sorted(model.input) == ["audio", "extra", "num_frames", "rgb"]


def test_early_fusion_pools_one_concatenated_stream():
    model = build("netfv", fusion="early")
    names = layer_names(model)
    assert "fused_netfv" in names and "rgb_netfv" not in names
    assert model.get_layer("fused_netfv").cluster_weights.shape == (24, 4)
    out = np.asarray(model(frame_batch(np.random.default_rng(40)), training=False))
    assert out.shape == (3, NUM_CLASSES) and np.all(np.isfinite(out))


# Table 3.3: (after pooling, after MoE) for NetVLAD.
TABLE_3_3 = [
    ({"gating_after_pooling": False, "gating_after_moe": False}, None, False),
    ({"gating_after_pooling": True, "gating": "glu", "gating_after_moe": False}, GLU, False),
    ({"gating_after_pooling": True, "gating_after_moe": False}, ContextGating, False),
    ({"gating_after_pooling": True, "gating": "glu", "gating_after_moe": True}, GLU, True),
    ({"gating_after_pooling": True, "gating_after_moe": True}, ContextGating, True),
]


@pytest.mark.parametrize("switches, pooled_gate, output_gate", TABLE_3_3)
def test_table_3_3_switches(switches, pooled_gate, output_gate):
    model = build("netvlad", **switches)
    gate = model.get_layer("pooled_representation").gate
    assert (gate is None) if pooled_gate is None else isinstance(gate, pooled_gate)
    assert ("output_gating" in layer_names(model)) == output_gate


def test_gated_defaults_and_their_overrides():
    gated = build("gated_netvlad")
    assert isinstance(gated.get_layer("pooled_representation").gate, ContextGating)
    assert "output_gating" in layer_names(gated)
    plain = build("gated_netvlad", gating_after_moe=False)
    assert "output_gating" not in layer_names(plain)
    assert build("netvlad").get_layer("pooled_representation").gate is None


def test_batch_norm_switches():
    model = build(
        "gated_bow",
        input_batch_norm=False,
        cluster_batch_norm=False,
        hidden_batch_norm=False,
        gating_batch_norm=False,
    )
    assert not any("input_bn" in n for n in layer_names(model))
    assert model.get_layer("rgb_bow").use_batch_norm is False
    pooled = model.get_layer("pooled_representation")
    assert pooled.use_batch_norm is False and pooled.gate.use_batch_norm is False
    assert model.get_layer("output_gating").use_batch_norm is False


def test_gated_netvlagd_has_both_gatings():
    model = build("gated_netvlagd")
    assert type(model.get_layer("rgb_netvlagd")) is NetVLAGD
    assert isinstance(model.get_layer("pooled_representation").gate, ContextGating)
    assert "output_gating" in layer_names(model)
    assert build("netvlagd").get_layer("pooled_representation").gate is None


@pytest.mark.parametrize("name", ["netfv", "gated_netfv"])
def test_fv_couple_weights(name):
    free = build(name)
    assert free.get_layer("rgb_netfv").couple_weights is False  # default: free centres
    coupled = build(name, fv_couple_weights="true")
    for stream in ("rgb", "audio"):
        layer = coupled.get_layer(f"{stream}_netfv")
        assert layer.couple_weights is True and layer.cluster_centers is None
    # The coupled model lacks the centres: D * K per stream.
    assert free.count_params() - coupled.count_params() == 16 * 4 + 8 * 2


@pytest.mark.parametrize("name", ["netvlad", "gated_netrvlad", "bow", "netvlagd"])
def test_fv_couple_weights_is_netfv_only(name):
    with pytest.raises(ValueError, match="fv_couple_weights"):
        build(name, fv_couple_weights=True)
    assert "fv_couple_weights" not in frame_models.valid_hparams(name)


def test_fv_couple_weights_rejected_by_the_family_for_other_poolings():
    from frame_models.models.cluster import cluster_model

    features = (frame_models.Feature("rgb", 16),)
    with pytest.raises(ValueError, match="fv_couple_weights"):
        cluster_model(NUM_CLASSES, features, "netvlad", "netvlad", fv_couple_weights=True)
