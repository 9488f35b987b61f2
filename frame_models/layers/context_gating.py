"""ContextGating: self-gating `sigmoid(W x + b) * x` that re-weights each input dimension."""

from __future__ import annotations

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="y8m")
class ContextGating(keras.layers.Layer):
    """Context Gating: `y = sigmoid(W x + b) * x` (thesis eq. 3.1).

    The gates in [0, 1] let each dimension be damped given all the others: after pooling it
    re-weights features, after the classifier it models dependencies between class scores. With
    `use_batch_norm` (the reference code's default) the gate logits are batch-normalised instead
    of getting the bias `b`. `W` (n, n) ~ N(0, 1/sqrt(n)).

    Args:
        use_batch_norm: batch norm on the gate logits instead of a bias.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: (B, n).
        training: batch norm mode.

    Output shape:
        (B, n), same as the input.

    Reference:
        Miech et al. 2017, eq. 3.1; yt8m_facts.md 6.5.
    """

    def __init__(self, use_batch_norm: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.use_batch_norm = bool(use_batch_norm)
        self.gates_bn = (
            keras.layers.BatchNormalization(name="gates_bn", dtype=self.dtype_policy)
            if self.use_batch_norm
            else None
        )

    def build(self, input_shape):
        size = input_shape[-1]
        self.gating_weights = self.add_weight(
            name="gating_weights",
            shape=(size, size),
            initializer=keras.initializers.RandomNormal(stddev=1.0 / math.sqrt(size)),
        )
        if self.use_batch_norm:
            self.gates_bn.build(input_shape)
            self.gating_biases = None
        else:
            self.gating_biases = self.add_weight(
                name="gating_biases", shape=(size,), initializer="zeros"
            )

    def call(self, inputs, training=None):
        gates = ops.matmul(inputs, self.gating_weights)
        if self.use_batch_norm:
            gates = self.gates_bn(gates, training=training)
        else:
            gates = gates + self.gating_biases
        return ops.sigmoid(gates) * inputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"use_batch_norm": self.use_batch_norm})
        return config
