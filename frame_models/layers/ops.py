"""Small `keras.ops` helpers shared by the layers: safe L2 normalisation and frame masks."""

from __future__ import annotations

from keras import ops

# Norms below sqrt(L2_EPSILON) are treated as zero vectors (they stay zero, with zero gradient),
# the same guard as tf.math.l2_normalize.
L2_EPSILON = 1e-12


def l2_normalize(x, axis: int = -1, epsilon: float = L2_EPSILON):
    """`x / max(||x||_2, sqrt(epsilon))` along `axis`, computed in float32.

    Unlike `x / norm(x)` this is finite, with a finite gradient, for all-zero vectors (padded
    frames, videos with no frames). The float32 detour keeps `epsilon` from underflowing under a
    float16 policy.

    Args:
        x: float tensor of any shape.
        axis: the axis to normalise over.
        epsilon: lower bound on the squared norm.

    Returns:
        A tensor of the same shape and dtype as `x`.
    """
    dtype = x.dtype
    x32 = ops.cast(x, "float32")
    squared_norm = ops.sum(ops.square(x32), axis=axis, keepdims=True)
    return ops.cast(x32 * ops.rsqrt(ops.maximum(squared_norm, epsilon)), dtype)


def zero_padding(x, mask):
    """Rows of `x` where `mask` is False replaced by exact zeros (also NaN or inf garbage).

    Args:
        x: (B, T, D) frames.
        mask: (B, T) boolean, True on real frames, or None (all real).

    Returns:
        (B, T, D) frames, zero on padding.
    """
    if mask is None:
        return x
    return ops.where(ops.expand_dims(ops.cast(mask, "bool"), -1), x, ops.zeros_like(x))


def float_mask(mask, x):
    """The (B, T) boolean mask as a (B, T, 1) tensor of `x`'s dtype (all ones when None)."""
    if mask is None:
        return ops.ones_like(x[..., :1])
    return ops.expand_dims(ops.cast(mask, x.dtype), -1)
