"""`y8m bench reader`: frame-level reader throughput against the plain per-record pipeline,
with the floor (reading the records and writing the output, nothing else) measured alongside."""

from __future__ import annotations

import gc
import json
import os
import time

import numpy as np

from y8m.cli.bench._memory import peak_rss_mb
from y8m.data import specs
from y8m.errors import UsageError
from y8m.fileio import expand_pattern

_PLAIN_SAMPLES = ("random", "uniform", "ordered")


def baseline_dataset(
    pattern: str,
    version: int,
    batch_size: int,
    num_samples: int,
    sample: str = "random",
    max_frames: int = specs.MAX_FRAMES,
):
    """The plain per-record pipeline the reader is measured against: interleave ->
    map(parse_single_sequence_example, decode, dequantise, sample) -> batch, with AUTOTUNE
    parallelism and prefetch.

    Args:
        pattern: frame-level TFRecord glob.
        version: release (fixes the id key and class count).
        batch_size: videos per batch.
        num_samples: frames per video for "random" and "uniform".
        sample: "random" (drawn with replacement, the bench's case), "uniform" (centres of
            equal bins) or "ordered" (the first `max_frames`, zero padded to `max_frames`):
            the reader's sampling rules, applied one record at a time.
        max_frames: frames considered per video.

    Returns:
        A dataset of `{id, labels, rgb, audio, num_frames}` batches, as `read_frames` yields.
    """
    import tensorflow as tf

    if sample not in _PLAIN_SAMPLES:
        raise UsageError(
            f"unknown frame sampling {sample!r}: use one of {', '.join(_PLAIN_SAMPLES)}"
        )
    release = specs.release(version)
    files = expand_pattern(pattern, "TFRecord files")
    context = {
        release.id_key: tf.io.FixedLenFeature([], tf.string),
        specs.LABELS_KEY: tf.io.VarLenFeature(tf.int64),
    }
    sequence = {f.name: tf.io.FixedLenSequenceFeature([], tf.string) for f in specs.FRAME_FEATURES}

    def parse(raw):
        ctx, seq = tf.io.parse_single_sequence_example(raw, context, sequence)
        labels = tf.sparse.to_indicator(ctx[specs.LABELS_KEY], release.num_classes)
        out = {"id": ctx[release.id_key], "labels": tf.cast(labels, tf.float32)}
        n = tf.minimum(tf.shape(seq["rgb"])[0], max_frames)
        idx, num_frames = _plain_positions(n, sample, num_samples, max_frames)
        for f in specs.FRAME_FEATURES:
            x = tf.reshape(
                tf.cast(tf.io.decode_raw(seq[f.name], tf.uint8), tf.float32), [-1, f.size]
            )
            x = x * specs.DEQUANTIZE_SCALE + specs.DEQUANTIZE_BIAS
            x = tf.gather(x, tf.minimum(idx, tf.shape(x)[0] - 1))
            if sample == "ordered":  # padding is exactly 0.0, as the reader pads
                x *= tf.cast(idx < n, tf.float32)[:, None]
            out[f.name] = x
        out["num_frames"] = num_frames
        return out

    ds = tf.data.Dataset.from_tensor_slices(files).interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(len(files), 8),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _plain_positions(n, sample: str, num_samples: int, max_frames: int):
    """One video's frame positions (N,) and its `num_frames`, by the reader's rules (the
    bench's videos all have frames)."""
    import tensorflow as tf

    if sample == "ordered":
        return tf.range(max_frames), n
    if sample == "random":
        u = tf.random.uniform([num_samples])
    else:
        u = (tf.range(num_samples, dtype=tf.float32) + 0.5) / num_samples
    idx = tf.minimum(tf.cast(tf.floor(u * tf.cast(n, tf.float32)), tf.int32), n - 1)
    return idx, tf.constant(num_samples, tf.int32)


