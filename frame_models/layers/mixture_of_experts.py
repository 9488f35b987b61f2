"""MixtureOfExperts: the starter code's per-class mixture of logistic experts."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="y8m")
class MixtureOfExperts(keras.layers.Layer):
    """Per-class probabilities from `num_mixtures` logistic experts and a softmax gate.

    For class c: `p_c = sum_{m<M} g_{c,m} sigmoid(x E_{c,m} + e_{c,m})` with
    `g_c = softmax(x G_c)` over M + 1 gates; the extra gate belongs to a "dummy" expert that
    always predicts 0, so a class can be switched off. Gates have no bias. Kernels are Glorot
    uniform (slim's default) with an L2 penalty `l2_penalty * sum(w^2) / 2` as slim's
    `l2_regularizer` defines it.

    Args:
        num_classes: C.
        num_mixtures: M, experts per class, not counting the dummy expert.
        l2_penalty: weight decay on both kernels.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: (B, n).

    Output shape:
        (B, C) probabilities in [0, 1].

    Reference:
        Abu-El-Haija et al. 2016; yt8m_facts.md 4.2.
    """

    def __init__(self, num_classes: int, num_mixtures: int = 2, l2_penalty: float = 1e-8, **kwargs):
        super().__init__(**kwargs)
        if int(num_classes) < 1 or int(num_mixtures) < 1:
            raise ValueError(
                "num_classes and num_mixtures must be positive integers, received "
                f"{num_classes!r} and {num_mixtures!r}"
            )
        self.num_classes = int(num_classes)
        self.num_mixtures = int(num_mixtures)
        self.l2_penalty = float(l2_penalty)

    def build(self, input_shape):
        size = input_shape[-1]
        # slim's l2_regularizer(scale) is scale * sum(w^2) / 2; keras' L2(l) is l * sum(w^2).
        regularizer = keras.regularizers.L2(self.l2_penalty / 2) if self.l2_penalty else None
        self.gating_kernel = self.add_weight(
            name="gating_kernel",
            shape=(size, self.num_classes * (self.num_mixtures + 1)),
            regularizer=regularizer,
        )
        self.expert_kernel = self.add_weight(
            name="expert_kernel",
            shape=(size, self.num_classes * self.num_mixtures),
            regularizer=regularizer,
        )
        self.expert_bias = self.add_weight(
            name="expert_bias", shape=(self.num_classes * self.num_mixtures,), initializer="zeros"
        )

    def call(self, inputs):
        gates = ops.matmul(inputs, self.gating_kernel)
        gates = ops.softmax(ops.reshape(gates, (-1, self.num_classes, self.num_mixtures + 1)))
        experts = ops.matmul(inputs, self.expert_kernel) + self.expert_bias
        experts = ops.sigmoid(ops.reshape(experts, (-1, self.num_classes, self.num_mixtures)))
        return ops.sum(gates[..., : self.num_mixtures] * experts, axis=-1)  # (B, C)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "num_mixtures": self.num_mixtures,
                "l2_penalty": self.l2_penalty,
            }
        )
        return config
