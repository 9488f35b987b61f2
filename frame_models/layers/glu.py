"""GLU: gated linear unit `sigmoid(W1 x + b1) * (W2 x + b2)`."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="y8m")
class GLU(keras.layers.Layer):
    """Gated Linear Unit (Dauphin et al. 2016): `sigmoid(W1 x + b1) * (W2 x + b2)`.

    The alternative to Context Gating in the thesis's ablation (Table 3.3): two weight sets, and
    it gates a linear transform of the input rather than the input itself. Weights are Glorot
    uniform, biases zero.

    Args:
        units: output size; None keeps the input size.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: (B, n).

    Output shape:
        (B, units).

    Reference:
        Miech et al. 2017, section 3.3.1 and Table 3.3.
    """

    def __init__(self, units: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if units is not None and int(units) < 1:
            raise ValueError(f"units must be a positive integer or None, received {units!r}")
        self.units = None if units is None else int(units)

    def _output_size(self, input_shape):
        return input_shape[-1] if self.units is None else self.units

    def build(self, input_shape):
        shape = (input_shape[-1], self._output_size(input_shape))
        self.gate_kernel = self.add_weight(name="gate_kernel", shape=shape)
        self.gate_bias = self.add_weight(name="gate_bias", shape=shape[1:], initializer="zeros")
        self.linear_kernel = self.add_weight(name="linear_kernel", shape=shape)
        self.linear_bias = self.add_weight(name="linear_bias", shape=shape[1:], initializer="zeros")

    def call(self, inputs):
        gates = ops.sigmoid(ops.matmul(inputs, self.gate_kernel) + self.gate_bias)
        return gates * (ops.matmul(inputs, self.linear_kernel) + self.linear_bias)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self._output_size(input_shape))

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units})
        return config
