"""`y8m bench reader`: frame-level reader throughput (decode, dequantise, sample, batch)."""

from __future__ import annotations

import json
import os
import time

import numpy as np

from y8m.data import specs
from y8m.fileio import expand_pattern


def _time_iterator(it, max_batches: int) -> tuple[int, float]:
    """Videos and seconds for `max_batches` batches after one untimed warm-up batch."""
    next(it)
    videos, start = 0, time.perf_counter()
    for _ in range(int(max_batches)):
        videos += int(next(it)["num_frames"].shape[0])
    return videos, time.perf_counter() - start


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
    max_batches: int = 100,
    rounds: int = 3,
) -> dict:
    """Frame-level reader videos/s and MB/s (decode, dequantise, sample, batch) vs a baseline.

    The baseline is the straightforward pipeline: interleave -> map(parse_single_sequence_example,
    decode, dequantise, sample) -> batch. Both read the same files, in alternating rounds.

    Args:
        data_pattern: frame-level TFRecord glob.
        version: release (detected when omitted).
        batch_size: videos per batch.
        num_samples: frames sampled per video (random, with replacement).
        max_batches: batches timed per round.
        rounds: alternating rounds; the median of each pipeline is reported.
    """
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
        repeat=True,
        shuffle=False,
    )
    base = baseline_dataset(data_pattern, version, batch_size, num_samples)
    base = base.repeat()
    # Estimate bytes per video from the files so MB/s is comparable on any data.
    n_records = sum(1 for _ in tf.data.TFRecordDataset(files[:1]))
    bytes_per_video = os.path.getsize(files[0]) / max(n_records, 1)
    # Alternate the two pipelines and keep each one's median: on a shared 2-core machine single
    # runs swing by 2x with thread scheduling.
    rates: dict[str, list[float]] = {"y8m": [], "baseline": []}
    iterators = {"y8m": iter(ours), "baseline": iter(base)}
    for _ in range(int(rounds)):
        for name, it in iterators.items():
            videos, seconds = _time_iterator(it, max_batches)
            rates[name].append(videos / seconds if seconds else float("nan"))
    results = {name: float(np.median(r)) for name, r in rates.items()}
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
