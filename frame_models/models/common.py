"""Pieces every builder shares: model inputs with normalisation and masking, and the heads."""

from __future__ import annotations

import keras

from frame_models import options
from frame_models.layers import (
    GLU,
    ContextGating,
    FrameMask,
    JointL2Normalization,
    LogisticClassifier,
    MixtureOfExperts,
)

FUSIONS = ("late", "early")
GATINGS = ("cg", "glu")
CLASSIFIERS = ("moe", "logistic")
# Head options only one classifier uses; a variant fixed to the other excludes them.
MOE_ONLY = ("num_mixtures", "moe_l2")
LOGISTIC_ONLY = ("l2_penalty",)


def frame_inputs(features: tuple[options.Feature, ...]):
    """Frame-level inputs, the frame mask and the jointly L2-normalised streams.

    Args:
        features: the feature streams, in order.

    Returns:
        `(inputs, streams, mask)`: `inputs` maps each feature name to a (B, T, D) float input and
        `num_frames` to a (B,) int32 input; `streams` is the list of (B, T, D) frames, each frame
        L2-normalised over all streams together and zero on padding; `mask` is (B, T) boolean.
    """
    inputs = {f.name: keras.Input((None, f.size), name=f.name) for f in features}
    inputs["num_frames"] = keras.Input((), dtype="int32", name="num_frames")
    frames = [inputs[f.name] for f in features]
    mask = FrameMask(name="frame_mask")([inputs["num_frames"], frames[0]])
    streams = JointL2Normalization(name="l2_normalization")(frames, mask=mask)
    return inputs, streams, mask


def video_inputs(features: tuple[options.Feature, ...]):
    """Video-level inputs and their jointly L2-normalised streams.

    Returns:
        `(inputs, streams)`: `inputs` maps each feature name to a (B, D) float input; `streams`
        is the list of (B, D) vectors, L2-normalised over all streams together.
    """
    inputs = {f.name: keras.Input((f.size,), name=f.name) for f in features}
    streams = JointL2Normalization(name="l2_normalization")([inputs[f.name] for f in features])
    return inputs, streams


def fuse_early(streams: list, fusion: str) -> list:
    """The streams as they are (late fusion) or concatenated per frame into one (early)."""
    if fusion == "early" and len(streams) > 1:
        return [keras.layers.Concatenate(axis=-1, name="early_fusion")(streams)]
    return list(streams)


def gate(x, gating: str, gating_batch_norm: bool, name: str):
    """Context Gating (`gating="cg"`) or a same-size GLU (`"glu"`) on (B, n) `x`."""
    if gating == "glu":
        return GLU(name=f"{name}_glu")(x)
    return ContextGating(use_batch_norm=gating_batch_norm, name=f"{name}_gating")(x)


def classifier_head(
    x,
    num_classes: int,
    *,
    classifier: str = "moe",
    num_mixtures: int = 2,
    moe_l2: float = 1e-6,
    l2_penalty: float = 1e-8,
    gating_after_moe: bool = False,
    gating_batch_norm: bool = True,
    drop_rate: float = 0.0,
):
    """Video vector -> [dropout] -> classifier -> [Context Gating] -> float32 probabilities.

    Args:
        x: (B, n) video representation.
        num_classes: C.
        classifier: "moe" (MixtureOfExperts) or "logistic".
        num_mixtures: experts per class of the MoE.
        moe_l2: L2 penalty of the MoE kernels.
        l2_penalty: L2 penalty of the logistic kernel.
        gating_after_moe: Context Gating on the probabilities (thesis Figure 3-2).
        gating_batch_norm: batch norm on its gate logits instead of a bias.
        drop_rate: dropout rate on `x` in training, in [0, 1); 0 adds no layer, so models
            built before the option existed keep their layers.

    Returns:
        (B, C) float32 probabilities, also under a mixed-precision policy.

    Raises:
        ValueError: `drop_rate` outside [0, 1).
    """
    rate = dropout_rate("drop_rate", drop_rate)
    if rate:
        x = keras.layers.Dropout(rate, name="head_dropout")(x)
    if classifier == "moe":
        probabilities = MixtureOfExperts(num_classes, num_mixtures, moe_l2, name="moe")(x)
    else:
        probabilities = LogisticClassifier(num_classes, l2_penalty, name="logistic")(x)
    if gating_after_moe:
        probabilities = ContextGating(use_batch_norm=gating_batch_norm, name="output_gating")(
            probabilities
        )
    # A float32 identity layer casts float16 outputs back, the mixed-precision idiom.
    return keras.layers.Activation("linear", dtype="float32", name="probabilities")(probabilities)


def head_options(
    num_mixtures, moe_l2, l2_penalty, gating_after_moe, gating_batch_norm, drop_rate=0.0
) -> dict[str, object]:
    """The classifier_head keyword arguments from raw override values, checked.

    Raises:
        ValueError: a bad value, naming its option (`drop_rate` must be in [0, 1)).
    """
    return {
        "num_mixtures": options.positive_int("num_mixtures", num_mixtures),
        "moe_l2": options.non_negative_float("moe_l2", moe_l2),
        "l2_penalty": options.non_negative_float("l2_penalty", l2_penalty),
        "gating_after_moe": options.boolean("gating_after_moe", gating_after_moe),
        "gating_batch_norm": options.boolean("gating_batch_norm", gating_batch_norm),
        "drop_rate": dropout_rate("drop_rate", drop_rate),
    }


def dropout_rate(flag: str, value) -> float:
    """`value` as a float in [0, 1); ValueError naming `flag` otherwise."""
    rate = options.non_negative_float(flag, value)
    if rate >= 1.0:
        raise ValueError(f"--{flag} must be a number in [0, 1), received {value!r}")
    return rate
