"""Teacher predictions for offline distillation (`y8m train --distill_from=STORE_GLOB`).

The teacher is one or more prediction stores of the training videos, usually an ensemble's
(`y8m ensemble --output_store`). Stores of one model (shards) are concatenated; stores of
several models are averaged, as a plain ensemble. Each video's teacher target is its stored
top-K scores, 0 for the classes outside it, looked up by video id inside the input pipeline.
"""

from __future__ import annotations

import os
from collections import defaultdict

import numpy as np

from y8m.errors import UsageError
from y8m.fileio import expand_pattern
from y8m.predictions import load_predictions

# data_error turns a failed tf.data assertion carrying this marker into a one-line error.
MISSING_MARKER = (
    "y8m-usage: training videos are missing from the --distill_from store(s) (predict the "
    "teacher on the same training files); for example"
)


class Teacher:
    """Sparse teacher targets by video id.

    Attributes:
        ids: [V] video ids.
        classes: [V, K] int32 classes (-1 pads), several models' lists side by side.
        scores: [V, K] float32 scores, already divided by the number of models averaged.
        num_classes: C.
        models: the model names averaged.
    """

    def __init__(self, ids, classes, scores, num_classes: int, models: list[str]):
        self.ids = np.asarray(ids).astype(str)
        self.classes = np.asarray(classes, np.int32)
        self.scores = np.asarray(scores, np.float32)
        self.num_classes = int(num_classes)
        self.models = list(models)

    def attach(self, dataset):
        """`dataset`'s batches plus "teacher": (B, C) float32 targets. Iterating fails, with
        `MISSING_MARKER` in the error, on a batch holding an id the teacher does not."""
        import tensorflow as tf

        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(self.ids), tf.range(len(self.ids), dtype=tf.int64)
            ),
            default_value=-1,
        )
        classes, scores = tf.constant(self.classes), tf.constant(self.scores)
        num_classes = self.num_classes

        def add(b):
            rows = table.lookup(b["id"])
            missing = tf.boolean_mask(b["id"], rows < 0)
            check = tf.debugging.Assert(
                tf.size(missing) == 0, [MISSING_MARKER, missing], summarize=3
            )
            with tf.control_dependencies([check]):
                rows = tf.identity(rows)
            top, values = tf.gather(classes, rows), tf.gather(scores, rows)  # (B, K)
            real = top >= 0
            batch_index = tf.broadcast_to(tf.range(tf.shape(top)[0])[:, None], tf.shape(top))
            index = tf.stack([batch_index, tf.where(real, top, 0)], axis=-1)
            dense = tf.scatter_nd(
                tf.reshape(index, (-1, 2)),
                tf.reshape(tf.where(real, values, 0.0), (-1,)),
                tf.stack([tf.shape(top)[0], num_classes]),
            )
            return {**b, "teacher": tf.clip_by_value(dense, 0.0, 1.0)}

        return dataset.map(add)


def load_teacher(pattern: str, num_classes: int) -> Teacher:
    """The teacher in the stores matching `pattern`, checked against the run's classes.

    Raises:
        UsageError: no store matches; a store of another class count; an id twice in one
            model's stores; models whose stores hold different videos.
    """
    files = expand_pattern(pattern, "--distill_from prediction stores")
    by_model: dict[str, list] = defaultdict(list)
    for path in files:
        store = load_predictions(path)
        if store.num_classes != int(num_classes):
            raise UsageError(
                f"--distill_from store {path} has {store.num_classes} classes, the run "
                f"{num_classes}: predict the teacher with the same vocabulary"
            )
        by_model[store.model_name or os.path.basename(path)].append((path, store))
    models = sorted(by_model)
    merged = {name: _concatenated(by_model[name]) for name in models}
    ids = merged[models[0]][0]
    order = np.argsort(ids)
    classes, scores = [], []
    for name in models:
        model_ids, model_classes, model_scores = merged[name]
        if len(model_ids) != len(ids) or not np.array_equal(np.sort(model_ids), ids[order]):
            raise UsageError(
                f"--distill_from stores of {name!r} ({len(model_ids)} videos) and of "
                f"{models[0]!r} ({len(ids)}) hold different videos: predict every teacher model "
                "on the same training files"
            )
        at = np.argsort(model_ids)
        classes.append(model_classes[at])
        scores.append(model_scores[at] / len(models))
    return Teacher(
        ids[order], np.concatenate(classes, 1), np.concatenate(scores, 1), num_classes, models
    )


def _concatenated(stores: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One model's shards as (ids, classes, scores); an error on an id held twice."""
    width = max(store.top_k for _, store in stores)
    ids, classes, scores = [], [], []
    for _, store in stores:
        pad = width - store.top_k
        ids.append(store.ids)
        classes.append(np.pad(store.classes, ((0, 0), (0, pad)), constant_values=-1))
        scores.append(np.pad(store.scores, ((0, 0), (0, pad))))
    ids = np.concatenate(ids)
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        twice = unique[counts > 1][0]
        paths = ", ".join(path for path, _ in stores)
        raise UsageError(
            f"video {twice!r} is in more than one --distill_from store of one model ({paths}): "
            "pass each shard once"
        )
    return ids, np.concatenate(classes), np.concatenate(scores)
