"""The weights a run is judged by: the exponential moving average of its weights when it
keeps one (`--ema_decay`), else its trained weights, with precise batch-norm statistics.

They live in a copy of the model, so the training state (what checkpoints keep and resume
from) is never changed by an evaluation.
"""

from __future__ import annotations

from y8m.run import precise_bn, rundir


def ema_averages(optimizer) -> list | None:
    """The optimizer's moving averages of the trainable weights, or None without EMA."""
    if optimizer is None:
        return None
    inner = getattr(optimizer, "inner_optimizer", optimizer)  # a LossScaleOptimizer's Adam
    if not getattr(inner, "use_ema", False):
        return None
    return list(inner._model_variables_moving_average)


def judged_copy(config: dict, net, optimizer=None, copy=None):
    """`copy` (built from CONFIG when None) holding NET's weights, with the EMA's in place of
    the trainable ones when OPTIMIZER keeps an average."""
    copy = copy if copy is not None else rundir.build_model(config)
    copy.set_weights(net.get_weights())
    averages = ema_averages(optimizer)
    if averages:
        for variable, average in zip(copy.trainable_variables, averages):
            variable.assign(average)
    return copy


def reestimate(model, config: dict, num_batches: int, seed: int = 0, progress: bool = True):
    """Precise batch-norm statistics from the run's training data; returns the figures."""
    if num_batches <= 0 or not precise_bn.batch_norm_layers(model):
        return {"batches": 0, "seconds": 0.0}
    figures = precise_bn.estimate(
        model, precise_bn.training_inputs(config, seed), int(num_batches), progress=progress
    )
    return figures