def floor_datasets(pattern: str, batch_size: int, num_samples: int) -> dict:
    """What no frame reader can avoid, as two pipelines over the reader's own record batches:
    `read` (the records read, nothing parsed) and `floor` (read, then a float32 batch of the
    output's size written per batch)."""
    import tensorflow as tf

    from y8m.data.readers import read_records

    def write(records):
        videos = tf.size(records)
        # The value depends on the data so the fill cannot be folded into a constant.
        value = tf.cast(videos, tf.float32)
        return {f.name: tf.fill([videos, num_samples, f.size], value) for f in specs.FRAME_FEATURES}

    records = read_records(pattern, batch_size=batch_size, repeat=True)
    floor = records.map(write, num_parallel_calls=tf.data.AUTOTUNE)
    return {
        "read": records.prefetch(tf.data.AUTOTUNE),
        "floor": floor.prefetch(tf.data.AUTOTUNE),
    }


def _time_round(dataset, warmup: int, max_batches: int) -> tuple[float, float]:
    """(videos/s, process CPU ms per video) over `max_batches` batches of a fresh iterator.

    Each round starts its own iterator and ends it, so no pipeline keeps prefetching (and
    taking CPU) while another one is timed, nor starts its turn with batches made earlier.
    """
    import tensorflow as tf

    it = iter(dataset)
    for _ in range(int(warmup)):
        next(it)
    videos, cpu, start = 0, time.process_time(), time.perf_counter()
    for _ in range(int(max_batches)):
        videos += int(tf.nest.flatten(next(it))[0].shape[0])
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    del it
    gc.collect()
    return videos / seconds, 1e3 * cpu / videos


def equality_check(data_pattern: str, version: int, batch_size: int, num_samples: int) -> float:
    """Largest |reader - plain pipeline| over one batch of the same records, "uniform"
    sampling (deterministic, so both draw the same frames); inf if the videos differ."""
    from y8m.data.readers import read_frames

    ours = read_frames(
        data_pattern,
        version=version,
        batch_size=batch_size,
        sample="uniform",
        num_samples=num_samples,
    )
    plain = baseline_dataset(data_pattern, version, batch_size, num_samples, sample="uniform")
    a, b = next(iter(ours)), next(iter(plain))
    if not np.array_equal(a["id"].numpy(), b["id"].numpy()):
        return float("inf")
    keys = [f.name for f in specs.FRAME_FEATURES] + ["labels", "num_frames"]
    return max(float(np.max(np.abs(a[k].numpy() - b[k].numpy()), initial=0.0)) for k in keys)


def _summary(rates: dict, cpu: dict, mb: float) -> dict:
    """The JSON figures from per-round videos/s and CPU ms per video of each pipeline."""
    med = {name: float(np.median(r)) for name, r in rates.items()}
    ratios = [y / p for y, p in zip(rates["y8m"], rates["baseline"])]
    cpu_ratios = [p / y for y, p in zip(cpu["y8m"], cpu["baseline"])]
    return {
        "videos_per_s": round(med["y8m"], 1),
        "mb_per_s": round(med["y8m"] * mb, 2),
        "baseline_videos_per_s": round(med["baseline"], 1),
        "speedup": round(med["y8m"] / med["baseline"], 2),
        "speedup_vs_plain": round(float(np.median(ratios)), 2),
        "speedup_min": round(min(ratios), 2),
        "speedup_max": round(max(ratios), 2),
        "speedup_rounds": [round(r, 3) for r in ratios],
        "cpu_ms_per_video": round(float(np.median(cpu["y8m"])), 4),
        "baseline_cpu_ms_per_video": round(float(np.median(cpu["baseline"])), 4),
        "cpu_speedup_vs_plain": round(float(np.median(cpu_ratios)), 2),
        "floor_videos_per_s": round(med["floor"], 1),
        "floor_cpu_ms_per_video": round(float(np.median(cpu["floor"])), 4),
        "read_videos_per_s": round(med["read"], 1),
        "fraction_of_floor": round(med["y8m"] / med["floor"], 3),
        "rounds": len(ratios),
    }


