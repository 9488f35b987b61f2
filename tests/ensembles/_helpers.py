"""Small sparse predictions and dense reference computations shared by the ensemble tests."""

import numpy as np

from y8m import metrics
from y8m.predictions import Predictions


def ids_for(num_videos):
    return np.array([f"vid{v:03d}" for v in range(num_videos)])


def sparse_from_dense(name, dense, k, labels=None, split="validate"):
    """Predictions keeping each row's top k of a dense [V, C] score matrix."""
    index, scores = metrics.top_k_per_row(dense, k, sort=True)
    label_lists = None if labels is None else [np.flatnonzero(row) for row in labels]
    metadata = {"model_name": name, "split": split, "num_classes": dense.shape[1], "top_k": k}
    return Predictions(ids_for(len(dense)), index, scores, label_lists, metadata)


def densify(p, num_classes):
    """[V, C] scores with 0 for unlisted classes, and [V, C] bool 'listed'."""
    scores = np.zeros((p.num_videos, num_classes))
    listed = np.zeros((p.num_videos, num_classes), bool)
    rows = np.repeat(np.arange(p.num_videos), p.top_k).reshape(p.classes.shape)
    ok = p.classes >= 0
    scores[rows[ok], p.classes[ok]] = p.scores[ok]
    listed[rows[ok], p.classes[ok]] = True
    return scores, listed


def dense_ensemble_gap(predictions, counts, labels, top_k=20):
    """Reference: GAP of the count-weighted dense average over the union of listed classes."""
    num_classes = labels.shape[1]
    total = np.zeros(labels.shape)
    listed = np.zeros(labels.shape, bool)
    for name, count in counts.items():
        s, ok = densify(predictions[name], num_classes)
        total += count * s
        listed |= ok
    total = np.where(listed, total, -np.inf)
    index, scores = metrics.top_k_per_row(total, top_k, labels=labels)
    hits = np.take_along_axis(labels, index, axis=1) > 0
    return metrics.gap_topk(scores, hits, labels.sum(), top_k)


def dense_greedy(predictions, labels, n_iter, replace=True, top_k=20):
    """Reference greedy selection with dense matrices (names in sorted order break ties)."""
    counts, picks = {}, []
    for _ in range(n_iter):
        names = [n for n in sorted(predictions) if replace or n not in counts]
        if not names:
            break
        gaps = [
            dense_ensemble_gap(predictions, {**counts, n: counts.get(n, 0) + 1}, labels, top_k)
            for n in names
        ]
        best = names[int(np.argmax(gaps))]
        counts[best] = counts.get(best, 0) + 1
        picks.append((best, max(gaps)))
    return picks


def random_models(seed, num_models=4, num_videos=80, num_classes=30, k=6, label_rate=0.08):
    """Models of increasing quality on the same labelled videos, plus the labels."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((num_videos, num_classes)) < label_rate).astype(np.float32)
    models = {}
    for m in range(num_models):
        dense = rng.random((num_videos, num_classes)) * 0.6 + labels * rng.random(labels.shape) * (
            0.2 + 0.15 * m
        )
        models[f"model_{m}"] = sparse_from_dense(f"model_{m}", dense / dense.max(), k, labels)
    return models, labels
