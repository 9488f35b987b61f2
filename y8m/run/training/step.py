"""The training step `y8m train` runs, and `y8m bench train` times: forward, the official
cross-entropy plus the model's auxiliary and regularisation losses, backward, global-norm
clipping, Adam, per replica."""

from __future__ import annotations


def make_train_step(
    net,
    optimizer,
    strategy,
    *,
    clip_norm: float,
    jit_compile: bool = False,
    distill: dict | None = None,
):
    """`(inputs, labels[, extra]) -> mean label loss over replicas`, one optimizer update per
    call.

    `extra` is the batch's label weights with --segment_labels (only the weighted classes
    count) or, with `distill` (`{"weight": w, "temperature": T}`), its (B, C) teacher
    probabilities (frame_models.losses.distillation_cross_entropy). Models with auxiliary
    predictions (mix_nextvlad's branches) add their terms through frame_models.auxiliary; the
    loss returned is the output's label loss alone, comparable across models.
    """
    import tensorflow as tf

    from frame_models.auxiliary import TrainingView
    from frame_models.losses import (
        CrossEntropyLoss,
        distillation_cross_entropy,
        weighted_cross_entropy,
    )

    loss_fn = CrossEntropyLoss()
    view = TrainingView(net)
    replicas = int(strategy.num_replicas_in_sync)
    clip = float(clip_norm)

    def label_loss_for(labels, extra):
        if distill is not None:
            return lambda p: distillation_cross_entropy(labels, p, extra, **distill)
        if extra is not None:  # --segment_labels: only the rated classes count
            return lambda p: weighted_cross_entropy(labels, p, extra)
        return lambda p: loss_fn(labels, tf.cast(p, tf.float32))

    def replica_step(inputs, labels, extra=None):
        with tf.GradientTape() as tape:
            _, label_loss, loss = view(inputs, label_loss_for(labels, extra), training=True)
            reg = tf.add_n(net.losses) if net.losses else 0.0
            # The optimizer sums gradients over replicas: scale each replica's mean loss.
            loss = (loss + tf.cast(reg, tf.float32)) / replicas
            if hasattr(optimizer, "scale_loss"):
                loss = optimizer.scale_loss(loss)
        grads = tape.gradient(loss, net.trainable_variables)
        if clip > 0:
            grads, _ = tf.clip_by_global_norm(grads, clip)
        optimizer.apply(grads, net.trainable_variables)
        return label_loss

    replica_fn = tf.function(replica_step, jit_compile=bool(jit_compile), reduce_retracing=True)

    @tf.function(reduce_retracing=True)
    def step_fn(inputs, labels, *extra):
        per_replica = strategy.run(replica_fn, args=(inputs, labels, *extra))
        return strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica, axis=None)

    return step_fn
