"""The starter code's multi-label cross-entropy, as a serialisable Keras loss."""

from __future__ import annotations

import keras
from keras import ops


def per_class_cross_entropy(y_true, y_pred, epsilon: float = 1e-5):
    """(B, C) `-[y log(p + eps) + (1 - y) log(1 - p + eps)]` in float32."""
    y_pred = ops.cast(y_pred, "float32")
    y_true = ops.cast(y_true, "float32")
    return -(y_true * ops.log(y_pred + epsilon) + (1.0 - y_true) * ops.log(1.0 - y_pred + epsilon))


def weighted_cross_entropy(y_true, y_pred, label_weights, epsilon: float = 1e-5):
    """The official segment reader's loss: each class's cross-entropy times its label weight
    (1 for the rated classes of a segment, 0 for the rest), summed over classes, mean over the
    batch. Unrated classes get no gradient."""
    weighted = per_class_cross_entropy(y_true, y_pred, epsilon) * ops.cast(label_weights, "float32")
    return ops.mean(ops.sum(weighted, axis=-1))


@keras.saving.register_keras_serializable(package="y8m")
class CrossEntropyLoss(keras.losses.Loss):
    """`-[y log(p + eps) + (1 - y) log(1 - p + eps)]`, summed over classes, mean over videos.

    The official `CrossEntropyLoss` on probabilities; `epsilon` (1e-5 there) keeps the logs
    finite for saturated outputs. Computed in float32 whatever the model's policy.

    Args:
        epsilon: added inside both logarithms.
        name: loss name.
        reduction: Keras reduction over the batch; the default averages the per-video sums.
        dtype: computation dtype of the loss (default float32).

    Call arguments:
        y_true: (B, C) multi-hot labels.
        y_pred: (B, C) probabilities.

    Reference:
        yt8m_facts.md 4.5.
    """

    def __init__(
        self,
        epsilon: float = 1e-5,
        name: str = "cross_entropy",
        reduction: str = "sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.epsilon = float(epsilon)

    def call(self, y_true, y_pred):
        return ops.sum(per_class_cross_entropy(y_true, y_pred, self.epsilon), axis=-1)  # (B,)

    def get_config(self):
        config = super().get_config()
        config.update({"epsilon": self.epsilon})
        return config


def distillation_cross_entropy(
    y_true, y_pred, teacher, weight: float = 0.5, temperature: float = 1.0, epsilon: float = 1e-5
):
    """Offline distillation: `mean_b sum_c [w T^2 BCE(q_T, p_T) + (1 - w) BCE(y, p)]`.

    `q` are a teacher's per-class probabilities (an ensemble's predictions), `p` the student's.
    At T = 1 this is the 2018 winner's MixedCrossEntropyLoss (winners_facts.md section 3), the
    cross-entropy against the mixed target `w q + (1 - w) y`. At T > 1 both sides are softened
    per class, `sigmoid(logit(.) / T)`, and the term is scaled by T^2 so its gradient keeps its
    size (Hinton et al. 2015).

    Args:
        y_true: (B, C) multi-hot labels.
        y_pred: (B, C) student probabilities.
        teacher: (B, C) teacher probabilities (0 outside the teacher's stored top-K).
        weight: w, the teacher's share.
        temperature: T > 0.
        epsilon: added inside the logarithms.

    Returns:
        Scalar float32 loss.
    """
    hard = ops.sum(per_class_cross_entropy(y_true, y_pred, epsilon), axis=-1)
    if temperature == 1.0:
        soft = ops.sum(per_class_cross_entropy(teacher, y_pred, epsilon), axis=-1)
    else:
        soft_student, soft_teacher = (_softened(p, temperature, epsilon) for p in (y_pred, teacher))
        soft = temperature**2 * ops.sum(
            per_class_cross_entropy(soft_teacher, soft_student, epsilon), axis=-1
        )
    return ops.mean(weight * soft + (1.0 - weight) * hard)


def _softened(probabilities, temperature: float, epsilon: float):
    p = ops.cast(probabilities, "float32")
    logits = ops.log(p + epsilon) - ops.log(1.0 - p + epsilon)
    return ops.sigmoid(logits / temperature)
