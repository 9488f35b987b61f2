"""Deep bag-of-frames models: WILLOW's GatedDBoF and SoftDBoF, and the starter code's DBoF.

frames -> per-frame L2 -> input BN -> one DBoF pooling per stream -> hidden FC + BN
-> [relu6] -> [gating] -> [dropout] -> MoE -> [Context Gating].
"""

from __future__ import annotations

import math
from typing import Any

import keras

from frame_models import options
from frame_models.layers import PooledRepresentation
from frame_models.layers.dbof import FRAME_POOLINGS, DBoF, GatedDBoF, SoftDBoF
from frame_models.models import common
from frame_models.registry import register_model

# Pooling of the first stream, pooling of every other stream, and the first stream's default
# width: WILLOW's README runs (GatedDBoF 4096, SoftDBoF 8000) and the starter code's 8192.
POOLINGS = {
    "gated_dbof": (GatedDBoF, SoftDBoF, 4096),
    "soft_dbof": (SoftDBoF, SoftDBoF, 8000),
    "dbof": (DBoF, DBoF, 8192),
}
# The other streams get cluster_size // AUDIO_DIVISOR clusters (WILLOW's K/8 audio branches).
AUDIO_DIVISOR = 8
# `max_pool` belongs to WILLOW's SoftDBoF, `frame_pooling` to the starter's DBoF.
SOFT_ONLY = ("max_pool",)
STARTER_ONLY = ("frame_pooling",)


def dbof_model(
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
    max_pool: bool = False,
    frame_pooling: str = "max",
    hidden_size: int = 1024,
    hidden_batch_norm: bool = True,
    hidden_relu: bool = False,
    gating_after_pooling: bool = False,
    gating: str = "cg",
    gating_batch_norm: bool = True,
    gating_after_moe: bool = False,
    num_mixtures: int = 2,
    moe_l2: float = 1e-6,
    drop_rate: float = 0.0,
) -> keras.Model:
    """A frame-level model pooling each stream with a deep bag-of-frames layer.

    Args:
        num_classes: C.
        features: the input streams, checked by `frame_models.build`.
        pooling: "gated_dbof", "soft_dbof" or "dbof" (fixed by the registry name): the first
            stream is pooled by GatedDBoF, SoftDBoF or DBoF, every other stream by SoftDBoF,
            SoftDBoF or DBoF.
        model_name: the registry name, given to the keras.Model.
        fusion: "late" pools each stream separately and concatenates (WILLOW); "early"
            concatenates the streams per frame and pools once (the starter code).
        cluster_size: clusters of the first stream (default 4096 gated, 8000 soft, 8192 DBoF).
        audio_cluster_size: clusters of every other stream (default cluster_size // 8).
        cluster_batch_norm: batch norm on the assignment (DBoF: projection) logits and on
            GatedDBoF's gate logits instead of biases.
        input_batch_norm: batch norm on the normalised frames (the references' input_bn).
        max_pool: SoftDBoF also outputs its max-pooled assignments (WILLOW's
            softdbof_maxpool; GatedDBoF always max-pools for its gate).
        frame_pooling: "max" or "average" over frames of the starter's DBoF.
        hidden_size: size of the hidden projection (1024).
        hidden_batch_norm: batch norm after the hidden projection instead of a bias.
        hidden_relu: relu6 after it (the references' dbof_relu; off in WILLOW's runs, always on
            in the starter code).
        gating_after_pooling: gate the hidden vector (not in the references).
        gating: "cg" (Context Gating) or "glu" for that gate.
        gating_batch_norm: batch norm on Context Gating logits instead of a bias.
        gating_after_moe: Context Gating on the probabilities (WILLOW's moe_prob_gating).
        num_mixtures: MoE experts per class.
        moe_l2: L2 penalty of the MoE kernels.
        drop_rate: dropout on the video vector before the MoE, in training.

    Returns:
        The uncompiled model.
    """
    first_class, other_class, default_clusters = POOLINGS[pooling]
    fusion = options.choice("fusion", fusion, common.FUSIONS)
    gating = options.choice("gating", gating, common.GATINGS)
    cluster_size = options.positive_int(
        "cluster_size", default_clusters if cluster_size is None else cluster_size
    )
    audio_cluster_size = options.positive_int(
        "audio_cluster_size",
        max(cluster_size // AUDIO_DIVISOR, 1) if audio_cluster_size is None else audio_cluster_size,
    )
    layer_options = {"use_batch_norm": options.boolean("cluster_batch_norm", cluster_batch_norm)}
    soft_options = {"max_pool": options.boolean("max_pool", max_pool)}
    frame_pooling = options.choice("frame_pooling", frame_pooling, FRAME_POOLINGS)
    if pooling == "dbof":
        layer_options["pooling"] = frame_pooling
        if soft_options["max_pool"]:
            raise ValueError(f"--max_pool applies to SoftDBoF models only, not {model_name}")
    elif frame_pooling != "max":
        raise ValueError(f"--frame_pooling applies to the dbof model only, not {model_name}")
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
        layer_class = first_class if index == 0 else other_class
        extra = soft_options if layer_class is SoftDBoF else {}
        pooling_layer = layer_class(
            cluster_size if index == 0 else audio_cluster_size,
            name=f"{name}_{pooling}",
            **layer_options,
            **extra,
        )
        pooled.append(pooling_layer(x, mask=mask))
    video = PooledRepresentation(
        options.positive_int("hidden_size", hidden_size),
        use_batch_norm=options.boolean("hidden_batch_norm", hidden_batch_norm),
        gating=None,
        # The references' N(0, 1/sqrt(K)) initialisation of the hidden projection.
        kernel_initializer=keras.initializers.RandomNormal(stddev=1.0 / math.sqrt(cluster_size)),
        name="pooled_representation",
    )(pooled)
    if options.boolean("hidden_relu", hidden_relu):
        video = keras.layers.Activation("relu6", name="hidden_relu6")(video)
    if options.boolean("gating_after_pooling", gating_after_pooling):
        video = common.gate(video, gating, head["gating_batch_norm"], name="pooled")
    probabilities = common.classifier_head(video, num_classes, classifier="moe", **head)
    return keras.Model(inputs, probabilities, name=model_name)


@register_model(dbof_model, sample="random", exclude=STARTER_ONLY)
def gated_dbof(num_classes: int, features: tuple, **hparams: Any) -> keras.Model:
    """WILLOW's gated deep bag of frames: GatedDBoF rgb (4096), SoftDBoF audio (512), MoE."""
    return dbof_model(num_classes, features, "gated_dbof", "gated_dbof", **hparams)


@register_model(dbof_model, sample="random", exclude=STARTER_ONLY)
def soft_dbof(num_classes: int, features: tuple, **hparams: Any) -> keras.Model:
    """WILLOW's soft deep bag of frames: SoftDBoF rgb (8000) and audio (1000), MoE."""
    return dbof_model(
        num_classes, features, "soft_dbof", "soft_dbof", **{"moe_l2": 1e-8, **hparams}
    )


@register_model(dbof_model, sample="random", exclude=SOFT_ONLY)
def dbof(num_classes: int, features: tuple, **hparams: Any) -> keras.Model:
    """The starter code's DbofModel: 8192-wide ReLU6 projection, max-pooled, hidden, MoE."""
    defaults = {"fusion": "early", "hidden_relu": True, "moe_l2": 1e-8}
    return dbof_model(num_classes, features, "dbof", "dbof", **{**defaults, **hparams})
