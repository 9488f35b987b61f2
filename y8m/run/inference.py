"""Running a trained model over a reader: the compiled forward pass and a validation GAP.

Shared by evaluate, predict, segments, export and training's periodic validation, so every
number they print comes from the same forward pass.
"""

from __future__ import annotations

import numpy as np

from y8m.run import rundir


def compiled_predict(model):
    """`inputs -> float32 probabilities`, traced once per input signature."""
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def predict(inputs):
        return tf.cast(model(inputs, training=False), tf.float32)

    return predict


def validation_gap(model, config: dict, pattern: str, max_videos: int, batch_size: int = 256):
    """GAP@20 of `model` on the first `max_videos` videos of PATTERN, in file order."""
    from y8m.data.readers import iterate
    from y8m.metrics import Evaluator

    evaluator = Evaluator(int(config["num_classes"]))
    predict = compiled_predict(model)
    ds = rundir.dataset_for(config, pattern, training=False, batch_size=batch_size)
    seen = 0
    for batch in iterate(ds, pattern):
        evaluator.update(np.asarray(predict(rundir.model_inputs(batch, config))), batch["labels"])
        seen += len(batch["labels"])
        if seen >= max_videos:
            break
    return float(evaluator.result()["gap"])
