"""`y8m bench metrics`: GAP@k throughput (dense top-k + pooled AP) and the streaming evaluator."""

from __future__ import annotations

import json
import time

import numpy as np

from y8m import metrics
from y8m.cli.bench._memory import peak_rss_mb
from y8m.data import specs


def _batch(rng: np.random.Generator, n: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Random float32 probabilities with some signal and ~3 labels per video."""
    labels = rng.random((n, classes), np.float32) < np.float32(3.0 / classes)
    predictions = rng.random((n, classes), np.float32)
    predictions += labels * rng.random((n, classes), np.float32)
    return predictions, labels


def bench_metrics(
    videos: int = 100000,
    classes: int = 3862,
    top_k: int = specs.SUBMISSION_TOP_K,
    seed: int = 0,
    batch_size: int = 10000,
) -> dict:
    """Times GAP@k on `videos` x `classes` float32 predictions, fed in batches.

    Two figures: `gap` (top-k per video with `metrics.top_k_per_row`, then
    `metrics.gap_topk` over the pooled lists) and the streaming `metrics.Evaluator` (GAP,
    Hit@1, PERR, mAP together). Data generation is not timed; at most one batch is in memory.

    Args:
        videos: N.
        classes: C.
        top_k: k of GAP@k.
        seed: random seed.
        batch_size: videos generated and scored at once.

    Returns:
        Figures (also printed as a table and then one JSON line): seconds, videos_per_s,
        evaluator_seconds, evaluator_videos_per_s, gap, peak_rss_mb.
    """
    rng = np.random.default_rng(seed)
    evaluator = metrics.Evaluator(num_classes=classes, top_k=top_k)
    scores, hits = [], []
    num_positives = 0
    gap_seconds = evaluator_seconds = 0.0
    for start in range(0, videos, batch_size):
        predictions, labels = _batch(rng, min(batch_size, videos - start), classes)
        tick = time.perf_counter()
        index, top = metrics.top_k_per_row(predictions, top_k, labels=labels)
        scores.append(top)
        hits.append(np.take_along_axis(labels, index, axis=1))
        num_positives += int(labels.sum())
        gap_seconds += time.perf_counter() - tick
        tick = time.perf_counter()
        evaluator.update(predictions, labels)
        evaluator_seconds += time.perf_counter() - tick
    tick = time.perf_counter()
    gap = metrics.gap_topk(np.concatenate(scores), np.concatenate(hits), num_positives, top_k)
    gap_seconds += time.perf_counter() - tick
    tick = time.perf_counter()
    result = evaluator.result()
    evaluator_seconds += time.perf_counter() - tick
    assert abs(result["gap"] - gap) < 1e-9
    figures = {
        "bench": "metrics",
        "videos": videos,
        "classes": classes,
        "top_k": top_k,
        "seconds": round(gap_seconds, 3),
        "videos_per_s": round(videos / gap_seconds, 1),
        "evaluator_seconds": round(evaluator_seconds, 3),
        "evaluator_videos_per_s": round(videos / evaluator_seconds, 1),
        "gap": round(gap, 6),
        "hit_at_one": round(result["hit_at_one"], 6),
        "perr": round(result["perr"], 6),
        "map": round(result["map"], 6),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    print(f"{'what':<34} {'seconds':>8} {'videos/s':>11}")
    print(
        f"{'GAP@' + str(top_k) + ' (top-k + pooled AP)':<34} {gap_seconds:>8.2f} "
        f"{figures['videos_per_s']:>11,.0f}"
    )
    print(
        f"{'Evaluator (GAP, Hit@1, PERR, mAP)':<34} {evaluator_seconds:>8.2f} "
        f"{figures['evaluator_videos_per_s']:>11,.0f}"
    )
    print(
        f"{videos} videos x {classes} classes float32: GAP {gap:.4f}, peak RSS "
        f"{figures['peak_rss_mb']:.0f} MiB"
    )
    print(json.dumps(figures))
    return figures
