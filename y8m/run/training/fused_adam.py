"""Keras' Adam with each dense update compiled by XLA into one loop over the elements.

Keras 3 writes Adam's update as a dozen element-wise TensorFlow ops per variable (subtract,
multiply, assign_add, square, sqrt, divide, ...); each is its own pass over memory, with a
temporary the size of the variable. gated_netvlad's 321M float32 weights (1.3 GB) make that
0.87 s a step on the project's CPU; the same arithmetic compiled as one XLA loop per variable
reads w, m, v and g once and writes w, m and v once: 0.29 s (`docs/performance.md`, "Training
throughput"). Only the update is compiled; the model's step is not.

The arithmetic is Keras' own, term for term, with its constants (1 - beta is formed in double,
as Keras does, then rounded once):

    alpha = lr * sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
    m += (g - m) * (1 - beta_1);  v += (g * g - v) * (1 - beta_2)
    w -= m * alpha / (sqrt(v) + epsilon)

so weights and slots equal `keras.optimizers.Adam`'s to float rounding (tests at 1e-6), and
the slot variables, their names and so checkpoints are Keras' (a run started with either
resumes with the other). TensorFlow's own fused kernel (`ResourceApplyAdam`) was not used: it
forms 1 - beta in float32, which moves v by 1.3e-5 relative at beta_2 = 0.999. Sparse
gradients (`tf.IndexedSlices`) and amsgrad take Keras' path unchanged, as do weight decay,
EMA and loss scaling, which the base optimizer applies around this step.
"""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="y8m")
class FusedAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam`, same arguments and state, one fused loop per dense update."""

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad or isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        index = self._get_variable_index(variable)
        _fused_update(
            _handle(variable),
            _handle(self._momentums[index]),
            _handle(self._velocities[index]),
            tf.cast(gradient, dtype),
            tf.cast(learning_rate, dtype),
            tf.cast(self.iterations + 1, dtype),
            # 1 - beta in double, then rounded, as Keras does.
            tf.constant([self.beta_1, self.beta_2, 1 - self.beta_1, 1 - self.beta_2], dtype),
            tf.cast(self.epsilon, dtype),
        )


@tf.function(jit_compile=True, reduce_retracing=True)
def _fused_update(var, m, v, grad, lr, local_step, betas, epsilon):
    """Keras' Adam on resource handles, compiled by XLA into one loop over the elements."""
    dtype = grad.dtype
    beta_1, beta_2, one_minus_beta_1, one_minus_beta_2 = tf.unstack(betas)
    alpha = lr * tf.sqrt(1 - tf.pow(beta_2, local_step)) / (1 - tf.pow(beta_1, local_step))
    m_old, v_old = _read(m, dtype), _read(v, dtype)
    m_new = m_old + (grad - m_old) * one_minus_beta_1
    v_new = v_old + (tf.square(grad) - v_old) * one_minus_beta_2
    tf.raw_ops.AssignVariableOp(resource=m, value=m_new)
    tf.raw_ops.AssignVariableOp(resource=v, value=v_new)
    update = (m_new * alpha) / (tf.sqrt(v_new) + epsilon)
    tf.raw_ops.AssignSubVariableOp(resource=var, value=update)


def _read(handle, dtype):
    return tf.raw_ops.ReadVariableOp(resource=handle, dtype=dtype)


def _handle(variable):
    # The slots are Keras variables holding a tf.Variable; the weight comes as the tf.Variable
    # itself. Under a strategy it is a distributed one, whose handle is the local copy's inside
    # the strategy's update call, where this runs.
    if isinstance(variable, keras.Variable):
        variable = variable.value
    return variable.handle
