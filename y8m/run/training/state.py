"""Training state: the model, Adam with the staircase schedule, and the resumable checkpoint.

The checkpoint (`tf.train.Checkpoint` of model and optimizer, step = optimizer.iterations,
kept by `tf.train.CheckpointManager`) is what makes re-running the same command resume.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

from y8m.errors import UsageError
from y8m.run import distribute, rundir


@contextlib.contextmanager
def kept_policy():
    """Restores the caller's Keras dtype policy afterwards: --mixed_precision must not leak
    into the models a caller builds later."""
    import keras

    policy = keras.mixed_precision.global_policy()
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(policy)


def use_mixed_precision() -> None:
    """bfloat16 compute on CPUs, float16 on GPUs (with loss scaling), float32 weights.

    Called after the distribution strategy exists: listing devices starts TensorFlow's runtime.
    """
    import keras
    import tensorflow as tf

    gpu = bool(tf.config.list_physical_devices("GPU"))
    keras.mixed_precision.set_global_policy("mixed_float16" if gpu else "mixed_bfloat16")


def make_optimizer(train: dict, global_batch: int, fused: bool = True):
    """Adam at `base * decay ** floor(examples / decay_examples)`; returns (optimizer, schedule).

    The decay counts global examples, so N replicas decay N times faster per step. `fused`
    updates each weight in one XLA-compiled loop (`FusedAdam`: Keras' Adam, the same results
    and checkpoints); False is `keras.optimizers.Adam` itself, which
    `y8m bench train` times against it.
    """
    import keras

    from y8m.run.training.fused_adam import FusedAdam

    decay_steps = max(int(train["learning_rate_decay_examples"]) / global_batch, 1.0)
    schedule = keras.optimizers.schedules.ExponentialDecay(
        float(train["base_learning_rate"]),
        decay_steps,
        float(train["learning_rate_decay"]),
        staircase=True,
    )
    ema = float(train.get("ema_decay", 0.0))
    # Keras' own EMA: the average is updated inside `apply`, kept in the optimizer's variables
    # (so checkpoints carry it) and never overwrites the trained weights.
    adam = FusedAdam if fused else keras.optimizers.Adam
    optimizer = adam(learning_rate=schedule, use_ema=ema > 0, ema_momentum=ema if ema > 0 else 0.99)
    if keras.mixed_precision.global_policy().name == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer, schedule


@dataclasses.dataclass
class TrainState:
    """What a step changes and a checkpoint keeps."""

    net: Any
    optimizer: Any
    schedule: Any
    checkpoint: Any
    manager: Any
    checkpoint_dir: str
    chief: bool

    @property
    def step(self) -> int:
        return int(self.optimizer.iterations.numpy())

    def save(self) -> None:
        """Saves the current step (once: a step already saved is not written again)."""
        latest = self.manager.latest_checkpoint
        if latest is None or not latest.endswith(f"-{self.step}"):
            self.manager.save(checkpoint_number=self.step)


def build_state(config: dict, strategy, train_dir: str, chief: bool, max_model_mb=None):
    """Model and optimizer under the strategy's scope, and their checkpoint manager."""
    import tensorflow as tf

    global_batch = int(config["train"]["global_batch_size"])
    with strategy.scope():
        net = rundir.build_model(config)
        optimizer, schedule = make_optimizer(config["train"], global_batch)
        optimizer.build(net.trainable_variables)
        checkpoint = tf.train.Checkpoint(model=net, optimizer=optimizer)
    size_mb = net.count_params() * 4 / 2**20
    if max_model_mb is not None and size_mb > float(max_model_mb):
        raise UsageError(
            f"model {config['model']!r} has {net.count_params():,} parameters = {size_mb:.0f} MB "
            f"in float32, over --max_model_mb={max_model_mb}: lower --cluster_size/--hidden_size"
        )
    ckpt_dir = distribute.checkpoint_dir(train_dir, chief)
    keep = int(config["train"].get("keep_checkpoints", 5))
    manager = tf.train.CheckpointManager(checkpoint, ckpt_dir, max_to_keep=keep)
    return TrainState(net, optimizer, schedule, checkpoint, manager, ckpt_dir, chief)


def restore(state: TrainState, train_dir: str) -> int:
    """Resumes from the chief's newest intact checkpoint (every worker does); returns the
    step. History rows past it belong to steps that will be trained again: they go."""
    if rundir.restore_newest_intact(state.checkpoint, train_dir) and state.chief:
        print(f"resuming {train_dir} from step {state.step}")
    if state.chief:
        rundir.truncate_history(train_dir, state.step)
    return state.step
