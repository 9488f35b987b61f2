"""`y8m inspect`: counts, shapes, label histogram and per-record validation against the specs."""

from __future__ import annotations

import collections
import os

import numpy as np

from y8m.data import specs
from y8m.data.tfrecord_check import count_framed_records
from y8m.fileio import expand_pattern


def inspect_records(
    pattern: str, version: int | None = None, max_problems: int = 20, progress: bool = True
) -> dict:
    """Reads every record of every matching file and checks it against the release's spec.

    Args:
        pattern: TFRecord glob.
        version: release to validate against; detected from the first record if None.
        max_problems: problems listed in full (all are counted).

    Returns:
        dict with `files` (per-shard record counts), `videos`, `frame_level`, `version`,
        `num_frames` stats, `labels_per_video`, `top_labels`, `feature_shapes`, `problems`
        (list of "file:record: message"), `num_problems` and `valid`.
    """
    import tensorflow as tf
    from tqdm import tqdm

    from y8m.data.readers import detect_layout

    files = expand_pattern(pattern, "TFRecord files")
    layout = detect_layout(files[0])
    release = specs.release(version or layout["version"] or specs.DEFAULT_VERSION)
    frame_level = bool(layout["frame_level"])
    label_hist = collections.Counter()
    per_file, frames, labels_per_video, problems = {}, [], [], []
    shapes: dict[str, set] = collections.defaultdict(set)
    seen_ids: set[str] = set()
    num_problems = 0

    def problem(path, i, message):
        nonlocal num_problems
        num_problems += 1
        if len(problems) < max_problems:
            problems.append(f"{path}:{i}: {message}")

    bar = tqdm(
        total=sum(os.path.getsize(f) for f in files),
        unit="B",
        unit_scale=True,
        desc="inspect",
        disable=not progress,
    )
    for path in files:
        n = 0
        try:
            for raw in tf.data.TFRecordDataset(path):
                raw = raw.numpy()
                checker = _check_frame if frame_level else _check_video
                vid, labels, nf, shape_info, issues = checker(raw, release)
                for message in issues:
                    problem(path, n, message)
                if vid in seen_ids:
                    problem(path, n, f"duplicate video id {vid!r}")
                seen_ids.add(vid)
                label_hist.update(labels)
                labels_per_video.append(len(labels))
                if nf is not None:
                    frames.append(nf)
                for k, v in shape_info.items():
                    shapes[k].add(v)
                n += 1
                bar.update(len(raw) + 16)
        except tf.errors.OpError as err:
            problem(path, n, f"unreadable record ({str(err).splitlines()[0][:120]})")
        _, framing = count_framed_records(path)
        if framing:
            problem(path, n, framing)
        per_file[path] = n
    bar.close()
    frames_arr = np.asarray(frames) if frames else np.zeros(0)
    return {
        "version": release.version,
        "frame_level": frame_level,
        "files": per_file,
        "videos": int(sum(per_file.values())),
        "num_frames": {
            "min": int(frames_arr.min()) if frames_arr.size else None,
            "mean": float(frames_arr.mean()) if frames_arr.size else None,
            "max": int(frames_arr.max()) if frames_arr.size else None,
        },
        "labels_per_video": float(np.mean(labels_per_video)) if labels_per_video else 0.0,
        "distinct_labels": len(label_hist),
        "top_labels": label_hist.most_common(10),
        "feature_shapes": {k: sorted(v) for k, v in shapes.items()},
        "problems": problems,
        "num_problems": num_problems,
        "valid": num_problems == 0,
    }


def _context_checks(context, release: specs.Release):
    issues = []
    id_feature = context.get(release.id_key)
    if id_feature is None or len(id_feature.bytes_list.value) != 1:
        other = "id" if release.id_key == "video_id" else "video_id"
        hint = f" (found {other!r}: wrong --version?)" if other in context else ""
        issues.append(f"missing bytes context key {release.id_key!r}{hint}")
        vid = ""
    else:
        vid = id_feature.bytes_list.value[0].decode(errors="replace")
    labels = list(context[specs.LABELS_KEY].int64_list.value) if specs.LABELS_KEY in context else []
    if specs.LABELS_KEY not in context:
        issues.append(f"missing int64 key {specs.LABELS_KEY!r}")
    bad = [x for x in labels if not 0 <= x < release.num_classes]
    if bad:
        issues.append(f"labels out of range [0, {release.num_classes}): {bad[:5]}")
    return vid, labels, issues


def _check_video(raw: bytes, release: specs.Release):
    import tensorflow as tf

    example = tf.train.Example.FromString(raw)
    feature = example.features.feature
    vid, labels, issues = _context_checks(feature, release)
    shapes = {}
    for f in specs.VIDEO_FEATURES:
        if f.name not in feature:
            issues.append(f"missing float feature {f.name!r}")
            continue
        size = len(feature[f.name].float_list.value)
        shapes[f.name] = (size,)
        if size != f.size:
            issues.append(f"{f.name} has {size} floats, expected {f.size}")
    return vid, labels, None, shapes, issues


def _check_frame(raw: bytes, release: specs.Release):
    import tensorflow as tf

    seq = tf.train.SequenceExample.FromString(raw)
    context = seq.context.feature
    vid, labels, issues = _context_checks(context, release)
    lists = seq.feature_lists.feature_list
    shapes, num_frames = {}, None
    for f in specs.FRAME_FEATURES:
        if f.name not in lists:
            issues.append(f"missing frame feature list {f.name!r}")
            continue
        entries = lists[f.name].feature
        sizes = {
            len(e.bytes_list.value[0]) if len(e.bytes_list.value) == 1 else -1 for e in entries
        }
        shapes[f.name] = tuple(sorted(sizes))  # bytes per frame
        if sizes - {f.size}:
            issues.append(
                f"{f.name} frames must be {f.size} uint8 bytes each, found sizes {sorted(sizes)}"
            )
        if f is specs.RGB:
            num_frames = len(entries)
    if num_frames is not None and num_frames > specs.MAX_FRAMES:
        issues.append(f"{num_frames} frames, the release keeps at most {specs.MAX_FRAMES}")
    if specs.SEGMENT_LABELS_KEY in context:
        seg = [
            context[k]
            for k in (
                specs.SEGMENT_LABELS_KEY,
                specs.SEGMENT_START_TIMES_KEY,
                specs.SEGMENT_SCORES_KEY,
            )
        ]
        counts = {
            len(seg[0].int64_list.value),
            len(seg[1].int64_list.value),
            len(seg[2].float_list.value),
        }
        if len(counts) != 1:
            issues.append("segment_labels, segment_start_times and segment_scores differ in length")
        starts = list(seg[1].int64_list.value)
        if any(s % specs.SEGMENT_SIZE for s in starts):
            issues.append(
                f"segment start times must be multiples of {specs.SEGMENT_SIZE}: {starts[:5]}"
            )
        if num_frames is not None and any(s >= num_frames for s in starts):
            issues.append("segment starts beyond the video's frames")
    elif release.has_segments and labels:
        pass  # train and test records of the 2019 layout carry no ratings
    return vid, labels, num_frames, shapes, issues
