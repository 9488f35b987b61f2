"""`y8m bench ensemble`: time and peak memory of greedy selection on synthetic prediction stores."""

from __future__ import annotations

import json
import time

import numpy as np

from y8m.cli.bench._memory import peak_rss_mb
from y8m.data import specs
from y8m.metrics import top_k_per_row
from y8m.predictions import Predictions


def synthetic_predictions(
    models: int, videos: int, classes: int, top_k: int, seed: int = 0
) -> dict[str, Predictions]:
    """Sparse top-K validation predictions of `models` models with shared signal, and labels.

    Each video gets a pool of 2K candidate classes (weighted by a long-tailed class prior) whose
    first few are its labels. Every model scores the pool as `sigmoid(quality * relevance +
    noise)` with its own quality and noise, so models differ in GAP and partly agree, and keeps
    its top K. Nothing dense of size videos x classes is built.

    Returns:
        model name (`model_00`, ...) -> Predictions, all on the same videos and labels.
    """
    rng = np.random.default_rng(seed)
    pool_size = min(2 * top_k, classes)
    prior = 1.0 / (np.arange(classes) + 10.0) ** 0.8
    prior = rng.permutation(prior).astype(np.float32)
    # Weighted sampling without replacement (Efraimidis-Spirakis): top keys log(u) / w.
    pool = np.empty((videos, pool_size), np.int32)
    for start in range(0, videos, 2048):
        n = min(2048, videos - start)
        keys = np.log1p(-rng.random((n, classes), np.float32)) / prior
        pool[start : start + n] = top_k_per_row(keys, pool_size, sort=True)[0]
    num_labels = np.minimum(1 + rng.poisson(2.0, videos), pool_size // 2)
    is_label = np.arange(pool_size)[None, :] < num_labels[:, None]
    relevance = np.where(
        is_label, rng.normal(1.5, 1.0, is_label.shape), rng.normal(-1.5, 1.0, is_label.shape)
    ).astype(np.float32)
    labels = [pool[v, : num_labels[v]].copy() for v in range(videos)]
    ids = np.array([f"v{v:07d}" for v in range(videos)])
    quality = rng.permutation(np.linspace(0.3, 1.2, models))
    out = {}
    for m in range(models):
        noise = rng.standard_normal((videos, pool_size), np.float32) * np.float32(
            0.8 + 0.4 * (m % 3)
        )
        logits = np.float32(quality[m]) * relevance + noise
        scores = 1.0 / (1.0 + np.exp(-logits))
        index, kept = top_k_per_row(scores, top_k, sort=True)
        name = f"model_{m:02d}"
        metadata = {"model_name": name, "split": "validate", "num_classes": classes, "top_k": top_k}
        out[name] = Predictions(
            ids, np.take_along_axis(pool, index, axis=1), kept, labels, metadata
        )
    return out


def bench_ensemble(
    models: int = 50,
    videos: int = 20000,
    classes: int = 3862,
    top_k: int = 100,
    greedy: int = 7,
    seed: int = 0,
) -> dict:
    """Times `GreedyEnsembler(n_iter=greedy).fit` on synthetic sparse predictions.

    Args:
        models: candidate models.
        videos: validation videos.
        classes: C.
        top_k: classes kept per video and model (K).
        greedy: selection steps.
        seed: random seed.

    Returns:
        Figures: seconds (greedy fit, wall clock), cpu_seconds (its CPU time: the honest figure
        on a shared machine), generate_seconds, peak_rss_mb (whole process), gap
        (validation GAP@20 of the ensemble), best_single_gap, and the sizes. Also printed, as a
        table and then one JSON line.
    """
    from ensembles.greedy import GreedyEnsembler

    start = time.perf_counter()
    validation = synthetic_predictions(models, videos, classes, top_k, seed)
    generate_seconds = time.perf_counter() - start
    start, cpu_start = time.perf_counter(), time.process_time()
    est = GreedyEnsembler(n_iter=greedy, top_k=specs.SUBMISSION_TOP_K).fit(validation)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    best_single = max(est.single_gaps_.values())
    print(f"{'step':>4}  {'model':<10} {'weight':>7} {'GAP':>8}")
    for h in est.history_:
        print(f"{h['step']:>4}  {h['model']:<10} {h['weight']:>7.3f} {h['gap']:>8.4f}")
    print(
        f"{models} models x {videos} videos x {classes} classes, top {top_k}: greedy {greedy} "
        f"steps in {seconds:.1f} s ({cpu_seconds:.1f} CPU s; generation {generate_seconds:.1f} s), peak RSS "
        f"{peak_rss_mb():.0f} MiB"
    )
    figures = {
        "bench": "ensemble",
        "models": models,
        "videos": videos,
        "classes": classes,
        "top_k": top_k,
        "greedy": greedy,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu_seconds, 2),
        "generate_seconds": round(generate_seconds, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "gap": round(est.validation_gap_, 5),
        "best_single_gap": round(best_single, 5),
    }
    print(json.dumps(figures))
    return figures
