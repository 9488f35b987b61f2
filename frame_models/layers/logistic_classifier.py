"""LogisticClassifier: one dense layer with a sigmoid per class."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="y8m")
class LogisticClassifier(keras.layers.Layer):
    """Independent logistic regressions: `p = sigmoid(x W + b)`.

    The starter code's LogisticModel: Glorot-uniform kernel with an L2 penalty
    `l2_penalty * sum(w^2) / 2` (slim's `l2_regularizer`), zero bias.

    Args:
        num_classes: C.
        l2_penalty: weight decay on the kernel.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: (B, n).

    Output shape:
        (B, C) probabilities in [0, 1].

    Reference:
        yt8m_facts.md 4.2.
    """

    def __init__(self, num_classes: int, l2_penalty: float = 1e-8, **kwargs):
        super().__init__(**kwargs)
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be a positive integer, received {num_classes!r}")
        self.num_classes = int(num_classes)
        self.l2_penalty = float(l2_penalty)

    def build(self, input_shape):
        # slim's l2_regularizer(scale) is scale * sum(w^2) / 2; keras' L2(l) is l * sum(w^2).
        regularizer = keras.regularizers.L2(self.l2_penalty / 2) if self.l2_penalty else None
        self.kernel = self.add_weight(
            name="kernel", shape=(input_shape[-1], self.num_classes), regularizer=regularizer
        )
        self.bias = self.add_weight(name="bias", shape=(self.num_classes,), initializer="zeros")

    def call(self, inputs):
        return ops.sigmoid(ops.matmul(inputs, self.kernel) + self.bias)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update({"num_classes": self.num_classes, "l2_penalty": self.l2_penalty})
        return config