def _print_table(rates: dict, cpu: dict, mb: float, figures: dict) -> None:
    print(f"{'pipeline':<10} {'videos/s':>10} {'min-max':>15} {'CPU ms/video':>13} {'MB/s':>8}")
    for name, r in rates.items():
        span = f"{min(r):.0f}-{max(r):.0f}"
        med = float(np.median(r))
        print(f"{name:<10} {med:>10.1f} {span:>15} {np.median(cpu[name]):>13.3f} {med * mb:>8.1f}")
    rounds = ", ".join(f"{r:.2f}" for r in figures["speedup_rounds"])
    print(
        f"y8m / baseline per round: {rounds}; median {figures['speedup_vs_plain']:.2f} "
        f"(min {figures['speedup_min']:.2f}, max {figures['speedup_max']:.2f}); "
        f"by CPU per video {figures['cpu_speedup_vs_plain']:.2f}"
    )
    print(
        f"floor {figures['floor_videos_per_s']:.0f} videos/s (reading alone "
        f"{figures['read_videos_per_s']:.0f}): the reader runs at "
        f"{100 * figures['fraction_of_floor']:.0f}% of it"
    )


def bench_reader(
    data_pattern: str,
    version: int | None = None,
    batch_size: int = 80,
    num_samples: int = specs.MAX_FRAMES,
    max_batches: int = 100,
    rounds: int = 5,
    warmup: int = 3,
) -> dict:
    """Frame-level reader videos/s and MB/s (decode, dequantise, sample, batch) vs the plain
    per-record pipeline, with the floor.

    Each round times, one after the other on fresh iterators: the plain pipeline
    (`baseline_dataset`), the reader (`read_frames`, random sampling), the floor (the
    reader's record batches plus writing a float32 batch of the output's size) and reading
    alone. Ratios are taken round by round, between runs seconds apart (the load of a shared
    machine drifts more across rounds than within one), and their median is
    `speedup_vs_plain`; the CPU time per video, which the load hardly moves, is reported
    next to each rate.

    Args:
        data_pattern: frame-level TFRecord glob.
        version: release (detected when omitted).
        batch_size: videos per batch.
        num_samples: frames sampled per video (random, with replacement).
        max_batches: batches timed per pipeline and round.
        rounds: alternating rounds.
        warmup: untimed batches at the start of each timed run.
    """
    from y8m.data.readers import detect_layout, read_frames

    if int(rounds) <= 0 or int(max_batches) <= 0:
        raise UsageError(
            f"--rounds and --max_batches must be positive, got {rounds}, {max_batches}"
        )
    files = expand_pattern(data_pattern, "TFRecord files")
    version = version or detect_layout(files[0])["version"] or specs.DEFAULT_VERSION
    pipelines = {
        "baseline": baseline_dataset(data_pattern, version, batch_size, num_samples).repeat(),
        "y8m": read_frames(
            data_pattern,
            version=version,
            batch_size=batch_size,
            sample="random",
            num_samples=num_samples,
            repeat=True,
        ),
        **floor_datasets(data_pattern, batch_size, num_samples),
    }
    rates = {name: [] for name in pipelines}
    cpu = {name: [] for name in pipelines}
    for _ in range(int(rounds)):
        for name, dataset in pipelines.items():
            rate, ms = _time_round(dataset, warmup, max_batches)
            rates[name].append(rate)
            cpu[name].append(ms)
    mb = _bytes_per_video(files) / 1e6
    figures = _summary(rates, cpu, mb)
    figures["max_abs_diff_vs_plain"] = equality_check(
        data_pattern, version, batch_size, num_samples
    )
    figures.update(
        batch_size=batch_size,
        num_samples=num_samples,
        files=len(files),
        dataset_mb=round(sum(os.path.getsize(f) for f in files) / 1e6, 1),
        peak_rss_mb=round(peak_rss_mb(), 1),
    )
    _print_table(rates, cpu, mb, figures)
    print(
        f"largest difference from the plain pipeline (uniform sampling): {figures['max_abs_diff_vs_plain']:.2e}"
    )
    print(json.dumps(figures))
    return figures


def _bytes_per_video(files: list[str]) -> float:
    """Mean record size of the first file, so MB/s is comparable on any data."""
    import tensorflow as tf

    n_records = sum(1 for _ in tf.data.TFRecordDataset(files[:1]))
    return os.path.getsize(files[0]) / max(n_records, 1)


__all__ = ["baseline_dataset", "bench_reader", "equality_check", "floor_datasets"]
