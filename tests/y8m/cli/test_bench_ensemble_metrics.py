"""Tiny runs of `y8m bench ensemble` and `y8m bench metrics`: the output contract, not timings."""

import json

import numpy as np

from y8m.cli.bench.ensemble import bench_ensemble, synthetic_predictions
from y8m.cli.bench.metrics import bench_metrics


def last_json_line(text):
    return json.loads(text.strip().splitlines()[-1])


def test_bench_ensemble_two_steps(capsys):
    figures = bench_ensemble(models=3, videos=200, classes=50, top_k=10, greedy=2, seed=1)
    printed = last_json_line(capsys.readouterr().out)
    assert printed == figures
    for key in ("seconds", "cpu_seconds", "peak_rss_mb", "gap", "best_single_gap"):
        assert figures[key] >= 0
    assert figures["gap"] >= figures["best_single_gap"]


def test_synthetic_predictions_are_sparse_and_labelled():
    models = synthetic_predictions(models=2, videos=30, classes=40, top_k=5, seed=0)
    p = models["model_00"]
    assert p.classes.shape == (30, 5) and p.labels is not None
    assert all(len(set(row)) == 5 for row in p.classes.tolist())  # distinct classes per video
    assert np.all(np.diff(p.scores, axis=1) <= 0)
    assert 0 < p.gap() <= 1


def test_bench_metrics_small(capsys):
    figures = bench_metrics(videos=300, classes=40, top_k=5, batch_size=128)
    assert last_json_line(capsys.readouterr().out) == figures
    assert figures["videos_per_s"] > 0 and 0 < figures["gap"] <= 1
