"""SEGating: squeeze-and-excitation context gating with a bottleneck, as NeXtVLAD uses it."""

from __future__ import annotations

import keras
from keras import ops

from frame_models.layers.nextvlad import variance_scaling


@keras.saving.register_keras_serializable(package="y8m")
class SEGating(keras.layers.Layer):
    """SE context gating: `y = z * sigmoid(W2 ReLU(BN(W1 z)))`.

    A cheaper Context Gating: the gate goes through a bottleneck of H / r units, so it costs
    `2 H^2 / r` weights instead of `H^2` (paper eq. 10). `W1` (H, H // r) and `W2` (H // r, H)
    have no biases (the batch norm's offset serves the first) and are drawn from slim's
    variance-scaling default (factor 2, fan_in, truncated normal).

    Args:
        reduction: r, the bottleneck's reduction factor; H // r must be at least 1.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: (B, H).
        training: batch norm mode.

    Output shape:
        (B, H), same as the input.

    Reference:
        Lin et al. 2018 (NeXtVLAD), section 3.3 and eq. 10; Hu et al. 2018 (SENet);
        winners_facts.md 1.3.
    """

    def __init__(self, reduction: int = 8, **kwargs):
        super().__init__(**kwargs)
        try:
            if isinstance(reduction, bool) or int(reduction) != reduction or int(reduction) < 1:
                raise ValueError
        except (TypeError, ValueError):
            raise ValueError(
                f"reduction must be a positive integer, received {reduction!r}"
            ) from None
        self.reduction = int(reduction)
        self.gating_bn = keras.layers.BatchNormalization(name="gating_bn", dtype=self.dtype_policy)

    def build(self, input_shape):
        size = input_shape[-1]
        bottleneck = size // self.reduction
        if bottleneck < 1:
            raise ValueError(
                f"reduction ({self.reduction}) must be at most the input size ({size})"
            )
        self.gating_weights_1 = self.add_weight(
            name="gating_weights_1", shape=(size, bottleneck), initializer=variance_scaling()
        )
        self.gating_weights_2 = self.add_weight(
            name="gating_weights_2", shape=(bottleneck, size), initializer=variance_scaling()
        )
        self.gating_bn.build((input_shape[0], bottleneck))

    def call(self, inputs, training=None):
        gates = self.gating_bn(ops.matmul(inputs, self.gating_weights_1), training=training)
        gates = ops.matmul(ops.relu(gates), self.gating_weights_2)  # (B, H)
        return inputs * ops.sigmoid(gates)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"reduction": self.reduction})
        return config
