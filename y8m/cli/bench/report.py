"""`y8m bench report`: seconds and peak memory of `y8m report` on a large planted store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import numpy as np

# The report runs in a fresh process so its peak memory is its own, not the generator's.
_CHILD = """
import json, resource, sys, time
from y8m.run.report.build import report
t = time.perf_counter()
report(stores=sys.argv[1], vocabulary=sys.argv[2], output_dir=sys.argv[3], progress=False)
print(json.dumps({"seconds": time.perf_counter() - t,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""
_CHUNK = 4096


def bench_report(
    videos: int = 100_000,
    top_k: int = 100,
    num_classes: int = 3862,
    stores: int = 1,
    workdir: str | None = None,
    seed: int = 0,
) -> dict:
    """Writes STORES planted validation stores (VIDEOS x TOP_K, ~3 labels per video drawn from a
    long-tailed class distribution) and times `y8m report` over them in a child process.

    The issue's bar: 100k videos x top-100 in under 60 s and 4 GiB.

    Returns:
        Figures (also printed as a table, then one JSON line): seconds, peak_rss_mb,
        videos_per_s, page_mb, store_mb, videos, top_k, num_classes, stores.
    """
    workdir = workdir or tempfile.mkdtemp(prefix="y8m-bench-report-")
    paths = [
        _write_planted(
            os.path.join(workdir, f"model{i}.parquet"),
            int(videos),
            int(top_k),
            int(num_classes),
            seed + i,
            f"model{i}",
        )  # fmt: skip
        for i in range(int(stores))
    ]
    vocabulary = _write_vocabulary(os.path.join(workdir, "vocabulary.csv"), int(num_classes))
    output_dir = os.path.join(workdir, "report")
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, ",".join(paths), vocabulary, output_dir],
        capture_output=True,
        text=True,
    )
    if child.returncode != 0:
        raise RuntimeError(f"the report failed:\n{child.stderr[-2000:]}")
    figures = json.loads(child.stdout.strip().splitlines()[-1])
    figures.update(
        {
            "videos_per_s": int(videos) * int(stores) / figures["seconds"],
            "page_mb": os.path.getsize(os.path.join(output_dir, "index.html")) / 1e6,
            "store_mb": sum(os.path.getsize(p) for p in paths) / 1e6,
            "videos": int(videos),
            "top_k": int(top_k),
            "num_classes": int(num_classes),
            "stores": int(stores),
        }
    )
    print(
        f"y8m report of {stores} store(s) x {videos:,} videos x top-{top_k} ({num_classes} classes)"
    )
    print(f"  seconds     {figures['seconds']:.1f}  (bar: 60)")
    print(f"  peak RSS    {figures['peak_rss_mb']:,.0f} MB  (bar: 4096)")
    print(f"  videos/s    {figures['videos_per_s']:,.0f}")
    print(f"  page        {figures['page_mb']:.2f} MB  ({output_dir}/index.html)")
    print(json.dumps(figures))
    return figures


def _write_planted(path, videos, top_k, num_classes, seed, name) -> str:
    """A store whose labels are in its lists more often, and scored higher, than other classes."""
    from y8m.predictions import PredictionWriter

    rng = np.random.default_rng(seed)
    frequency = 1.0 / (1 + np.arange(num_classes)) ** 0.9
    frequency /= frequency.sum()
    top_k = min(top_k, num_classes)
    with PredictionWriter(path, model_name=name, split="validate", num_classes=num_classes,
                          top_k=top_k) as writer:  # fmt: skip
        for start in range(0, videos, _CHUNK):
            n = min(_CHUNK, videos - start)
            rows, label_classes = _labels(rng, n, frequency)
            labels = np.split(label_classes, np.flatnonzero(np.diff(rows)) + 1)
            keys = rng.random((n, num_classes), dtype=np.float32)
            keys[rows, label_classes] += 1.0  # labels nearly always make the list
            classes = np.argpartition(-keys, top_k - 1, axis=1)[:, :top_k]
            picked = np.take_along_axis(keys, classes, axis=1)
            scores = 1 / (1 + np.exp(-(3 * picked - 2.5 + rng.normal(0, 0.7, picked.shape))))
            ids = [f"v{start + i:07d}" for i in range(n)]
            writer.add_topk(ids, classes, scores.astype(np.float32), labels)
    return path


def _labels(rng, n: int, frequency: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1 to 5 distinct long-tailed labels per video: (row, class) pairs sorted by row."""
    per_video = rng.integers(1, 6, n)
    rows = np.repeat(np.arange(n), per_video)
    keys = np.unique(rows * frequency.size + rng.choice(frequency.size, rows.size, p=frequency))
    return keys // frequency.size, keys % frequency.size


def _write_vocabulary(path: str, num_classes: int) -> str:
    import csv

    verticals = ("Arts & Entertainment", "Games", "Autos & Vehicles", "Sports", "Food & Drink")
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["Index", "TrainVideoCount", "Name", "Vertical1"])
        for c in range(num_classes):
            writer.writerow([c, int(400_000 / (1 + c) ** 0.9), f"class {c}", verticals[c % 5]])
    return path
