"""A pre-LayerNorm Transformer encoder block over masked frames, and attention pooling.

Beyond the thesis (its chapter 3 pools with clusters or RNNs): the pieces of `transformer`.
"""

from __future__ import annotations

import keras
from keras import ops

from frame_models.layers.ops import zero_padding

# Added to the scores of padded frames before the softmax: exp underflows to exactly 0 in float32.
_MASKED_SCORE = -1e9


def _key_mask(mask):
    """(B, T) frame mask -> (B, T, S) attention mask: every query may attend to real keys only."""
    keys = ops.cast(mask, "bool")
    # (B, T, 1) & (B, 1, S): the (B, T, S) shape the MultiHeadAttention docs ask for.
    return ops.logical_and(ops.expand_dims(ops.ones_like(keys), 2), ops.expand_dims(keys, 1))


@keras.saving.register_keras_serializable(package="y8m")
class TransformerEncoderBlock(keras.layers.Layer):
    """One Transformer encoder block over a video's frames, pre-LayerNorm, padding masked.

    `h = x + Dropout(MHA(LN_1(x)))`, `y = h + Dropout(W_2 GELU(W_1 LN_2(h) + b_1) + b_2)`:
    multi-head self-attention then a position-wise feed-forward network, each inside a residual
    connection. The LayerNorm sits before each sub-layer (pre-LN), not after the residual sum as
    in Vaswani et al.: the residual path is then an identity from input to output, which trains
    stably without a learning-rate warm-up (Xiong et al. 2020), and the training code here has
    none (Adam on a staircase decay from the first step). A stack of pre-LN blocks wants one
    final LayerNorm, which the `transformer` builder adds. The feed-forward network uses the exact
    (erf) GELU of BERT and ViT rather than the paper's ReLU.

    Masking: padded frames are masked as keys, so no frame gives them attention weight, and their
    own rows are zeroed on input (NaN or inf garbage never reaches a product) and on output.
    LayerNorm works per frame, so real frames' outputs do not depend on the padding at all. A
    video without frames gives zeros. The layer adds no positional signal: `transformer` feeds it
    frames sampled with replacement, in no order.

    Args:
        model_size: D, size of the input frames and of the output (the residual stream).
        num_heads: attention heads; each has D / num_heads dimensions, so it must divide D.
        ff_size: hidden size of the feed-forward network.
        dropout: rate on the attention weights and on each sub-layer's output before the sum.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: (B, T, D) frames.
        mask: optional (B, T) boolean, True on real frames.
        training: dropout mode.

    Output shape:
        (B, T, D), zero on padded frames.

    Reference:
        Vaswani et al. 2017, section 3.1-3.3; Xiong et al. 2020, "On Layer Normalization in the
        Transformer Architecture" (pre-LN).
    """

    def __init__(
        self, model_size: int, num_heads: int, ff_size: int, dropout: float = 0.0, **kwargs
    ):
        super().__init__(**kwargs)
        for name, value in (("model_size", model_size), ("num_heads", num_heads)):
            if int(value) < 1:
                raise ValueError(f"{name} must be a positive integer, received {value!r}")
        if int(model_size) % int(num_heads):
            raise ValueError(
                f"num_heads must divide model_size, received {num_heads!r} and {model_size!r}"
            )
        if int(ff_size) < 1:
            raise ValueError(f"ff_size must be a positive integer, received {ff_size!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), received {dropout!r}")
        self.model_size = int(model_size)
        self.num_heads = int(num_heads)
        self.ff_size = int(ff_size)
        self.dropout = float(dropout)
        policy = self.dtype_policy
        # Keras' default epsilon (1e-3) would flatten frames whose variance is that small.
        self.attention_norm = keras.layers.LayerNormalization(
            epsilon=1e-6, name="attention_norm", dtype=policy
        )
        self.attention = keras.layers.MultiHeadAttention(
            self.num_heads,
            self.model_size // self.num_heads,
            dropout=self.dropout,
            name="attention",
            dtype=policy,
        )
        self.feed_forward_norm = keras.layers.LayerNormalization(
            epsilon=1e-6, name="feed_forward_norm", dtype=policy
        )
        self.feed_forward_hidden = keras.layers.Dense(
            self.ff_size, activation="gelu", name="feed_forward_hidden", dtype=policy
        )
        self.feed_forward_output = keras.layers.Dense(
            self.model_size, name="feed_forward_output", dtype=policy
        )
        self.residual_dropout = keras.layers.Dropout(
            self.dropout, name="residual_dropout", dtype=policy
        )

    def build(self, input_shape):
        if input_shape[-1] != self.model_size:
            raise ValueError(
                f"frames must have model_size={self.model_size} features, received shape "
                f"{tuple(input_shape)}"
            )
        self.attention_norm.build(input_shape)
        self.attention.build(input_shape, input_shape)
        self.feed_forward_norm.build(input_shape)
        self.feed_forward_hidden.build(input_shape)
        self.feed_forward_output.build(tuple(input_shape[:-1]) + (self.ff_size,))

    def call(self, inputs, mask=None, training=None):
        x = zero_padding(inputs, mask)
        attention_mask = None if mask is None else _key_mask(mask)
        h = self.attention_norm(x)
        h = self.attention(h, h, attention_mask=attention_mask, training=training)
        x = x + self.residual_dropout(h, training=training)
        h = self.feed_forward_output(self.feed_forward_hidden(self.feed_forward_norm(x)))
        x = x + self.residual_dropout(h, training=training)
        # Padded rows carry the biases by now; zero them so they look like the input padding.
        return zero_padding(x, mask)

    def compute_mask(self, inputs, mask=None):
        # Downstream layers get the frame mask explicitly, never implicitly.
        return None

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "model_size": self.model_size,
                "num_heads": self.num_heads,
                "ff_size": self.ff_size,
                "dropout": self.dropout,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="y8m")
