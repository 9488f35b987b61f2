"""Encode and parse YouTube-8M records (tf.train.Example / SequenceExample) from the specs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from y8m.data import specs


def _bytes(values: Sequence[bytes]) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))


def _int64(values) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def _float(values) -> tf.train.Feature:
    return tf.train.Feature(
        float_list=tf.train.FloatList(value=np.asarray(values, np.float32).ravel())
    )


def encode_video_example(
    video_id: str,
    labels: Sequence[int],
    features: dict[str, np.ndarray],
    release: specs.Release,
) -> bytes:
    """A video-level `tf.train.Example`: id, labels, and float features such as `mean_rgb`."""
    feature = {
        release.id_key: _bytes([video_id.encode()]),
        specs.LABELS_KEY: _int64(labels),
    }
    for name, value in features.items():
        feature[name] = _float(value)
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def encode_frame_example(
    video_id: str,
    labels: Sequence[int],
    frames: dict[str, np.ndarray],
    release: specs.Release,
    segments: dict[str, Sequence] | None = None,
    context_floats: dict[str, np.ndarray] | None = None,
) -> bytes:
    """A frame-level `tf.train.SequenceExample`.

    Args:
        frames: feature name -> uint8 array [T, D]; one bytes entry per frame (second).
        context_floats: more float context features, such as the official extractor's
            `mean_rgb` / `mean_audio` (means of the unquantised features).
        segments: for 2019 validate/test records, parallel lists under the keys
            `segment_labels`, `segment_start_times`, `segment_scores`.
    """
    context = {
        release.id_key: _bytes([video_id.encode()]),
        specs.LABELS_KEY: _int64(labels),
    }
    if segments:
        context[specs.SEGMENT_LABELS_KEY] = _int64(segments[specs.SEGMENT_LABELS_KEY])
        starts = list(segments[specs.SEGMENT_START_TIMES_KEY])
        context[specs.SEGMENT_START_TIMES_KEY] = _int64(starts)
        context[specs.SEGMENT_END_TIMES_KEY] = _int64([s + specs.SEGMENT_SIZE for s in starts])
        context[specs.SEGMENT_SCORES_KEY] = _float(segments[specs.SEGMENT_SCORES_KEY])
    for name, value in (context_floats or {}).items():
        context[name] = _float(value)
    feature_lists = {}
    for name, value in frames.items():
        value = np.asarray(value)
        if value.dtype != np.uint8:
            raise TypeError(f"frame feature {name!r} must be quantised uint8, got {value.dtype}")
        feature_lists[name] = tf.train.FeatureList(
            feature=[_bytes([row.tobytes()]) for row in value]
        )
    return tf.train.SequenceExample(
        context=tf.train.Features(feature=context),
        feature_lists=tf.train.FeatureLists(feature_list=feature_lists),
    ).SerializeToString()


def video_parse_spec(release: specs.Release, features: Sequence[specs.Feature]) -> dict:
    """`tf.io.parse_example` spec for video-level records."""
    spec = {
        release.id_key: tf.io.FixedLenFeature([], tf.string),
        specs.LABELS_KEY: tf.io.VarLenFeature(tf.int64),
    }
    for f in features:
        spec[f.name] = tf.io.FixedLenFeature([f.size], tf.float32)
    return spec


def frame_parse_spec(
    release: specs.Release, features: Sequence[specs.Feature], segments: bool = False
) -> tuple[dict, dict]:
    """(context, sequence) specs for `tf.io.parse_sequence_example` on frame-level records.

    Frames are parsed as ragged byte strings so a batch of videos of different lengths can
    be parsed in one call and decoded without padding.
    """
    context = {
        release.id_key: tf.io.FixedLenFeature([], tf.string),
        specs.LABELS_KEY: tf.io.VarLenFeature(tf.int64),
    }
    if segments:
        context[specs.SEGMENT_LABELS_KEY] = tf.io.VarLenFeature(tf.int64)
        context[specs.SEGMENT_START_TIMES_KEY] = tf.io.VarLenFeature(tf.int64)
        context[specs.SEGMENT_SCORES_KEY] = tf.io.VarLenFeature(tf.float32)
    sequence = {f.name: tf.io.RaggedFeature(tf.string) for f in features}
    return context, sequence


def write_tfrecord(path: str, records) -> int:
    """Writes serialized records to `path` atomically; returns how many were written."""
    from y8m.fileio import atomic_path

    n = 0
    with atomic_path(path) as tmp, tf.io.TFRecordWriter(tmp) as writer:
        for record in records:
            writer.write(record)
            n += 1
    return n
