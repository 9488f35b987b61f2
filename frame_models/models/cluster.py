"""Cluster-pooling models of the thesis (Table 3.1): NetVLAD, NetRVLAD, NetFV and BoW, and
WILLOW's NetVLAGD.

frames -> per-frame L2 -> input BN -> one pooling per stream (late fusion) -> hidden FC + BN
-> [gating] -> [dropout] -> MoE -> [Context Gating]. The gated_* variants switch both gatings on.
"""

from __future__ import annotations

import math
from typing import Any

import keras

from frame_models import options
from frame_models.layers import NetFV, NetRVLAD, NetVLAD, PooledRepresentation, SoftBoW
from frame_models.layers.netvlagd import NetVLAGD
from frame_models.models import common
from frame_models.registry import register_model

# Pooling layer and thesis cluster count for the first (rgb) stream, Table 3.1 (NetVLAGD, not
# in the thesis, takes NetVLAD's).
POOLINGS = {
    "netvlad": (NetVLAD, 256),
    "netrvlad": (NetRVLAD, 256),
    "netvlagd": (NetVLAGD, 256),
    "netfv": (NetFV, 128),
    "bow": (SoftBoW, 4096),
}
_GATED = {"gating_after_pooling": True, "gating_after_moe": True}
# Options only NetFV pooling uses; the other poolings' models exclude them.
NETFV_ONLY = ("fv_couple_weights",)


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
    fv_couple_weights: bool = False,
    drop_rate: float = 0.0,
) -> keras.Model:
    """A frame-level model pooling each stream with one cluster-pooling layer.

    Args:
        num_classes: C.
        features: the input streams, checked by `frame_models.build`.
        pooling: "netvlad", "netrvlad", "netvlagd", "netfv" or "bow" (fixed by the registry
            name).
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
        fv_couple_weights: NetFV only: centres tied to the assignment weights (0.01 times
            them, WILLOW's flag default) instead of free centres (WILLOW's ensemble run, and
            this model before the option existed).
        drop_rate: dropout on the video vector before the MoE, in training.

    Returns:
        The uncompiled model.
    """
    layer_class, default_clusters = POOLINGS[pooling]
    pooling_options = {}
    if options.boolean("fv_couple_weights", fv_couple_weights):
        if pooling != "netfv":
            raise ValueError(f"--fv_couple_weights applies to NetFV models only, not {model_name}")
        pooling_options["couple_weights"] = True
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
    head = common.head_options(
        num_mixtures, moe_l2, 0.0, gating_after_moe, gating_batch_norm, drop_rate
    )

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
            clusters,
            use_batch_norm=cluster_batch_norm,
            name=f"{name}_{pooling}",
            **pooling_options,
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


@register_model(cluster_model, sample="random", exclude=NETFV_ONLY)
def gated_netvlad(num_classes: int, features: tuple, **hparams: Any) -> keras.Model:
    """NetVLAD with Context Gating after pooling and after the MoE (Table 3.1: 83.2% GAP)."""
    return cluster_model(num_classes, features, "netvlad", "gated_netvlad", **{**_GATED, **hparams})


@register_model(cluster_model, sample="random", exclude=NETFV_ONLY)
def netvlad(num_classes: int, features: tuple, **hparams: Any) -> keras.Model:
    """NetVLAD pooling, no gating (Table 3.1: 82.4% GAP)."""
    return cluster_model(num_classes, features, "netvlad", "netvlad", **hparams)


@register_model(cluster_model, sample="random", exclude=NETFV_ONLY)
def gated_netrvlad(num_classes: int, features: tuple, **hparams: Any) -> keras.Model:
    """Residual-less NetVLAD with both Context Gatings (Table 3.1: 83.1% GAP)."""
    return cluster_model(
        num_classes, features, "netrvlad", "gated_netrvlad", **{**_GATED, **hparams}
    )


@register_model(cluster_model, sample="random", exclude=NETFV_ONLY)
def netrvlad(num_classes: int, features: tuple, **hparams: Any) -> keras.Model:
    """Residual-less NetVLAD, no gating (Table 3.1: 82.3% GAP)."""
    return cluster_model(num_classes, features, "netrvlad", "netrvlad", **hparams)


@register_model(cluster_model, sample="random", exclude=NETFV_ONLY)
def gated_netvlagd(num_classes: int, features: tuple, **hparams: Any) -> keras.Model:
    """WILLOW's NetVLAGD with both Context Gatings (not in the thesis's Table 3.1)."""
    return cluster_model(
        num_classes, features, "netvlagd", "gated_netvlagd", **{**_GATED, **hparams}
    )


@register_model(cluster_model, sample="random", exclude=NETFV_ONLY)
def netvlagd(num_classes: int, features: tuple, **hparams: Any) -> keras.Model:
    """WILLOW's NetVLAGD: NetRVLAD with a learned per-(dimension, cluster) gate, no gating."""
    return cluster_model(num_classes, features, "netvlagd", "netvlagd", **hparams)


@register_model(cluster_model, sample="random")
def gated_netfv(num_classes: int, features: tuple, **hparams: Any) -> keras.Model:
    """NetFV (first and second order) with both Context Gatings (Table 3.1: 83.0% GAP)."""
    return cluster_model(num_classes, features, "netfv", "gated_netfv", **{**_GATED, **hparams})


@register_model(cluster_model, sample="random")
def netfv(num_classes: int, features: tuple, **hparams: Any) -> keras.Model:
    """NetFV pooling, no gating (Table 3.1: 82.2% GAP)."""
    return cluster_model(num_classes, features, "netfv", "netfv", **hparams)


@register_model(cluster_model, sample="random", exclude=NETFV_ONLY)
def gated_bow(num_classes: int, features: tuple, **hparams: Any) -> keras.Model:
    """Soft bag-of-words with both Context Gatings (Table 3.1: 82.0% GAP)."""
    return cluster_model(num_classes, features, "bow", "gated_bow", **{**_GATED, **hparams})


@register_model(cluster_model, sample="random", exclude=NETFV_ONLY)
def bow(num_classes: int, features: tuple, **hparams: Any) -> keras.Model:
    """Soft bag-of-words, no gating (Table 3.1: 81.6% GAP)."""
    return cluster_model(num_classes, features, "bow", "bow", **hparams)
