"""Deep bag-of-frames models: layers and widths per stream, per-model defaults and options."""

import numpy as np
import pytest

import frame_models
from frame_models.layers import ContextGating
from frame_models.layers.dbof import DBoF, GatedDBoF, SoftDBoF
from tests.frame_models.helpers import l2n, weight
from tests.frame_models.models.tiny import FRAME_FEATURES, NUM_CLASSES, build, frame_batch


def layer_names(model):
    return {layer.name for layer in model.layers}


@pytest.mark.parametrize(
    "name, rgb_class, audio_class, clusters",
    [
        ("gated_dbof", GatedDBoF, SoftDBoF, 4096),  # WILLOW / [M] DBoF1
        ("soft_dbof", SoftDBoF, SoftDBoF, 8000),  # WILLOW's README run
    ],
)
def test_willow_layers_and_cluster_counts(name, rgb_class, audio_class, clusters):
    model = build(name, cluster_size=None, audio_cluster_size=None)
    rgb, audio = model.get_layer(f"rgb_{name}"), model.get_layer(f"audio_{name}")
    assert type(rgb) is rgb_class and type(audio) is audio_class
    assert (rgb.num_clusters, audio.num_clusters) == (clusters, clusters // 8)
    assert model.get_layer("pooled_representation").kernel.shape == (clusters * 9 // 8, 8)
    assert "hidden_relu6" not in layer_names(model)
    assert "output_gating" not in layer_names(model)


def test_starter_dbof_defaults():
    """One DBoF on the fused 1152-d frame (here 24-d), 8192 wide, max pooling, ReLU6 hidden."""
    model = build("dbof", cluster_size=None)
    pool = model.get_layer("fused_dbof")
    assert type(pool) is DBoF and pool.num_clusters == 8192 and pool.pooling == "max"
    assert pool.projection_weights.shape == (24, 8192)
    assert "rgb_dbof" not in layer_names(model) and "hidden_relu6" in layer_names(model)
    assert model.get_layer("moe").l2_penalty == 1e-8
    assert model.get_layer("pooled_representation").kernel.shape == (8192, 8)


def test_moe_l2_defaults():
    """README: GatedDBoF with --moe_l2=1e-6, SoftDBoF with the flag default 1e-8."""
    assert build("gated_dbof").get_layer("moe").l2_penalty == 1e-6
    assert build("soft_dbof").get_layer("moe").l2_penalty == 1e-8
    assert build("soft_dbof", moe_l2=1e-6).get_layer("moe").l2_penalty == 1e-6


def test_max_pool_applies_to_soft_dbof_layers():
    soft = build("soft_dbof", max_pool=True, audio_cluster_size=2)
    assert soft.get_layer("rgb_soft_dbof").max_pool and soft.get_layer("audio_soft_dbof").max_pool
    assert soft.get_layer("pooled_representation").kernel.shape == (2 * 4 + 2 * 2, 8)
    gated = build("gated_dbof", max_pool=True, audio_cluster_size=2)
    # GatedDBoF always max-pools for its gate; the option reaches the SoftDBoF streams.
    assert gated.get_layer("audio_gated_dbof").max_pool
    assert gated.get_layer("pooled_representation").kernel.shape == (4 + 2 * 2, 8)


def test_options_of_the_other_pooling_are_rejected():
    with pytest.raises(ValueError, match="max_pool"):
        build("dbof", max_pool=True)
    for name in ("gated_dbof", "soft_dbof"):
        with pytest.raises(ValueError, match="frame_pooling"):
            build(name, frame_pooling="average")
    with pytest.raises(ValueError, match="frame_pooling"):
        build("dbof", frame_pooling="median")


def test_late_fusion_dbof_and_average_pooling():
    model = build("dbof", fusion="late", frame_pooling="average", cluster_size=16)
    rgb, audio = model.get_layer("rgb_dbof"), model.get_layer("audio_dbof")
    assert (rgb.num_clusters, audio.num_clusters) == (16, 2)
    assert rgb.pooling == audio.pooling == "average"
    out = np.asarray(model(frame_batch(np.random.default_rng(80)), training=False))
    assert out.shape == (3, NUM_CLASSES) and np.all(np.isfinite(out))


def test_head_switches():
    model = build(
        "gated_dbof",
        hidden_relu=True,
        gating_after_pooling=True,
        gating_after_moe=True,
        hidden_batch_norm=False,
        cluster_batch_norm=False,
        input_batch_norm=False,
    )
    names = layer_names(model)
    assert {"hidden_relu6", "pooled_gating", "output_gating"} <= names
    assert isinstance(model.get_layer("pooled_gating"), ContextGating)
    assert not any("input_bn" in n for n in names)
    assert model.get_layer("pooled_representation").use_batch_norm is False
    rgb = model.get_layer("rgb_gated_dbof")
    assert rgb.use_batch_norm is False and rgb.gate_biases is not None


def test_relu6_bounds_the_hidden_vector():
    """With hidden_relu the MoE input is relu6 of the hidden projection."""
    import keras

    model = build("dbof")
    batch = frame_batch(np.random.default_rng(81))
    hidden = keras.Model(model.input, model.get_layer("hidden_relu6").output)
    pre = keras.Model(model.input, model.get_layer("pooled_representation").output)
    np.testing.assert_allclose(
        np.asarray(hidden(batch)), np.clip(np.asarray(pre(batch)), 0.0, 6.0), atol=1e-6
    )


def test_soft_dbof_matches_numpy_pooling():
    """The rgb SoftDBoF of the model reads jointly L2-normalised frames after input BN."""
    import keras

    model = build("soft_dbof", input_batch_norm=False)
    batch = frame_batch(np.random.default_rng(82), num_frames=(6, 3, 0))
    pooled = keras.Model(model.input, model.get_layer("rgb_soft_dbof").output)
    layer = model.get_layer("rgb_soft_dbof")
    expected = []
    for b, n in enumerate(batch["num_frames"]):
        joint = l2n(np.concatenate([batch["rgb"][b, :n], batch["audio"][b, :n]], axis=1))
        logits = joint[:, :16] @ weight(layer, "cluster_weights")
        bn = {k: weight(layer, f"assignment_bn/{k}") for k in ("gamma", "beta")}
        mean, var = (weight(layer, f"assignment_bn/moving_{k}") for k in ("mean", "variance"))
        z = bn["gamma"] * (logits - mean) / np.sqrt(var + 1e-3) + bn["beta"]
        a = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        expected.append(l2n(a.sum(axis=0)))
    np.testing.assert_allclose(
        np.asarray(pooled(batch, training=False)), np.stack(expected), rtol=1e-5, atol=1e-6
    )


def test_dataset_sizes_build():
    model = frame_models.build("gated_dbof", 10, [("rgb", 1024), ("audio", 128)], hidden_size=8)
    rgb = model.get_layer("rgb_gated_dbof")
    assert rgb.dim_red.shape == (4096, 1024) and rgb.gate_weights.shape == (1024, 4096)
    assert model.get_layer("audio_gated_dbof").num_clusters == 512
    assert frame_models.input_mode("dbof")["sample"] == "random"
    assert sorted(build("dbof").input) == sorted([f for f, _ in FRAME_FEATURES] + ["num_frames"])