class AttentionPooling(keras.layers.Layer):
    """Weighted sum of the real frames, the weights from learned queries: (B, T, D) -> video.

    Each head h has a learned query `q_h` (D,): it scores every frame, `s_{t,h} = x_t . q_h`,
    the scores become weights by a softmax over the real frames only, `a_{t,h} =
    exp(s_{t,h}) / sum_{real u} exp(s_{u,h})`, and the head outputs `sum_t a_{t,h} x_t`. The
    heads are concatenated head-major (index h * D + d). The queries start at zero, so the layer
    starts as the masked average of the frames (`MaskedAverage`) and learns which frames to
    favour. No bias: a per-head constant cancels in the softmax. The softmax runs in float32,
    where the masked scores' exponentials are exactly zero; a video without frames gets zero
    weights everywhere, hence a zero output with finite gradients.

    Args:
        num_heads: number of learned queries.
        query_initializer: initializer of the (D, num_heads) queries ("zeros").
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: (B, T, D) frames.
        mask: optional (B, T) boolean, True on real frames.

    Output shape:
        (B, num_heads * D).

    Reference:
        A linear-score variant of the multi-hop attention of Lin et al. 2017 ("A Structured
        Self-attentive Sentence Embedding", whose scores pass a tanh layer first) and of the
        attention units of Long et al. 2018 ("Attention Clusters", video classification).
    """

    def __init__(self, num_heads: int = 1, query_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        if int(num_heads) < 1:
            raise ValueError(f"num_heads must be a positive integer, received {num_heads!r}")
        self.num_heads = int(num_heads)
        self.query_initializer = keras.initializers.get(query_initializer)

    def build(self, input_shape):
        self.feature_size = input_shape[-1]
        self.queries = self.add_weight(
            name="queries",
            shape=(self.feature_size, self.num_heads),
            initializer=self.query_initializer,
        )

    def call(self, inputs, mask=None):
        x = zero_padding(inputs, mask)
        x32 = ops.cast(x, "float32")
        scores = ops.matmul(x32, ops.cast(self.queries, "float32"))  # (B, T, heads)
        if mask is not None:
            real = ops.expand_dims(ops.cast(mask, "bool"), -1)  # (B, T, 1)
            scores = ops.where(real, scores, _MASKED_SCORE)
        weights = ops.softmax(scores, axis=1)
        if mask is not None:
            # Without real frames the softmax is uniform over padding; the mask makes it zero.
            weights = weights * ops.cast(real, "float32")
        pooled = ops.einsum("bth,btd->bhd", weights, x32)  # (B, heads, D)
        pooled = ops.reshape(pooled, (-1, self.num_heads * self.feature_size))
        return ops.cast(pooled, x.dtype)

    def compute_mask(self, inputs, mask=None):
        # The mask is consumed here; downstream layers get it explicitly, never implicitly.
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_heads * input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "query_initializer": keras.initializers.serialize(self.query_initializer),
            }
        )
        return config
