"""NeXtVLAD and MixNeXtVLAD (Lin et al. 2018; YouTube-8M 2018, 3rd place), by registry name.

frames -> joint L2 -> one NeXtVLAD per stream -> concat -> dropout -> hidden FC + BN -> SE
gating -> classifier. `mix_nextvlad` mixes the logits of several such branches with a per-video
gate and trains them by online distillation.
"""

from __future__ import annotations

from typing import Any

import keras

from frame_models import options
from frame_models.layers import MaskedAverage, PooledRepresentation
from frame_models.layers.nextvlad import NeXtVLAD, variance_scaling
from frame_models.layers.online_distillation import OnlineDistillation
from frame_models.layers.se_gating import SEGating
from frame_models.models import common
from frame_models.registry import register_model

CLASSIFIERS = ("logistic", "moe")
# Options only the mixture takes, and those only the single model takes (the branches are
# logistic: they must give logits, which the MoE does not).
MIX_ONLY = ("mix_number", "cl_temperature", "cl_lambda")
SINGLE_ONLY = ("classifier", "num_mixtures", "moe_l2")


def _branch_options(
    features, cluster_size, groups, expansion, hidden_size, gating_reduction, drop_rate
) -> dict[str, Any]:
    """The per-branch settings, checked: (clusters, groups) per stream and the tail's sizes."""
    cluster_size = options.positive_int("cluster_size", cluster_size)
    groups = options.positive_int("groups", groups)
    expansion = options.positive_int("expansion", expansion)
    hidden_size = options.positive_int("hidden_size", hidden_size)
    gating_reduction = options.positive_int("gating_reduction", gating_reduction)
    drop_rate = options.non_negative_float("drop_rate", drop_rate)
    if not drop_rate < 1:
        raise ValueError(f"--drop_rate must be below 1, received {drop_rate!r}")
    if hidden_size // gating_reduction < 1:
        raise ValueError(
            f"--gating_reduction must be at most hidden_size ({hidden_size}), "
            f"received {gating_reduction!r}"
        )
    # Every stream after the first (audio) gets half the clusters and half the groups.
    sizes = [(cluster_size, groups)] + [
        (max(cluster_size // 2, 1), max(groups // 2, 1)) for _ in features[1:]
    ]
    for feature, (_, stream_groups) in zip(features, sizes):
        if expansion * feature.size % stream_groups:
            raise ValueError(
                f"--groups: expansion * size of {feature.name!r} ({expansion} * {feature.size}) "
                f"must be divisible by its {stream_groups} groups"
            )
    return {
        "sizes": sizes,
        "expansion": expansion,
        "hidden_size": hidden_size,
        "gating_reduction": gating_reduction,
        "drop_rate": drop_rate,
    }


def _branch(features, streams, mask, branch: dict[str, Any], prefix: str):
    """One NeXtVLAD branch up to the classifier: (B, T, D_s) streams -> (B, H) video vector."""
    pooled = []
    for feature, x, (clusters, groups) in zip(features, streams, branch["sizes"]):
        layer = NeXtVLAD(
            clusters, branch["expansion"], groups, name=f"{prefix}{feature.name}_nextvlad"
        )
        pooled.append(layer(x, mask=mask))
    x = keras.layers.Concatenate(name=f"{prefix}vlad")(pooled) if len(pooled) > 1 else pooled[0]
    x = keras.layers.Dropout(branch["drop_rate"], name=f"{prefix}vlad_dropout")(x)
    # Hidden FC without bias, then batch norm, no activation (the reference's ReLU is off).
    x = PooledRepresentation(
        branch["hidden_size"],
        gating=None,
        kernel_initializer=variance_scaling(),
        name=f"{prefix}hidden",
    )([x])  # a list: its build reads a single shape reloaded from JSON as a list of shapes
    return SEGating(branch["gating_reduction"], name=f"{prefix}se_gating")(x)


def _mixture(features, streams, mask, num_classes, branch, l2_penalty, mix_number, distill):
    """M logistic branches, their per-video gate and the OnlineDistillation mixture -> probs."""
    # slim's l2_regularizer(scale) is scale * sum(w^2) / 2; keras' L2(l) is l * sum(w^2).
    regularizer = keras.regularizers.L2(l2_penalty / 2) if l2_penalty else None
    logits = []
    for m in range(1, mix_number + 1):
        video = _branch(features, streams, mask, branch, prefix=f"branch_{m}_")
        logits.append(
            keras.layers.Dense(
                num_classes, kernel_regularizer=regularizer, name=f"branch_{m}_logits"
            )(video)
        )
    # The gate sees the mean of the real frames (the reference averages all 300 slots).
    frames = (
        keras.layers.Concatenate(name="gate_frames")(streams) if len(streams) > 1 else streams[0]
    )
    mean = MaskedAverage(name="gate_average")(frames, mask=mask)  # (B, D)
    mean = keras.layers.BatchNormalization(name="gate_bn")(mean)
    gate = keras.layers.Dense(mix_number, activation="softmax", name="gate")(mean)  # (B, M)
    mixture = OnlineDistillation(**distill, name="online_distillation")([gate, *logits])
    probabilities = keras.layers.Activation("sigmoid", name="mixture_sigmoid")(mixture)
    # A float32 identity layer casts float16 outputs back, the mixed-precision idiom.
    return keras.layers.Activation("linear", dtype="float32", name="probabilities")(probabilities)


def nextvlad_model(
    num_classes: int,
    features: tuple[options.Feature, ...],
    mix: bool,
    model_name: str,
    /,
    *,
    cluster_size: int = 112,
    groups: int = 8,
    expansion: int = 2,
    hidden_size: int = 2048,
    gating_reduction: int = 16,
    drop_rate: float = 0.5,
    classifier: str = "logistic",
    num_mixtures: int = 4,
    moe_l2: float = 1e-6,
    l2_penalty: float = 1e-5,
    mix_number: int = 3,
    cl_temperature: float = 3.0,
    cl_lambda: float = 9.0,
) -> keras.Model:
    """NeXtVLAD (`mix` False) or MixNeXtVLAD (`mix` True) on the given streams.

    Args:
        num_classes: C.
        features: the input streams, checked by `frame_models.build`.
        mix: one branch and a classifier head, or `mix_number` branches mixed by a gate.
        model_name: the registry name, given to the keras.Model.
        cluster_size: K of the first (rgb) stream; every other stream gets K // 2 (at least 1).
        groups: G of the first stream; every other stream gets G // 2 (at least 1). Each
            stream's expansion * size must be divisible by its groups.
        expansion: λ, the frames' expansion factor.
        hidden_size: H, the hidden layer's size.
        gating_reduction: r of the SE gating's bottleneck (H // r units).
        drop_rate: dropout rate on the pooled vector, before the hidden layer.
        classifier: "logistic" (the reference scripts) or "moe" (single model only).
        num_mixtures: MoE experts per class.
        moe_l2: L2 penalty of the MoE kernels.
        l2_penalty: L2 penalty of the logistic kernels (of every branch for the mixture).
        mix_number: M, the mixture's branches.
        cl_temperature: T of the distillation's softened distributions.
        cl_lambda: weight of the distillation term (the reference sets it to T^2 by hand).

    Returns:
        The uncompiled model; its output is the (B, C) probabilities (of the mixture).
    """
    branch = _branch_options(
        features, cluster_size, groups, expansion, hidden_size, gating_reduction, drop_rate
    )
    l2_penalty = options.non_negative_float("l2_penalty", l2_penalty)

    # Layers and functional graph.
    inputs, streams, mask = common.frame_inputs(features)
    if mix:
        distill = {
            "temperature": options.non_negative_float("cl_temperature", cl_temperature),
            "weight": options.non_negative_float("cl_lambda", cl_lambda),
        }
        if not distill["temperature"] > 0:
            raise ValueError(f"--cl_temperature must be > 0, received {cl_temperature!r}")
        mix_number = options.positive_int("mix_number", mix_number)
        probabilities = _mixture(
            features, streams, mask, num_classes, branch, l2_penalty, mix_number, distill
        )
    else:
        classifier = options.choice("classifier", classifier, CLASSIFIERS)
        head = common.head_options(
            num_mixtures=num_mixtures,
            moe_l2=moe_l2,
            l2_penalty=l2_penalty,
            gating_after_moe=False,
            gating_batch_norm=True,
        )
        video = _branch(features, streams, mask, branch, prefix="")
        probabilities = common.classifier_head(video, num_classes, classifier=classifier, **head)
    return keras.Model(inputs, probabilities, name=model_name)


@register_model(nextvlad_model, sample="random", exclude=MIX_ONLY)
def nextvlad(num_classes: int, features: tuple, **hparams: Any) -> keras.Model:
    """NeXtVLAD + SE gating + logistic, one branch (Lin et al. 2018: 79M, 0.8785 GAP)."""
    return nextvlad_model(num_classes, features, False, "nextvlad", **hparams)


@register_model(nextvlad_model, sample="random", exclude=SINGLE_ONLY)
def mix_nextvlad(num_classes: int, features: tuple, **hparams: Any) -> keras.Model:
    """3 NeXtVLAD branches, gated mix, online distillation (2018 final: 236M, 0.8872 GAP)."""
    return nextvlad_model(num_classes, features, True, "mix_nextvlad", **hparams)
