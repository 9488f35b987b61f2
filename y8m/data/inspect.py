"""`y8m inspect`: counts, shapes, label histogram and per-record validation against the specs.

The layout (video- or frame-level) and the release are decided from every record, not the
first: 2017 records carry `video_id`, later ones `id`, and a 2018-layout set is 2019 when any
record carries segment ratings (the first records of a 2019 validate shard may have none).
Records without a `labels` key are valid: the official readers give them no labels, and test
shards may leave the key out.
"""

from __future__ import annotations

import collections
import dataclasses
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
        version: release to validate against; detected from all the records if None.
        max_problems: problems listed in full (all are counted).

    Returns:
        dict with `files` (per-shard record counts), `videos`, `frame_level`, `version`,
        `num_frames` stats, `labels_per_video`, `unlabelled_videos` (records with no label,
        valid), `top_labels`, `feature_shapes`, `problems` (list of "file:record: message", or
        "file: message" for a whole file), `problem_counts` (kind of problem -> how many),
        `num_problems` and `valid`.
    """
    files = expand_pattern(pattern, "TFRecord files")
    fixed = specs.release(version) if version else None
    scan = _Scan(files, fixed, None, max_problems, progress)
    frame_level, release = scan.decided_layout(fixed)
    if (frame_level, release.id_key, release.num_classes) != scan.checked_as:
        # The first record misled the checks (mixed or unusual shards): check again as decided.
        scan = _Scan(files, release, frame_level, max_problems, progress)
    frames = np.asarray(scan.frames) if scan.frames else np.zeros(0)
    return {
        "version": release.version,
        "frame_level": frame_level,
        "files": scan.per_file,
        "videos": int(sum(scan.per_file.values())),
        "num_frames": {
            "min": int(frames.min()) if frames.size else None,
            "mean": float(frames.mean()) if frames.size else None,
            "max": int(frames.max()) if frames.size else None,
        },
        "labels_per_video": float(np.mean(scan.labels_per_video)) if scan.labels_per_video else 0.0,
        "unlabelled_videos": int(sum(n == 0 for n in scan.labels_per_video)),
        "distinct_labels": len(scan.label_hist),
        "top_labels": scan.label_hist.most_common(10),
        "feature_shapes": {k: sorted(v) for k, v in scan.shapes.items()},
        "problems": scan.problems,
        "problem_counts": dict(scan.problem_counts),
        "num_problems": int(sum(scan.problem_counts.values())),
        "valid": not scan.problem_counts,
    }


@dataclasses.dataclass
class _Tally:
    """What every record says about the layout, whatever it was checked as."""

    records: int = 0
    frame_level: int = 0  # records with frame feature lists
    video_id: int = 0  # records with the 2017 id key
    id: int = 0  # records with the 2018/2019 id key
    segments: int = 0  # records with segment ratings (2019)

    def add(self, seq) -> None:
        context = seq.context.feature
        self.records += 1
        self.frame_level += bool(seq.feature_lists.feature_list)
        self.video_id += "video_id" in context
        self.id += "id" in context
        self.segments += specs.SEGMENT_LABELS_KEY in context


class _Scan:
    """One pass over the files: the checks (as `release` and `frame_level`, or as the first
    record suggests when they are None), the statistics and the layout tally."""

    def __init__(self, files, release, frame_level, max_problems, progress):
        import tensorflow as tf
        from tqdm import tqdm

        self.release, self.frame_level = release, frame_level
        self.tally = _Tally()
        self.label_hist = collections.Counter()
        self.per_file, self.frames, self.labels_per_video, self.problems = {}, [], [], []
        self.shapes: dict[str, set] = collections.defaultdict(set)
        self.problem_counts = collections.Counter()
        self.max_problems = max_problems
        seen_ids: set[str] = set()
        bar = tqdm(
            total=sum(os.path.getsize(f) for f in files),
            unit="B",
            unit_scale=True,
            desc="inspect",
            disable=not progress,
        )
        for path in files:
            n, unreadable = 0, False
            try:
                for raw in tf.data.TFRecordDataset(path):
                    raw = raw.numpy()
                    seq = tf.train.SequenceExample.FromString(raw)
                    self.tally.add(seq)
                    if self.frame_level is None or self.release is None:
                        self._layout_from(seq)
                    checker = _check_frame if self.frame_level else _check_video
                    vid, labels, nf, shape_info, issues = checker(seq, self.release)
                    for kind, message in issues:
                        self.problem(kind, path, n, message)
                    if vid is not None and vid in seen_ids:
                        self.problem("duplicate video id", path, n, f"duplicate video id {vid!r}")
                    seen_ids.add(vid)
                    self.label_hist.update(labels)
                    self.labels_per_video.append(len(labels))
                    if nf is not None:
                        self.frames.append(nf)
                    for k, v in shape_info.items():
                        self.shapes[k].add(v)
                    n += 1
                    bar.update(len(raw) + 16)
            except tf.errors.OpError as err:
                unreadable = True
                message = f"unreadable record ({str(err).splitlines()[0][:120]})"
                self.problem("unreadable record", path, n, message)
            _, framing = count_framed_records(path)
            if framing:
                self.problem("damaged framing", path, n, framing)
            elif n == 0 and not unreadable:
                self.problem("empty file", path, None, "no records (empty file)")
            self.per_file[path] = n
        bar.close()
        if self.release is None:  # no record at all
            self.release = specs.release(specs.DEFAULT_VERSION)
        # What the checks assumed: a different decision from all the records means a rescan.
        self.checked_as = (bool(self.frame_level), self.release.id_key, self.release.num_classes)

    def problem(self, kind: str, path: str, record: int | None, message: str) -> None:
        self.problem_counts[kind] += 1
        if len(self.problems) < self.max_problems:
            where = path if record is None else f"{path}:{record}"
            self.problems.append(f"{where}: {message}")

    def _layout_from(self, seq) -> None:
        """Checks the first records as their own layout says, until the whole pass decides."""
        if self.frame_level is None:
            self.frame_level = bool(seq.feature_lists.feature_list)
        if self.release is None:
            version = 2017 if "video_id" in seq.context.feature else specs.DEFAULT_VERSION
            self.release = specs.release(version)

    def decided_layout(self, fixed) -> tuple[bool, specs.Release]:
        """(frame_level, release) from every record: the majority layout and id key; 2019 when
        any record of the 2018 layout carries segment ratings. `fixed` overrides the release."""
        tally = self.tally
        if not tally.records:
            return False, fixed or specs.release(specs.DEFAULT_VERSION)
        frame_level = 2 * tally.frame_level >= tally.records
        if fixed is not None:
            return frame_level, fixed
        if tally.video_id > tally.id:
            return frame_level, specs.release(2017)
        if tally.id:
            return frame_level, specs.release(2019 if tally.segments else 2018)
        return frame_level, self.release


def _context_checks(context, release: specs.Release):
    issues = []
    id_feature = context.get(release.id_key)
    if id_feature is None or len(id_feature.bytes_list.value) != 1:
        other = "id" if release.id_key == "video_id" else "video_id"
        hint = f" (found {other!r}: wrong --version?)" if other in context else ""
        issues.append(("missing id", f"missing bytes context key {release.id_key!r}{hint}"))
        vid = None  # reported once, not again as a duplicate
    else:
        vid = id_feature.bytes_list.value[0].decode(errors="replace")
        if not vid or any(c in vid for c in ",\"'\n\r\t "):
            # A Kaggle CSV cannot hold it: the submission writers refuse such ids.
            issues.append(
                (
                    "id unfit for a CSV",
                    f"video id {vid!r} is empty or holds a comma, quote or space",
                )
            )
    # No `labels` key is valid (test shards): the official readers give such a video no labels.
    labels = []
    if specs.LABELS_KEY in context:
        feature = context[specs.LABELS_KEY]
        if feature.WhichOneof("kind") not in (None, "int64_list"):
            issues.append(("labels not int64", f"{specs.LABELS_KEY!r} is not an int64 list"))
        labels = list(feature.int64_list.value)
    bad = [x for x in labels if not 0 <= x < release.num_classes]
    if bad:
        message = f"labels out of range [0, {release.num_classes}): {bad[:5]}"
        issues.append(("labels out of range", message))
    return vid, labels, issues


def _check_video(seq, release: specs.Release):
    # A tf.train.Example parses as a SequenceExample whose context is the Example's features.
    feature = seq.context.feature
    vid, labels, issues = _context_checks(feature, release)
    shapes = {}
    for f in specs.VIDEO_FEATURES:
        if f.name not in feature:
            issues.append(("missing feature", f"missing float feature {f.name!r}"))
            continue
        size = len(feature[f.name].float_list.value)
        shapes[f.name] = (size,)
        if size != f.size:
            issues.append(("bad feature size", f"{f.name} has {size} floats, expected {f.size}"))
    return vid, labels, None, shapes, issues


def _check_frame(seq, release: specs.Release):
    context = seq.context.feature
    vid, labels, issues = _context_checks(context, release)
    lists = seq.feature_lists.feature_list
    shapes, counts = {}, {}
    for f in specs.FRAME_FEATURES:
        if f.name not in lists:
            issues.append(("missing feature", f"missing frame feature list {f.name!r}"))
            continue
        entries = lists[f.name].feature
        counts[f.name] = len(entries)
        sizes = {
            len(e.bytes_list.value[0]) if len(e.bytes_list.value) == 1 else -1 for e in entries
        }
        shapes[f.name] = tuple(sorted(sizes))  # bytes per frame
        if sizes - {f.size}:
            issues.append(
                (
                    "bad feature size",
                    f"{f.name} frames must be {f.size} uint8 bytes each, found sizes {sorted(sizes)}",
                )
            )
    num_frames = counts.get(specs.RGB.name)
    if counts and not any(counts.values()):
        issues.append(("no frames", "0 frames"))
    elif len(set(counts.values())) > 1:
        found = ", ".join(f"{name} {n}" for name, n in counts.items())
        issues.append(("frame count mismatch", f"frame counts differ: {found}"))
    if num_frames is not None and num_frames > specs.MAX_FRAMES:
        message = f"{num_frames} frames, the release keeps at most {specs.MAX_FRAMES}"
        issues.append(("too many frames", message))
    if specs.SEGMENT_LABELS_KEY in context:
        seg = [
            context[k]
            for k in (
                specs.SEGMENT_LABELS_KEY,
                specs.SEGMENT_START_TIMES_KEY,
                specs.SEGMENT_SCORES_KEY,
            )
        ]
        lengths = {
            len(seg[0].int64_list.value),
            len(seg[1].int64_list.value),
            len(seg[2].float_list.value),
        }
        if len(lengths) != 1:
            message = "segment_labels, segment_start_times and segment_scores differ in length"
            issues.append(("bad segment ratings", message))
        starts = list(seg[1].int64_list.value)
        if any(s % specs.SEGMENT_SIZE for s in starts):
            message = f"segment start times must be multiples of {specs.SEGMENT_SIZE}: {starts[:5]}"
            issues.append(("bad segment ratings", message))
        if num_frames is not None and any(s >= num_frames for s in starts):
            issues.append(("bad segment ratings", "segment starts beyond the video's frames"))
    return vid, labels, num_frames, shapes, issues
