"""Precise batch-norm statistics (as PySlowFast's and detectron2's PreciseBN).

Keras keeps batch-norm population statistics as moving averages with momentum 0.99: after a
few hundred steps they still hold most of their initial values, so a short or fine-tuning run
evaluates with statistics that belong to no weights it ever had. Here every batch-norm layer's
mean and variance are replaced by the population statistics of N training batches, taken in
training mode (masked frames excluded, as in training), weights untouched: the mean is the
average of the batch means, the variance is pooled as PySlowFast does,
`E_b[var_b + mean_b^2] - mean^2`, so the spread of the batch means counts too (the extras'
torch version follows the same rule).

The batch moments come from Keras' own update with momentum 0, which leaves the moving
statistics equal to the last batch's; reading them after each batch and averaging in float64
gives the statistics without reimplementing the layer's masked moments.
"""

from __future__ import annotations

import time

import numpy as np


def batch_norm_layers(model) -> list:
    """Every `keras.layers.BatchNormalization` in the model, nested layers included."""
    import keras

    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


def estimate(model, batches, num_batches: int, progress: bool = True) -> dict:
    """Sets every batch-norm layer's moving mean and variance to the population statistics of
    `num_batches` of `batches` (fewer if they run out): the mean of the batch means and the
    pooled variance `mean_b(var_b + mean_b^2) - mean^2`.

    Args:
        model: a Keras model (changed in place: only batch-norm moving statistics).
        batches: iterable of model-input dicts (training sampling, as the run trains).
        num_batches: N; 0 leaves the model unchanged.

    Returns:
        `{"batches": n used, "layers": batch-norm layers, "seconds": time taken}`.
    """
    import tensorflow as tf
    from tqdm import tqdm

    layers = batch_norm_layers(model)
    if not layers or num_batches <= 0:
        return {"batches": 0, "layers": len(layers), "seconds": 0.0}
    t0 = time.perf_counter()
    momenta = [layer.momentum for layer in layers]
    sums = [[np.zeros(layer.moving_mean.shape, np.float64) for _ in range(2)] for layer in layers]
    try:
        for layer in layers:
            layer.momentum = 0.0  # read at trace time below: each call leaves the batch's moments
        forward = tf.function(lambda x: model(x, training=True), reduce_retracing=True)
        used = 0
        bar = tqdm(total=num_batches, unit="batch", desc="batch-norm statistics",
                   disable=not progress, dynamic_ncols=True)  # fmt: skip
        for inputs in batches:
            forward(inputs)
            for layer, (mean, square) in zip(layers, sums):
                batch_mean = np.asarray(layer.moving_mean, np.float64)
                mean += batch_mean
                square += np.asarray(layer.moving_variance, np.float64) + batch_mean**2
            used += 1
            bar.update(1)
            if used >= num_batches:
                break
        bar.close()
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    if used:
        for layer, (mean, square) in zip(layers, sums):
            mean, square = mean / used, square / used
            variance = np.maximum(square - mean**2, 0.0)
            layer.moving_mean.assign(mean.astype(layer.moving_mean.dtype))
            layer.moving_variance.assign(variance.astype(layer.moving_variance.dtype))
    return {"batches": used, "layers": len(layers), "seconds": time.perf_counter() - t0}


def training_inputs(config: dict, seed: int = 0):
    """Model inputs drawn from the run's training data as training draws them (config.json
    records the pattern), repeating so any number of batches can be taken."""
    from y8m.run import rundir

    pattern = config["train"]["train_data_pattern"]
    ds = rundir.dataset_for(
        config,
        pattern,
        training=True,
        batch_size=int(config["train"]["batch_size"]),
        seed=seed,
        repeat=True,
    )
    return _model_inputs(ds, config, pattern)


def _model_inputs(ds, config, pattern):
    import tensorflow as tf

    from y8m.data.readers import data_error
    from y8m.run import rundir

    iterator = iter(ds.map(lambda b: rundir.model_inputs(b, config)))
    while True:
        try:
            yield next(iterator)
        except StopIteration:
            return
        except tf.errors.OpError as err:
            raise data_error(err, pattern) from None
