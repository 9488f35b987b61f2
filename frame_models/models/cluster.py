"""Cluster-pooling models of the thesis (Table 3.1): NetVLAD, NetRVLAD, NetFV and BoW.

frames -> per-frame L2 -> input BN -> one pooling per stream (late fusion) -> hidden FC + BN
-> [gating] -> MoE -> [Context Gating]. The gated_* variants switch both gatings on.
"""

from __future__ import annotations

import math
from typing import Any

import keras

from frame_models import options
from frame_models.layers import NetFV, NetRVLAD, NetVLAD, PooledRepresentation, SoftBoW
from frame_models.models import common
from frame_models.registry import register_model

# Pooling layer and thesis cluster count for the first (rgb) stream, Table 3.1.
POOLINGS = {
    "netvlad": (NetVLAD, 256),
    "netrvlad": (NetRVLAD, 256),
    "netfv": (NetFV, 128),
    "bow": (SoftBoW, 4096),
}
_GATED = {"gating_after_pooling": True, "gating_after_moe": True}


def cluster_model(
    num_classes: int,
    features: tuple[options.Feature, ...],
    pooling: str,
    model_name: str,
    /,
    *,
    fusion: str = "late",
    cluster_size: int | None = None,
    audio_cluster_size: int | None = None,
    cluster_batch_norm: bool = True,
    input_batch_norm: bool = True,
    hidden_size: int = 1024,
    hidden_batch_norm: bool = True,
    gating_after_pooling: bool = False,
    gating: str = "cg",
    gating_batch_norm: bool = True,
    gating_after_moe: bool = False,
    num_mixtures: int = 2,
    moe_l2: float = 1e-6,
) -> keras.Model:
    """A frame-level model pooling each stream with one cluster-pooling layer.

    Args:
        num_classes: C.
        features: the input streams, checked by `frame_models.build`.
        pooling: "netvlad", "netrvlad", "netfv" or "bow" (fixed by the registry name).
        model_name: the registry name, given to the keras.Model.
        fusion: "late" pools each stream separately and concatenates (thesis default);
            "early" concatenates the streams per frame and pools once (Table 3.4).
        cluster_size: clusters of the first stream (default 256, NetFV 128, BoW 4096).
        audio_cluster_size: clusters of every other stream (default cluster_size // 2).
        cluster_batch_norm: batch norm on the assignment logits instead of a bias.
        input_batch_norm: batch norm on the normalised frames (WILLOW's input_bn).
        hidden_size: size of the pooled representation (1024).
        hidden_batch_norm: batch norm after the hidden projection instead of a bias.
        gating_after_pooling: gate the pooled representation (Table 3.3, "After pooling").
        gating: "cg" (Context Gating) or "glu" for the gate after pooling.
        gating_batch_norm: batch norm on Context Gating logits instead of a bias.
        gating_after_moe: Context Gating on the probabilities (Table 3.3, "After MoE").
        num_mixtures: MoE experts per class.
        moe_l2: L2 penalty of the MoE kernels.

    Returns:
        The uncompiled model.
    """
    layer_class, default_clusters = POOLINGS[pooling]
    fusion = options.choice("fusion", fusion, common.FUSIONS)
    gating = options.choice("gating", gating, common.GATINGS)
    cluster_size = options.positive_int(
        "cluster_size", default_clusters if cluster_size is None else cluster_size
    )
    audio_cluster_size = options.positive_int(
        "audio_cluster_size",
        max(cluster_size // 2, 1) if audio_cluster_size is None else audio_cluster_size,
    )
    cluster_batch_norm = options.boolean("cluster_batch_norm", cluster_batch_norm)
    input_batch_norm = options.boolean("input_batch_norm", input_batch_norm)
    head = common.head_options(num_mixtures, moe_l2, 0.0, gating_after_moe, gating_batch_norm)

    # Layers and functional graph.
    inputs, streams, mask = common.frame_inputs(features)
    streams = common.fuse_early(streams, fusion)
    stream_names = ["fused"] if len(streams) < len(features) else [f.name for f in features]
    pooled = []
    for index, (name, x) in enumerate(zip(stream_names, streams)):
        if input_batch_norm:
            x = keras.layers.BatchNormalization(name=f"{name}_input_bn")(x, mask=mask)
        clusters = cluster_size if index == 0 else audio_cluster_size
        pooling_layer = layer_class(
            clusters, use_batch_norm=cluster_batch_norm, name=f"{name}_{pooling}"
        )
        pooled.append(pooling_layer(x, mask=mask))
    video = PooledRepresentation(
        options.positive_int("hidden_size", hidden_size),
        use_batch_norm=options.boolean("hidden_batch_norm", hidden_batch_norm),
        gating=gating if options.boolean("gating_after_pooling", gating_after_pooling) else None,
        gating_batch_norm=head["gating_batch_norm"],
        # The reference code's N(0, 1/sqrt(K)) initialisation of the hidden projection.
        kernel_initializer=keras.initializers.RandomNormal(stddev=1.0 / math.sqrt(cluster_size)),
        name="pooled_representation",
    )(pooled)
    probabilities = common.classifier_head(video, num_classes, classifier="moe", **head)
    return keras.Model(inputs, probabilities, name=model_name)


@register_model(cluster_model, sample="random")
def gated_netvlad(num_classes: int, features: tuple, **hparams: Any) -> keras.Model:
    """NetVLAD with Context Gating after pooling and after the MoE (Table 3.1: 83.2% GAP)."""
    return cluster_model(num_classes, features, "netvlad", "gated_netvlad", **{**_GATED, **hparams})


@register_model(cluster_model, sample="random")
def netvlad(num_classes: int, features: tuple, **hparams: Any) -> keras.Model:
    """NetVLAD pooling, no gating (Table 3.1: 82.4% GAP)."""
    return cluster_model(num_classes, features, "netvlad", "netvlad", **hparams)


@register_model(cluster_model, sample="random")
def gated_netrvlad(num_classes: int, features: tuple, **hparams: Any) -> keras.Model:
    """Residual-less NetVLAD with both Context Gatings (Table 3.1: 83.1% GAP)."""
    return cluster_model(
        num_classes, features, "netrvlad", "gated_netrvlad", **{**_GATED, **hparams}
    )


@register_model(cluster_model, sample="random")
def netrvlad(num_classes: int, features: tuple, **hparams: Any) -> keras.Model:
    """Residual-less NetVLAD, no gating (Table 3.1: 82.3% GAP)."""
    return cluster_model(num_classes, features, "netrvlad", "netrvlad", **hparams)


@register_model(cluster_model, sample="random")
def gated_netfv(num_classes: int, features: tuple, **hparams: Any) -> keras.Model:
    """NetFV (first and second order) with both Context Gatings (Table 3.1: 83.0% GAP)."""
    return cluster_model(num_classes, features, "netfv", "gated_netfv", **{**_GATED, **hparams})


@register_model(cluster_model, sample="random")
def netfv(num_classes: int, features: tuple, **hparams: Any) -> keras.Model:
    """NetFV pooling, no gating (Table 3.1: 82.2% GAP)."""
    return cluster_model(num_classes, features, "netfv", "netfv", **hparams)


@register_model(cluster_model, sample="random")
def gated_bow(num_classes: int, features: tuple, **hparams: Any) -> keras.Model:
    """Soft bag-of-words with both Context Gatings (Table 3.1: 82.0% GAP)."""
    return cluster_model(num_classes, features, "bow", "gated_bow", **{**_GATED, **hparams})


@register_model(cluster_model, sample="random")
def bow(num_classes: int, features: tuple, **hparams: Any) -> keras.Model:
    """Soft bag-of-words, no gating (Table 3.1: 81.6% GAP)."""
    return cluster_model(num_classes, features, "bow", "bow", **hparams)
