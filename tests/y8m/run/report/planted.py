"""Planted labelled stores (dense scores written with PredictionWriter) and a vocabulary.csv."""

import csv
import os

import numpy as np

from y8m.predictions import PredictionWriter

VERTICALS = ("Games", "Music", "Sports")


def planted(num_videos=300, num_classes=24, seed=0, skill=2.0, ties=False):
    """Dense [V, C] scores and multi-hot labels: frequent classes first, scores track labels."""
    rng = np.random.default_rng(seed)
    frequency = 0.4 / (1 + np.arange(num_classes)) ** 0.8
    labels = rng.random((num_videos, num_classes)) < frequency
    labels[np.arange(num_videos), rng.integers(0, num_classes, num_videos)] = True
    logits = skill * labels + rng.normal(size=labels.shape)
    scores = 1 / (1 + np.exp(-(logits - 1.5)))
    if ties:
        scores = np.round(scores, 1)
    return scores.astype(np.float32), labels.astype(np.float32)


def write_store(path, scores, labels, name="model", top_k=None):
    num_videos, num_classes = scores.shape
    top_k = top_k or num_classes
    ids = [f"v{i:05d}" for i in range(num_videos)]
    with PredictionWriter(path, model_name=name, split="validate", num_classes=num_classes,
                          top_k=top_k) as writer:  # fmt: skip
        writer.add_batch(ids, scores, labels)
    return path


def write_vocabulary(path, num_classes, train_counts=None):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["Index", "TrainVideoCount", "Name", "Vertical1"])
        for c in range(num_classes):
            count = "" if train_counts is None else int(train_counts[c])
            writer.writerow([c, count, f"class {c}", VERTICALS[c % len(VERTICALS)]])
    return path


def two_stores(tmp_path, num_videos=300, num_classes=24, top_k=None):
    """Stores of a strong and a weak model on the same videos, and a vocabulary; their paths."""
    strong, labels = planted(num_videos, num_classes, seed=1, skill=3.0)
    weak, _ = planted(num_videos, num_classes, seed=1, skill=1.0)
    os.makedirs(tmp_path / "stores", exist_ok=True)
    write_store(str(tmp_path / "stores" / "strong.parquet"), strong, labels, "strong", top_k)
    write_store(str(tmp_path / "stores" / "weak.parquet"), weak, labels, "weak", top_k)
    counts = 1000 / (1 + np.arange(num_classes))
    vocabulary = write_vocabulary(str(tmp_path / "vocabulary.csv"), num_classes, counts)
    return {"strong": strong, "weak": weak, "labels": labels, "vocabulary": vocabulary}
