"""l2_normalize: finite values and gradients for zero vectors, float16 safe."""

import numpy as np
import tensorflow as tf

from frame_models.layers.ops import l2_normalize


def test_normalises_and_keeps_zero_vectors():
    x = np.array([[3.0, 4.0], [0.0, 0.0]], "float32")
    np.testing.assert_allclose(np.asarray(l2_normalize(x)), [[0.6, 0.8], [0.0, 0.0]], atol=1e-7)


def test_zero_vector_gradient_is_finite():
    x = tf.zeros((2, 3))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(l2_normalize(x) * tf.constant([1.0, 2.0, 3.0]))
    assert np.all(np.isfinite(tape.gradient(y, x).numpy()))


def test_float16_keeps_dtype_and_stays_finite():
    x = np.array([[1e-3, 0.0], [0.0, 0.0]], "float16")
    out = l2_normalize(tf.constant(x))
    assert out.dtype == tf.float16
    np.testing.assert_allclose(np.asarray(out, np.float32), [[1.0, 0.0], [0.0, 0.0]], atol=1e-3)
