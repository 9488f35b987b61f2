"""OnlineDistillation: a gated mixture of branch logits that knows its distillation loss."""

from __future__ import annotations

import keras
from keras import ops

# Inside the logarithms of the KL term, as the reference writes it.
_KL_EPSILON = 1e-8


@keras.saving.register_keras_serializable(package="y8m")
class OnlineDistillation(keras.layers.Layer):
    """Mixes M branches' logits with a per-video gate; each branch learns from the mixture.

    Call: `z_e = sum_m a_m z_m` (logits are mixed, not probabilities). Training adds, through
    `frame_models.auxiliary`, each branch's own label loss and the "rank soft target" term of
    `distillation_loss`: `weight * mean_b sum_m KL(softmax(z_e / T) || softmax(z_m / T))`, the
    softmax over classes. As in the reference there is no stop-gradient (the mixture and its
    gate learn from the term too) and no automatic T^2: the reference sets `weight = T^2` by
    hand (T 3, weight 9).

    Args:
        temperature: T of the softened distributions.
        weight: the term's weight (the reference's `cl_lambda`).
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: `[gate, z_1, ..., z_M]`: gate (B, M) mixture weights (a softmax), z_m (B, C).

    Output shape:
        (B, C) mixture logits.

    Reference:
        winners_facts.md section 2; Lin et al. 2018 (NeXtVLAD) section 3.4.
    """

    def __init__(self, temperature: float = 3.0, weight: float = 9.0, **kwargs):
        super().__init__(**kwargs)
        if not float(temperature) > 0:
            raise ValueError(f"temperature must be > 0, received {temperature!r}")
        if not float(weight) >= 0:
            raise ValueError(f"weight must be >= 0, received {weight!r}")
        self.temperature = float(temperature)
        self.weight = float(weight)

    def call(self, inputs):
        gate, *branches = inputs
        stacked = ops.stack(branches, axis=1)  # (B, M, C)
        return ops.sum(stacked * ops.expand_dims(ops.cast(gate, stacked.dtype), -1), axis=1)

    def distillation_loss(self, mixture_logits, branch_logits):
        """`weight * mean_b sum_m KL_m` in float32 (scalar), see the class docstring."""
        t = self.temperature
        p_e = ops.softmax(ops.cast(mixture_logits, "float32") / t, axis=-1)
        log_e = ops.log(p_e + _KL_EPSILON)
        total = 0.0
        for z_m in branch_logits:
            p_m = ops.softmax(ops.cast(z_m, "float32") / t, axis=-1)
            total = total + ops.sum(p_e * (log_e - ops.log(p_m + _KL_EPSILON)), axis=-1)
        return self.weight * ops.mean(total)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[1])

    def get_config(self):
        config = super().get_config()
        config.update({"temperature": self.temperature, "weight": self.weight})
        return config
