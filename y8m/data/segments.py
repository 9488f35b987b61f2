"""Segment-level training examples from 2019 records with segment ratings.

One example per rated segment, as the official 2019 segment reader makes them
(google/youtube-8m `readers.py`, `YT8MFrameFeatureReader(segment_labels=True)`): the
`specs.SEGMENT_SIZE` frames from the segment's start time, the rated classes as labels and
weights that are 1 only for the rated classes. Ratings of one video are grouped by start time,
so a segment rated for several classes is one example with all of them set.

Records are read with the same batched pipeline as `read_frames` (interleave, shuffle,
repeat, shard, corrupt-file checks); each record batch is parsed in one call and expanded to
its segments with tensor ops, then re-batched to `batch_size` segments.
"""

from __future__ import annotations

import struct

import tensorflow as tf

from y8m.data import records, specs
from y8m.data.readers import (
    CorruptReport,
    _dequantize,
    _record_batches,
)
from y8m.errors import UsageError
from y8m.fileio import expand_pattern

# (video row, start) pairs are packed into one int64 key to group ratings by segment.
_START_LIMIT = 1 << 31


def read_segment_examples(
    pattern: str,
    *,
    version: int = 2019,
    feature_names=None,
    feature_sizes=None,
    num_classes: int | None = None,
    batch_size: int = 64,
    shuffle: bool = False,
    repeat: bool = False,
    seed: int | None = None,
    shard: tuple[int, int] | None = None,
    skip_corrupt: bool = False,
    report: CorruptReport | None = None,
) -> tf.data.Dataset:
    """Segment batches: `{id, <feature>..., num_frames, labels, label_weights}`.

    Args:
        pattern: glob (or comma-separated globs) of 2019 frame-level records with segment
            ratings (the validate split; train and test records carry none).
        version: dataset release; only releases with segment ratings (2019) are accepted.
        feature_names, feature_sizes: streams to read, e.g. "rgb,audio" / "1024,128".
        num_classes: width of `labels`/`label_weights`; the release's (3862) by default.
        batch_size: segments per batch (the last batch may be smaller).
        shuffle: shuffle shards, records and segments (training).
        repeat: loop forever.
        seed: seeds the shuffle (the order also depends on parallel parsing, as in read_frames).
        shard: (num_shards, index) to read only every num_shards-th file (multi-worker).
        skip_corrupt, report: as `read_frames`: skip the damaged tail of a broken shard and
            record it in `report`.

    Returns:
        A dataset of dicts: `id` [B] string `videoid:start` (`specs.segment_id`), each
        feature [B, 5, D] float32 holding frames start..start+4 dequantised as `read_frames`
        does (rows past the end of the video are exactly 0.0), `num_frames` [B] int32
        (5, or fewer when the video ends inside the segment), `labels` [B, C] float32 (the
        score, 0 or 1, of each rated class; 0 elsewhere) and `label_weights` [B, C] float32
        (1 for the segment's rated classes, 0 for all others). Segments of a video come in
        order of their first rating, videos in record order (unless shuffled).

    Raises:
        UsageError: naming the first file whose first record has no segment ratings (checked
            eagerly, one record per file). Records without ratings deeper in a file are
            skipped silently: they contribute no examples.
    """
    release = specs.release(version)
    if not release.has_segments:
        raise UsageError(
            f"the {release.version} release has no segment ratings: pass --version=2019"
        )
    features = specs.parse_feature_list(feature_names, feature_sizes, frame_level=True)
    num_classes = int(num_classes or release.num_classes)
    batch_size = int(batch_size)
    context_spec, sequence_spec = records.frame_parse_spec(release, features, segments=True)

    # The record pipeline checks file framing first; the ratings check then reads only files
    # known to be intact (or their good part with skip_corrupt).
    ds = _record_batches(
        pattern,
        batch_size=batch_size,
        shuffle=shuffle,
        repeat=repeat,
        seed=seed,
        skip_corrupt=skip_corrupt,
        report=report,
        shard=shard,
    )
    _check_first_records(_sharded_files(pattern, shard), skip_corrupt)

    def parse(serialized):
        context, sequence, _ = tf.io.parse_sequence_example(
            serialized, context_features=context_spec, sequence_features=sequence_spec
        )
        return _segments(context, sequence, release, features, num_classes)

    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=not shuffle)
    ds = ds.unbatch()
    if shuffle:  # segments of one video would otherwise stay neighbours
        ds = ds.shuffle(max(4 * batch_size, 256), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _segments(context, sequence, release, features, num_classes) -> dict:
    """One record batch's parsed fields -> its [S, ...] segment examples."""
    seg = {
        k: tf.RaggedTensor.from_sparse(context[k])
        for k in (specs.SEGMENT_LABELS_KEY, specs.SEGMENT_START_TIMES_KEY, specs.SEGMENT_SCORES_KEY)
    }
    classes = seg[specs.SEGMENT_LABELS_KEY]
    starts = seg[specs.SEGMENT_START_TIMES_KEY]
    scores = seg[specs.SEGMENT_SCORES_KEY]
    checks = [
        tf.debugging.assert_equal(
            classes.row_lengths(),
            starts.row_lengths(),
            message="segment_labels and segment_start_times differ in length",
        ),
        tf.debugging.assert_equal(
            classes.row_lengths(),
            scores.row_lengths(),
            message="segment_labels and segment_scores differ in length",
        ),
        tf.debugging.assert_non_negative(
            starts.flat_values, message="negative segment_start_times"
        ),
        tf.debugging.assert_less(
            starts.flat_values,
            tf.constant(_START_LIMIT, tf.int64),
            message="segment_start_times too large",
        ),
        tf.debugging.assert_less(
            classes.flat_values,
            tf.constant(num_classes, tf.int64),
            message=f"label index >= num_classes ({num_classes}): pass the right --version or --num_classes",
        ),
        tf.debugging.assert_non_negative(classes.flat_values, message="negative segment_labels"),
    ]
    with tf.control_dependencies(checks):  # everything below reads these checked values
        video_of_rating = classes.value_rowids()  # (R,) int64
        class_of_rating = tf.identity(classes.flat_values)
        start_of_rating = tf.identity(starts.flat_values)
    # Group ratings by (video, start): unique keys keep first-appearance order, as the
    # official reader's tf.unique over start times does per video.
    keys = video_of_rating * _START_LIMIT + start_of_rating
    unique_keys, segment_of_rating = tf.unique(keys, out_idx=tf.int64)
    video = unique_keys // _START_LIMIT  # (S,)
    start = tf.cast(unique_keys % _START_LIMIT, tf.int32)  # (S,)
    num_segments = tf.shape(unique_keys, out_type=tf.int64)[0]

    index = tf.stack([segment_of_rating, class_of_rating], axis=1)  # (R, 2)
    zeros = tf.zeros(tf.stack([num_segments, num_classes]), tf.float32)
    out = {
        "id": tf.strings.join(
            [tf.gather(context[release.id_key], video), tf.strings.as_string(start)],
            separator=":",
        ),
        # max, not sum: a (segment, class) rated twice stays a 0/1 label and weight.
        "labels": tf.tensor_scatter_nd_max(zeros, index, scores.flat_values),
        "label_weights": tf.tensor_scatter_nd_max(zeros, index, tf.ones_like(scores.flat_values)),
    }
    offsets = tf.range(specs.SEGMENT_SIZE, dtype=tf.int32)[None, :]
    positions = start[:, None] + offsets  # (S, 5) frame numbers in the video
    first = sequence[features[0].name]
    length = tf.gather(tf.cast(first.row_lengths(), tf.int32), video)
    out["num_frames"] = tf.clip_by_value(length - start, 0, specs.SEGMENT_SIZE)
    for f in features:
        out[f.name] = _segment_frames(sequence[f.name], f.size, video, positions)
    return out


def _segment_frames(ragged_bytes: tf.RaggedTensor, size: int, video, positions) -> tf.Tensor:
    """Dequantised [S, 5, D] frames of `video` at `positions`; positions past the end are 0.0.

    Only the segments' byte strings are gathered and decoded, never the whole video.
    """
    lengths = tf.gather(tf.cast(ragged_bytes.row_lengths(), tf.int32), video)[:, None]
    row_starts = tf.gather(tf.cast(ragged_bytes.row_starts(), tf.int32), video)[:, None]
    valid = positions < lengths  # (S, 5)
    flat = ragged_bytes.flat_values
    # Invalid positions read an appended all-zero frame, so no index ever falls outside.
    padded = tf.concat([flat, tf.constant([b"\0" * size])], axis=0)
    rows = tf.where(valid, row_starts + positions, tf.shape(flat)[0])
    codes = tf.io.decode_raw(tf.gather(padded, rows), tf.uint8)  # (S, 5, D)
    codes = tf.ensure_shape(codes, [None, specs.SEGMENT_SIZE, size])
    values = _dequantize(codes)
    return tf.cond(
        tf.reduce_all(valid),
        lambda: values,
        lambda: values * tf.cast(valid, tf.float32)[:, :, None],
    )


def _sharded_files(pattern: str, shard) -> list[str]:
    files = expand_pattern(pattern, "TFRecord files")
    if shard:
        num_shards, index = shard
        files = files[index::num_shards]
    return files


def _check_first_records(files: list[str], skip_corrupt: bool) -> None:
    """UsageError naming the first file whose first record carries no segment ratings."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(_first_record_ratings, files))
    for path, problem in zip(files, results):
        if problem is None or (skip_corrupt and problem.startswith("unreadable")):
            continue
        raise UsageError(
            f"{path}: {problem}; the segment reader needs 2019 validate records with segment "
            "ratings (train and test records have none)"
        )


def _first_record_ratings(path: str) -> str | None:
    """What is wrong with the ratings of the file's first record, or None. An empty file is fine."""
    with open(path, "rb") as f:
        header = f.read(12)
        if len(header) < 12:
            return None  # empty (or truncated: the framing check names it)
        (length,) = struct.unpack("<Q", header[:8])
        payload = f.read(length)
    try:
        example = tf.train.SequenceExample.FromString(payload)
    except Exception:  # noqa: BLE001 - protobuf's DecodeError
        return "unreadable first record"
    context = example.context.feature
    video_id = ""
    for key in ("id", "video_id"):
        if key in context and context[key].bytes_list.value:
            video_id = context[key].bytes_list.value[0].decode(errors="replace")
            break
    ratings = (
        len(context[specs.SEGMENT_LABELS_KEY].int64_list.value)
        if (specs.SEGMENT_LABELS_KEY in context)
        else 0
    )
    if ratings == 0:
        return f"first record (video {video_id or '?'}) has no segment ratings"
    return None
