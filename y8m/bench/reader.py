"""`y8m bench reader`: frame-level reader throughput (decode, dequantise, sample, batch)."""

from __future__ import annotations

import json
import os
import time

import numpy as np

from y8m.data import specs
from y8m.fileio import expand_pattern


def _time_dataset(ds, max_batches: int) -> tuple[int, float]:
    videos, start = 0, None
    for i, batch in enumerate(ds):
        if i == 0:  # the first batch pays for graph tracing and file opening
            start = time.perf_counter()
            continue
        videos += int(batch["num_frames"].shape[0])
        if i >= max_batches:
            break
    return videos, time.perf_counter() - (start or time.perf_counter())


def baseline_dataset(pattern: str, version: int, batch_size: int, num_samples: int):
    """The straightforward pipeline the optimised reader is measured against:
    interleave -> map(parse_single_sequence_example) -> decode -> sample -> batch."""
    import tensorflow as tf

    release = specs.release(version)
    files = expand_pattern(pattern, "TFRecord files")
    context = {
        release.id_key: tf.io.FixedLenFeature([], tf.string),
        specs.LABELS_KEY: tf.io.VarLenFeature(tf.int64),
    }
    sequence = {f.name: tf.io.FixedLenSequenceFeature([], tf.string) for f in specs.FRAME_FEATURES}

    def parse(raw):
        ctx, seq = tf.io.parse_single_sequence_example(raw, context, sequence)
        out = {"labels": tf.sparse.to_indicator(ctx[specs.LABELS_KEY], release.num_classes)}
        n = tf.minimum(tf.shape(seq["rgb"])[0], specs.MAX_FRAMES)
        idx = tf.cast(tf.floor(tf.random.uniform([num_samples]) * tf.cast(n, tf.float32)), tf.int32)
        for f in specs.FRAME_FEATURES:
            x = tf.reshape(
                tf.cast(tf.io.decode_raw(seq[f.name], tf.uint8), tf.float32), [-1, f.size]
            )
            x = x * specs.DEQUANTIZE_SCALE + specs.DEQUANTIZE_BIAS
            out[f.name] = tf.gather(x, tf.minimum(idx, tf.shape(x)[0] - 1))
        out["num_frames"] = n
        return out

    ds = tf.data.Dataset.from_tensor_slices(files).interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(len(files), 8),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return ds.map(parse).batch(batch_size).prefetch(1)


def bench_reader(
    data_pattern: str,
    version: int | None = None,
    batch_size: int = 80,
    num_samples: int = specs.MAX_FRAMES,
    max_batches: int = 50,
    repeat: bool = True,
) -> dict:
    """Times the frame-level reader and the baseline pipeline on the same files."""
    import tensorflow as tf

    from y8m.data.readers import detect_layout, read_frames

    files = expand_pattern(data_pattern, "TFRecord files")
    version = version or detect_layout(files[0])["version"] or specs.DEFAULT_VERSION
    total_bytes = sum(os.path.getsize(f) for f in files)
    ours = read_frames(
        data_pattern,
        version=version,
        batch_size=batch_size,
        sample="random",
        num_samples=num_samples,
        repeat=repeat,
        shuffle=False,
    )
    base = baseline_dataset(data_pattern, version, batch_size, num_samples)
    if repeat:
        base = base.repeat()
    # Estimate bytes per video from the files so MB/s is comparable on any data.
    n_records = sum(1 for _ in tf.data.TFRecordDataset(files[:1]))
    bytes_per_video = os.path.getsize(files[0]) / max(n_records, 1)
    results = {}
    for name, ds in (("y8m", ours), ("baseline", base)):
        videos, seconds = _time_dataset(ds, max_batches)
        results[name] = videos / seconds if seconds else float("nan")
    mb = bytes_per_video / 1e6
    print(f"{'pipeline':<10} {'videos/s':>10} {'MB/s':>8}")
    for name, rate in results.items():
        print(f"{name:<10} {rate:>10.1f} {rate * mb:>8.1f}")
    figures = {
        "videos_per_s": round(results["y8m"], 1),
        "mb_per_s": round(results["y8m"] * mb, 2),
        "baseline_videos_per_s": round(results["baseline"], 1),
        "speedup": round(results["y8m"] / results["baseline"], 2),
        "batch_size": batch_size,
        "num_samples": num_samples,
        "files": len(files),
        "dataset_mb": round(total_bytes / 1e6, 1),
    }
    print(json.dumps(figures))
    return figures


__all__ = ["bench_reader", "baseline_dataset", "np"]
