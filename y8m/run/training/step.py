"""The training step `y8m train` runs, and `y8m bench train` times: forward, the official
cross-entropy plus regularisation losses, backward, global-norm clipping, Adam, per replica."""

from __future__ import annotations


def make_train_step(net, optimizer, strategy, *, clip_norm: float, jit_compile: bool = False):
    """`(inputs, labels[, label_weights]) -> mean label loss over replicas`, one optimizer
    update per call; with label weights only the weighted classes count (segment labels)."""
    import tensorflow as tf

    from frame_models.losses import CrossEntropyLoss, weighted_cross_entropy

    loss_fn = CrossEntropyLoss()
    replicas = int(strategy.num_replicas_in_sync)
    clip = float(clip_norm)

    def replica_step(inputs, labels, label_weights=None):
        with tf.GradientTape() as tape:
            predictions = tf.cast(net(inputs, training=True), tf.float32)
            if label_weights is None:
                label_loss = loss_fn(labels, predictions)
            else:  # --segment_labels: only the rated classes count
                label_loss = weighted_cross_entropy(labels, predictions, label_weights)
            reg = tf.add_n(net.losses) if net.losses else 0.0
            # The optimizer sums gradients over replicas: scale each replica's mean loss.
            loss = (label_loss + tf.cast(reg, tf.float32)) / replicas
            if hasattr(optimizer, "scale_loss"):
                loss = optimizer.scale_loss(loss)
        grads = tape.gradient(loss, net.trainable_variables)
        if clip > 0:
            grads, _ = tf.clip_by_global_norm(grads, clip)
        optimizer.apply(grads, net.trainable_variables)
        return label_loss

    replica_fn = tf.function(replica_step, jit_compile=bool(jit_compile), reduce_retracing=True)

    @tf.function(reduce_retracing=True)
    def step_fn(inputs, labels, *label_weights):
        per_replica = strategy.run(replica_fn, args=(inputs, labels, *label_weights))
        return strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica, axis=None)

    return step_fn
