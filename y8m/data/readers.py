"""Streaming tf.data readers for YouTube-8M video-level and frame-level TFRecords.

Records are interleaved across shards, batched, then parsed and decoded per batch (batched
parsing is several times faster than parsing one record at a time). Frame sampling happens on
the uint8 codes before dequantisation, so only the sampled frames are converted to floats.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import tensorflow as tf

from y8m.data import records, specs
from y8m.data.tfrecord_check import count_framed_records
from y8m.errors import UsageError
from y8m.fileio import expand_pattern

SAMPLE_MODES = ("random", "ordered", "uniform")


@dataclasses.dataclass
class CorruptReport:
    """What `skip_corrupt` skipped: file -> (records kept, problem). Thread-safe."""

    skipped: dict = dataclasses.field(default_factory=dict)
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)

    def add(self, path: str, kept: int, problem: str) -> None:
        with self._lock:
            self.skipped[path] = (kept, problem)

    def summary(self) -> str:
        if not self.skipped:
            return "no corrupt files"
        parts = [
            f"{p} ({problem}; kept {kept} records)" for p, (kept, problem) in self.skipped.items()
        ]
        return f"skipped the damaged part of {len(parts)} file(s): " + "; ".join(parts)


def read_frames(
    pattern: str,
    *,
    version: int = specs.DEFAULT_VERSION,
    feature_names=None,
    feature_sizes=None,
    num_classes: int | None = None,
    batch_size: int = 80,
    sample: str = "ordered",
    num_samples: int = specs.MAX_FRAMES,
    max_frames: int = specs.MAX_FRAMES,
    shuffle: bool = False,
    repeat: bool = False,
    seed: int | None = None,
    skip_corrupt: bool = False,
    report: CorruptReport | None = None,
    num_parallel_reads: int | None = None,
    drop_remainder: bool = False,
    shard: tuple[int, int] | None = None,
    prefetch: int | None = tf.data.AUTOTUNE,
) -> tf.data.Dataset:
    """Frame-level batches: `{id, <feature>..., num_frames, labels}`.

    Args:
        pattern: glob (or comma-separated globs) of frame-level TFRecords, or a
            `tf.data.Dataset` of serialized records (parsed the same way).
        version: dataset release (2017, 2018, 2019): fixes the id key and class count.
        feature_names, feature_sizes: streams to read, e.g. "rgb,audio" / "1024,128".
        num_classes: width of the multi-hot labels; the release's by default.
        batch_size: videos per batch.
        sample: "ordered" (first `max_frames` frames, zero padded, for RNNs and evaluation),
            "random" (`num_samples` frames drawn with replacement from the real frames) or
            "uniform" (`num_samples` evenly spaced real frames).
        num_samples: frames per video for "random" and "uniform".
        max_frames: frames considered per video (the official 300).
        shuffle: shuffle shards and records (training).
        repeat: loop forever (training counts steps, not epochs).
        seed: makes shuffling and random sampling reproducible.
        skip_corrupt: skip the damaged tail of a broken shard instead of stopping; what was
            skipped is recorded in `report`.
        num_parallel_reads: shards read concurrently (default: min(#files, 8)).
        shard: (num_shards, index) to read only every num_shards-th file (multi-worker).

    Returns:
        A dataset of dicts: `id` [B] string, each feature [B, T, D] float32 dequantised with
        the official formula (padding is exactly 0.0), `num_frames` [B] int32 (valid leading
        rows of the feature tensors) and `labels` [B, C] float32 multi-hot. T is the batch's
        longest video (at most `max_frames`) for "ordered" and `num_samples` otherwise.
    """
    parse = frame_parser(
        version=version,
        feature_names=feature_names,
        feature_sizes=feature_sizes,
        num_classes=num_classes,
        sample=sample,
        num_samples=num_samples,
        max_frames=max_frames,
        seed=seed,
    )
    return _parsed_batches(
        pattern,
        parse,
        batch_size=batch_size,
        shuffle=shuffle,
        repeat=repeat,
        seed=seed,
        skip_corrupt=skip_corrupt,
        report=report,
        num_parallel_reads=num_parallel_reads,
        drop_remainder=drop_remainder,
        shard=shard,
        prefetch=prefetch,
        numbered=sample == "random" and seed is not None,
    )


def read_videos(
    pattern: str,
    *,
    version: int = specs.DEFAULT_VERSION,
    feature_names=None,
    feature_sizes=None,
    num_classes: int | None = None,
    batch_size: int = 1024,
    shuffle: bool = False,
    repeat: bool = False,
    seed: int | None = None,
    skip_corrupt: bool = False,
    report: CorruptReport | None = None,
    num_parallel_reads: int | None = None,
    drop_remainder: bool = False,
    shard: tuple[int, int] | None = None,
    prefetch: int | None = tf.data.AUTOTUNE,
) -> tf.data.Dataset:
    """Video-level batches: `{id, mean_rgb, mean_audio, labels}` (features as float32 [B, D]).

    Arguments as `read_frames`; video-level features are stored as floats, not quantised.
    """
    parse = video_parser(
        version=version,
        feature_names=feature_names,
        feature_sizes=feature_sizes,
        num_classes=num_classes,
    )
    return _parsed_batches(
        pattern,
        parse,
        batch_size=batch_size,
        shuffle=shuffle,
        repeat=repeat,
        seed=seed,
        skip_corrupt=skip_corrupt,
        report=report,
        num_parallel_reads=num_parallel_reads,
        drop_remainder=drop_remainder,
        shard=shard,
        prefetch=prefetch,
    )


def read_records(
    pattern: str,
    *,
    batch_size: int,
    repeat: bool = False,
    num_parallel_reads: int | None = None,
) -> tf.data.Dataset:
    """The serialized records `read_frames` and `read_videos` parse, in the same batches and
    order: string [B] per batch, nothing parsed (the reading floor of `y8m bench reader`).

    Arguments as `read_frames`.
    """
    return _record_batches(
        pattern, batch_size=batch_size, repeat=repeat, num_parallel_reads=num_parallel_reads
    )


def frame_parser(
    *,
    version: int = specs.DEFAULT_VERSION,
    feature_names=None,
    feature_sizes=None,
    num_classes: int | None = None,
    sample: str = "ordered",
    num_samples: int = specs.MAX_FRAMES,
    max_frames: int = specs.MAX_FRAMES,
    seed: int | None = None,
    labels: bool = True,
) -> Callable[[tf.Tensor], dict]:
    """The batched parse `read_frames` maps over records, for use outside tf.data too
    (the serving export parses request strings with it).

    Arguments as `read_frames`; `labels=False` leaves the labels out (and their range check),
    for records whose labels are unknown or irrelevant.

    Returns:
        `parse(serialized, step=None)`: string [B] of `tf.train.SequenceExample`s -> the dict
        `read_frames` yields (without `labels` when `labels=False`). With a `seed`, "random"
        draws of batch number `step` depend only on (seed, step).
    """
    if sample not in SAMPLE_MODES:
        raise UsageError(f"unknown frame sampling {sample!r}: use one of {', '.join(SAMPLE_MODES)}")
    release = specs.release(version)
    features = specs.parse_feature_list(feature_names, feature_sizes, frame_level=True)
    num_classes = int(num_classes or release.num_classes)
    frames = int(max_frames if sample == "ordered" else num_samples)
    if frames <= 0:
        raise UsageError(f"frames per video must be positive, got {frames}")
    context_spec, sequence_spec = records.frame_parse_spec(release, features)

    def parse(serialized, step=None):
        context, sequence, _ = tf.io.parse_sequence_example(
            serialized, context_features=context_spec, sequence_features=sequence_spec
        )
        out = {"id": context[release.id_key]}
        if labels:
            out["labels"] = _multi_hot(context[specs.LABELS_KEY], num_classes)
        first = sequence[features[0].name]
        n0 = tf.minimum(tf.cast(first.row_lengths(), tf.int32), max_frames)  # (B,)
        idx, valid, num_frames = _frame_indices(n0, sample, frames, seed, step)
        for f in features:
            out[f.name] = _gather_frames(sequence[f.name], f.size, idx, valid)
        out["num_frames"] = num_frames
        return out

    return parse


def video_parser(
    *,
    version: int = specs.DEFAULT_VERSION,
    feature_names=None,
    feature_sizes=None,
    num_classes: int | None = None,
    labels: bool = True,
) -> Callable[[tf.Tensor], dict]:
    """The batched parse `read_videos` maps over records: string [B] of `tf.train.Example`s
    -> `{id, <feature>..., labels}`; arguments as `frame_parser`."""
    release = specs.release(version)
    features = specs.parse_feature_list(feature_names, feature_sizes, frame_level=False)
    num_classes = int(num_classes or release.num_classes)
    spec = records.video_parse_spec(release, features)

    def parse(serialized):
        parsed = tf.io.parse_example(serialized, spec)
        out = {"id": parsed[release.id_key]}
        if labels:
            out["labels"] = _multi_hot(parsed[specs.LABELS_KEY], num_classes)
        for f in features:
            out[f.name] = parsed[f.name]
        return out

    return parse


def iterate(dataset: tf.data.Dataset, pattern: str) -> Iterator[dict]:
    """Iterates a reader's dataset as numpy dicts, turning data errors into UsageErrors
    that name the damaged file."""
    iterator = iter(dataset)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except tf.errors.OpError as err:
            raise data_error(err, pattern) from None
        yield {k: v.numpy() for k, v in batch.items()}


# A tf.data assertion whose message starts with this marker is shown to the user as it is.
USAGE_MARKER = "y8m-usage:"


def data_error(err: Exception, pattern: str) -> Exception:
    """The user-facing error for a tf.data failure: names the file where it can be found."""
    message = str(err)
    if isinstance(err, tf.errors.DataLossError):
        culprit = locate_corrupt_file(expand_pattern(pattern))
        where = f"in {culprit[0]} ({culprit[1]})" if culprit else f"in files matching {pattern!r}"
        return UsageError(f"corrupt TFRecord data {where}; re-download it or pass --skip_corrupt")
    if USAGE_MARKER in message:  # a pipeline's own check, its message written for the user
        line = message.split(USAGE_MARKER, 1)[1].splitlines()[0]
        return UsageError(" ".join(line.replace("] [", " ").strip("[] ").split())[:500])
    if "label index >= num_classes" in message:
        limit = message.split("label index >= num_classes (", 1)[1].split(")", 1)[0]
        return UsageError(
            f"records in {pattern!r} have labels >= {limit} classes: pass the right --version or --num_classes"
        )
    if isinstance(err, tf.errors.InvalidArgumentError):
        first = message.strip().splitlines()[0][:300] if message.strip() else type(err).__name__
        return UsageError(
            f"records in {pattern!r} do not match the expected format ({first}); "
            "check --version, --feature_names/--feature_sizes and frame vs video-level data"
        )
    return err


def locate_corrupt_file(files: Sequence[str]) -> tuple[str, str] | None:
    """Reads each file on its own to find the first one TensorFlow cannot read."""
    for path in files:
        n = 0
        try:
            for _ in tf.data.TFRecordDataset(path):
                n += 1
        except tf.errors.DataLossError:
            return path, f"unreadable record {n}"
        count, problem = count_framed_records(path)
        if problem:
            return path, problem
    return None


def detect_layout(path: str) -> dict:
    """Looks at the first record of a file: `{"frame_level": bool, "version": int|None,
    "keys": [context or feature keys], "features": [per-frame feature lists, or the keys]}`."""
    try:
        first = next(iter(tf.data.TFRecordDataset(path).take(1)), None)
    except tf.errors.OpError as err:
        raise data_error(err, path) from None
    if first is None:
        return {"frame_level": None, "version": None, "keys": [], "features": []}
    raw = first.numpy()
    seq = tf.train.SequenceExample.FromString(raw)
    if seq.feature_lists.feature_list:
        keys = list(seq.context.feature)
        features = list(seq.feature_lists.feature_list)
        frame_level = True
    else:
        keys = list(tf.train.Example.FromString(raw).features.feature)
        features = keys
        frame_level = False
    version = None
    if "video_id" in keys:
        version = 2017
    elif "id" in keys:
        version = 2019 if specs.SEGMENT_LABELS_KEY in keys else 2018
    return {
        "frame_level": frame_level,
        "version": version,
        "keys": sorted(keys),
        "features": sorted(features),
    }


def read_labels(pattern: str, version: int | None = None) -> pd.DataFrame:  # noqa: F821
    """Ground truth of video- or frame-level records: DataFrame with `id` (str), `labels` (list of int)."""
    import pandas as pd

    files = expand_pattern(pattern, "TFRecord files")
    layout = detect_layout(files[0])
    release = specs.release(version or layout["version"])
    ids, labels = [], []
    for batch in iterate(_context_batches(pattern, release, layout["frame_level"], False), pattern):
        ids.extend(x.decode() for x in batch["id"])
        labels.extend(_split_ragged(batch["labels_values"], batch["labels_lengths"]))
    return pd.DataFrame({"id": ids, "labels": labels})


def read_segment_ratings(pattern: str) -> pd.DataFrame:  # noqa: F821
    """Rated segments of 2019 validation records: DataFrame `id`, `class`, `start_time`, `score`."""
    import pandas as pd

    release = specs.release(2019)
    rows = {"id": [], "class": [], "start_time": [], "score": []}
    ds = _context_batches(pattern, release, True, True)
    for batch in iterate(ds, pattern):
        counts = batch["segment_lengths"]
        rows["id"].extend(np.repeat([x.decode() for x in batch["id"]], counts))
        rows["class"].append(batch["segment_labels"])
        rows["start_time"].append(batch["segment_start_times"])
        rows["score"].append(batch["segment_scores"])
    frame = {
        "id": np.asarray(rows["id"], dtype=object),
        "class": np.concatenate(rows["class"]).astype(np.int64)
        if rows["class"]
        else np.zeros(0, np.int64),
        "start_time": np.concatenate(rows["start_time"]).astype(np.int64)
        if rows["start_time"]
        else np.zeros(0, np.int64),
        "score": np.concatenate(rows["score"]).astype(np.float32)
        if rows["score"]
        else np.zeros(0, np.float32),
    }
    return pd.DataFrame(frame)


# ---------------------------------------------------------------------------------------------
# Internals


def _parsed_batches(
    pattern, parse, *, shuffle, prefetch, numbered=False, **options
) -> tf.data.Dataset:
    """Record batches of `pattern` mapped through the batched `parse`, then prefetched.
    `pattern` may also be a dataset of serialized records made in memory (`y8m predict
    --videos`): they are parsed exactly as records read from files. `numbered` passes each
    batch's number to `parse` as `step`."""
    if isinstance(pattern, tf.data.Dataset):
        ds = pattern.batch(int(options["batch_size"]))
    else:
        ds = _record_batches(pattern, shuffle=shuffle, **options)
    parallel = dict(num_parallel_calls=tf.data.AUTOTUNE, deterministic=not shuffle)
    if numbered:
        # Parallel map calls take a stateful generator's draws in whatever order they run,
        # so seeded draws are keyed by the batch's number instead (the same on every run).
        ds = ds.enumerate().map(lambda step, records: parse(records, step=step), **parallel)
    else:
        ds = ds.map(parse, **parallel)
    return ds.prefetch(prefetch) if prefetch else ds


def _record_batches(
    pattern,
    *,
    batch_size,
    shuffle=False,
    repeat=False,
    seed=None,
    skip_corrupt=False,
    report=None,
    num_parallel_reads=None,
    drop_remainder=False,
    shard=None,
) -> tf.data.Dataset:
    files = expand_pattern(pattern, "TFRecord files")
    if int(batch_size) <= 0:
        raise UsageError(f"--batch_size must be positive, got {batch_size}")
    if shard:
        num_shards, index = shard
        # A training worker without files would stall its peers; a reading worker just
        # contributes nothing.
        if repeat and len(files) < num_shards:
            raise UsageError(
                f"{len(files)} file(s) cannot be sharded over {num_shards} workers: use more shards"
            )
        files = files[index::num_shards]
    # Checking the framing up front (a seek per record, no payload reads) is what lets a
    # truncated shard be named; TensorFlow's reader would silently stop early.
    counts = _checked_counts(files, skip_corrupt, report if report is not None else CorruptReport())
    files_ds = tf.data.Dataset.from_tensor_slices(
        (tf.constant(files, tf.string, shape=[len(files)]), np.asarray(counts, np.int64))
    )
    if shuffle:
        files_ds = files_ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        files_ds = files_ds.repeat()

    def per_file(path, count):
        # Unbuffered: the files are local (`expand_pattern` globs the file system), so each
        # record is read straight into its string; a read buffer would copy every byte once
        # more (a third of the reading CPU, docs/performance.md "Reader").
        return tf.data.TFRecordDataset(path, buffer_size=0).take(count)

    cycle = int(num_parallel_reads or max(min(len(files), 8), 1))
    ds = files_ds.interleave(
        per_file,
        cycle_length=cycle,
        block_length=1,
        # Reading threads beyond the cores only add context switches; the `cycle` files
        # stay interleaved in the same order whatever the number of threads.
        num_parallel_calls=max(min(cycle, os.cpu_count() or cycle), 1),
        deterministic=not shuffle,
    )
    if skip_corrupt:
        ds = ds.ignore_errors(log_warning=True)
    if shuffle:
        ds = ds.shuffle(max(4 * int(batch_size), 256), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(int(batch_size), drop_remainder=drop_remainder)


def _checked_counts(files: list[str], skip_corrupt: bool, report: CorruptReport) -> list[int]:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(count_framed_records, files))
    counts = []
    for path, (count, problem) in zip(files, results):
        if problem:
            if not skip_corrupt:
                raise UsageError(
                    f"corrupt TFRecord file {path}: {problem}; re-download it or pass --skip_corrupt"
                )
            report.add(path, count, problem)
        counts.append(count)
    return counts


def _multi_hot(sparse_labels: tf.SparseTensor, num_classes: int) -> tf.Tensor:
    values = sparse_labels.values
    ok = tf.debugging.assert_less(
        values,
        tf.cast(num_classes, values.dtype),
        message=f"label index >= num_classes ({num_classes}): pass the right --version or --num_classes",
    )
    with tf.control_dependencies([ok]):
        dense = tf.sparse.to_indicator(sparse_labels, num_classes)
    return tf.cast(dense, tf.float32)


def _frame_indices(n0: tf.Tensor, sample: str, frames: int, seed: int | None, step=None):
    """Per video frame positions [B, N], their validity [B, N] and the valid count [B]
    ("random" with a seed and a batch number `step`: drawn from (seed, step) alone)."""
    batch = tf.shape(n0)[0]
    has = n0 > 0
    if sample == "ordered":
        # Pad only to the longest video of the batch (at most max_frames): recurrent and
        # averaging models then skip work on padding that no video in the batch needs.
        frames = tf.maximum(tf.reduce_max(n0), 1)
        idx = tf.broadcast_to(tf.range(frames, dtype=tf.int32)[None, :], [batch, frames])
        valid = idx < n0[:, None]
        return idx, valid, n0
    if sample == "random":
        if seed is not None and step is not None:
            key = tf.stack([tf.constant(seed, tf.int64), tf.cast(step, tf.int64)])
            u = tf.random.stateless_uniform([batch, frames], seed=key)
        else:
            u = tf.random.uniform([batch, frames], seed=seed)
        idx = tf.cast(tf.floor(u * tf.cast(n0, tf.float32)[:, None]), tf.int32)
    else:  # uniform: centres of `frames` equal bins over the real frames
        pos = (tf.range(frames, dtype=tf.float32) + 0.5) / frames
        idx = tf.cast(tf.floor(pos[None, :] * tf.cast(n0, tf.float32)[:, None]), tf.int32)
    idx = tf.minimum(idx, tf.maximum(n0 - 1, 0)[:, None])
    valid = tf.broadcast_to(has[:, None], [batch, frames])
    return idx, valid, tf.where(has, frames, 0)


def _dequantize(codes: tf.Tensor) -> tf.Tensor:
    """uint8 codes -> float32 with the official formula, in one fused pass.

    `tf.quantization.dequantize` in MIN_COMBINED mode computes `min + q * (max - min) / 255`;
    with min = 4/512 - 2 and max - min = 4 that is exactly `q * 4/255 + 4/512 - 2`.
    """
    low = specs.DEQUANTIZE_BIAS
    return tf.quantization.dequantize(
        tf.bitcast(codes, tf.quint8), low, low + 255 * specs.DEQUANTIZE_SCALE, mode="MIN_COMBINED"
    )


def _gather_frames(ragged_bytes: tf.RaggedTensor, size: int, idx, valid) -> tf.Tensor:
    """Dequantised [B, N, D] frames at `idx`; invalid positions (and short streams) are 0.0."""
    codes = tf.reshape(tf.io.decode_raw(ragged_bytes.flat_values, tf.uint8), [-1, size])
    lengths = tf.cast(ragged_bytes.row_lengths(), tf.int32)
    starts = tf.cast(ragged_bytes.row_starts(), tf.int32)
    valid = tf.logical_and(valid, idx < lengths[:, None])  # a stream may be shorter than rgb
    # Sample the 1-byte codes first and dequantise only what was drawn: the float work is
    # then N rows per video in one fused op, whatever the video's length. Invalid positions
    # read any real row (or the zero row of an all-empty batch) and are zeroed below.
    codes = tf.cond(tf.shape(codes)[0] > 0, lambda: codes, lambda: tf.zeros([1, size], tf.uint8))
    rows = tf.minimum(
        starts[:, None] + tf.minimum(idx, tf.maximum(lengths - 1, 0)[:, None]),
        tf.shape(codes)[0] - 1,
    )
    values = _dequantize(tf.gather(codes, rows))
    # Padding must be exactly 0.0 (as the official reader pads), not dequantised 0; the extra
    # pass is skipped for the usual batch where every sampled position is a real frame.
    return tf.cond(
        tf.reduce_all(valid),
        lambda: values,
        lambda: values * tf.cast(valid, tf.float32)[:, :, None],
    )


def _context_batches(pattern, release, frame_level, segments):
    """Batches of context fields only (no frames decoded): ids, labels and segment ratings."""
    context_spec = {
        release.id_key: tf.io.FixedLenFeature([], tf.string),
        specs.LABELS_KEY: tf.io.VarLenFeature(tf.int64),
    }
    if segments:
        context_spec.update(records.frame_parse_spec(release, (), segments=True)[0])

    def parse(serialized):
        if frame_level:
            context, _, _ = tf.io.parse_sequence_example(serialized, context_features=context_spec)
        else:
            context = tf.io.parse_example(serialized, context_spec)
        out = {"id": context[release.id_key]}
        labels = tf.RaggedTensor.from_sparse(context[specs.LABELS_KEY])
        out["labels_values"], out["labels_lengths"] = labels.flat_values, labels.row_lengths()
        if segments:
            seg = {
                k: tf.RaggedTensor.from_sparse(context[k])
                for k in (
                    specs.SEGMENT_LABELS_KEY,
                    specs.SEGMENT_START_TIMES_KEY,
                    specs.SEGMENT_SCORES_KEY,
                )
            }
            out["segment_labels"] = seg[specs.SEGMENT_LABELS_KEY].flat_values
            out["segment_start_times"] = seg[specs.SEGMENT_START_TIMES_KEY].flat_values
            out["segment_scores"] = seg[specs.SEGMENT_SCORES_KEY].flat_values
            out["segment_lengths"] = seg[specs.SEGMENT_LABELS_KEY].row_lengths()
        return out

    ds = _record_batches(pattern, batch_size=1024)
    return ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)


def _split_ragged(values: np.ndarray, lengths: np.ndarray) -> list[list[int]]:
    return [list(map(int, part)) for part in np.split(values, np.cumsum(lengths)[:-1])]
