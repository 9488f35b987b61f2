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
