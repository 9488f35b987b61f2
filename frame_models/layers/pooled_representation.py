"""PooledRepresentation: pooled streams -> hidden FC -> batch norm -> optional gating."""

from __future__ import annotations

import keras
from keras import ops

from frame_models.layers.context_gating import ContextGating
from frame_models.layers.glu import GLU

GATINGS = ("cg", "glu")


@keras.saving.register_keras_serializable(package="y8m")
class PooledRepresentation(keras.layers.Layer):
    """The thesis's pooling-module tail (Figure 3-2): one compact video vector from the streams.

    Concatenates the pooled streams (late fusion), projects them to `hidden_size` with a linear
    layer, batch-normalises (else adds a bias) and optionally gates the result with Context
    Gating (`gating="cg"`) or a GLU of the same size (`gating="glu"`, Table 3.3).

    Args:
        hidden_size: H, size of the pooled representation (1024 in the thesis).
        use_batch_norm: batch norm after the projection instead of a bias.
        gating: None, "cg" or "glu".
        gating_batch_norm: batch norm on the Context Gating logits instead of a bias.
        kernel_initializer: initializer of the projection (the builders use N(0, 1/sqrt(K)) as
            the reference code does for K clusters).
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: a (B, n) tensor or a list of (B, n_s) tensors.
        training: batch norm mode.

    Output shape:
        (B, H).

    Reference:
        Miech et al. 2017, section 3.3 and Figure 3-2; yt8m_facts.md 5.3, 5.5.
    """

    def __init__(
        self,
        hidden_size: int,
        use_batch_norm: bool = True,
        gating: str | None = "cg",
        gating_batch_norm: bool = True,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(hidden_size) < 1:
            raise ValueError(f"hidden_size must be a positive integer, received {hidden_size!r}")
        if gating is not None and gating not in GATINGS:
            raise ValueError(f"gating must be None or one of {GATINGS}, received {gating!r}")
        self.hidden_size = int(hidden_size)
        self.use_batch_norm = bool(use_batch_norm)
        self.gating = gating
        self.gating_batch_norm = bool(gating_batch_norm)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.hidden_bn = (
            keras.layers.BatchNormalization(name="hidden_bn", dtype=self.dtype_policy)
            if self.use_batch_norm
            else None
        )
        if gating == "cg":
            self.gate = ContextGating(
                use_batch_norm=self.gating_batch_norm,
                name="context_gating",
                dtype=self.dtype_policy,
            )
        elif gating == "glu":
            self.gate = GLU(name="glu", dtype=self.dtype_policy)
        else:
            self.gate = None

    def build(self, inputs_shape):
        shapes = list(inputs_shape) if _is_shape_list(inputs_shape) else [inputs_shape]
        input_size = sum(s[-1] for s in shapes)
        self.kernel = self.add_weight(
            name="kernel", shape=(input_size, self.hidden_size), initializer=self.kernel_initializer
        )
        hidden_shape = (shapes[0][0], self.hidden_size)
        if self.use_batch_norm:
            self.hidden_bn.build(hidden_shape)
            self.bias = None
        else:
            self.bias = self.add_weight(name="bias", shape=(self.hidden_size,), initializer="zeros")
        if self.gate is not None:
            self.gate.build(hidden_shape)

    def call(self, inputs, training=None):
        x = ops.concatenate(inputs, axis=-1) if isinstance(inputs, list) else inputs
        h = ops.matmul(x, self.kernel)  # (B, H)
        h = self.hidden_bn(h, training=training) if self.use_batch_norm else h + self.bias
        if self.gating == "cg":
            h = self.gate(h, training=training)
        elif self.gating == "glu":
            h = self.gate(h)
        return h

    def compute_output_shape(self, inputs_shape):
        first = inputs_shape[0] if _is_shape_list(inputs_shape) else inputs_shape
        return (first[0], self.hidden_size)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_size": self.hidden_size,
                "use_batch_norm": self.use_batch_norm,
                "gating": self.gating,
                "gating_batch_norm": self.gating_batch_norm,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config


def _is_shape_list(shape) -> bool:
    """Whether `shape` holds several input shapes: a saved model's JSON turns one shape
    `(None, n)` into the list `[None, n]`, so the type alone does not tell."""
    return isinstance(shape, (list, tuple)) and bool(shape) and isinstance(shape[0], (list, tuple))
