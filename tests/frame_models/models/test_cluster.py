"""Cluster-pooling models: cluster counts, fusion, and the Table 3.3 gating switches."""

import numpy as np
import pytest

import frame_models
from frame_models.layers import GLU, ContextGating, NetFV, NetRVLAD, NetVLAD, SoftBoW
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
    ],
)
def test_thesis_cluster_counts(name, layer_class, clusters):
    model = build(name, cluster_size=None)
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
