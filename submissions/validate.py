"""Streaming validation of Kaggle submissions: the first problem, with its line number."""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import pandas as pd

from submissions import parsing
from submissions.truth import load_ids
from y8m.data import specs
from y8m.errors import UsageError


class _Stop(Exception):
    """The first problem found; ends the scan."""

    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line = line
        self.message = message


def validate_submission(
    path: str,
    version: int = specs.DEFAULT_VERSION,
    ids_from: str | pd.DataFrame | None = None,
    num_classes: int | None = None,
    chunk_rows: int = parsing.DEFAULT_CHUNK_ROWS,
) -> dict:
    """Checks a submission file the way Kaggle would accept it, stopping at the first problem.

    Video files (2017, 2018): the header, every row `id,label score ...`, ids unique, 1 to 20
    pairs per row, labels in [0, num_classes) and unique within a row, scores finite in [0, 1].
    Segment files (2019): the header, every row `class,vid:start ...`, classes in range and
    unique, 1 to SEGMENT_MAX_PRED segments per class, each `vid:start` with start >= 0 a
    multiple of SEGMENT_SIZE, no segment twice in a class. With `ids_from`, the video ids must
    be exactly the test set's (segment files: every segment's video must be in it).

    The file is read in chunks of `chunk_rows` rows, so memory holds one chunk and the set of
    ids seen.

    Args:
        path: the submission (plain or gzip).
        version: 2017, 2018 (video task) or 2019 (segment task).
        ids_from: the expected ids: a DataFrame with an `id` column (for TFRecords,
            `y8m.data.read_labels(glob)`), or a .csv/.txt file of ids (first column; a header
            such as `id` or `VideoId` is skipped).
        num_classes: class count; defaults to the release's.
        chunk_rows: rows parsed per step.

    Returns:
        A report dict: `ok`, `error` (None or `line N: ...`, the first problem), `line`,
        `format` ('video' or 'segment'), `rows`, counts of pairs or segments, and with `ids_from`
        `expected_ids`, `missing_ids`, `extra_ids` (complete when the scan reached the end).

    Raises:
        UsageError: when the file or `ids_from` cannot be read at all (not for invalid content).
    """
    release = specs.release(version)
    num_classes = int(num_classes or release.num_classes)
    expected = None if ids_from is None else set(load_ids(ids_from))
    check = _SegmentCheck if release.has_segments else _VideoCheck
    checker = check(path, num_classes, expected)
    try:
        checker.run(chunk_rows)
    except _Stop as stop:
        checker.fail(stop.line, stop.message)
    return checker.report(release.version)


class _Check:
    format = ""

    def __init__(self, path: str, num_classes: int, expected: set[str] | None):
        self.path = os.fspath(path)
        self.num_classes = num_classes
        self.expected = expected
        self.seen: set[str] = set()
        self.rows = 0
        self.error: str | None = None
        self.line: int | None = None
        self.complete = False
        self.first_extra: tuple[int, str] | None = None

    def run(self, chunk_rows: int) -> None:
        raise NotImplementedError

    def fail(self, line: int, message: str) -> None:
        # An extra id is not fatal (the scan goes on counting them), so it is reported first
        # only when it came before the fatal line.
        if self.first_extra is not None and self.first_extra[0] < line:
            line, message = self._extra_problem()
        self.error, self.line = f"line {line}: {message}", line

    def finish(self) -> None:
        self.complete = True
        if self.first_extra is not None:
            self.fail(*self._extra_problem())
        elif self.expected is not None and self.missing:
            example = min(self.expected - self.seen)
            self.error = (
                f"{self.missing} of the {len(self.expected)} expected video ids are missing "
                f"(e.g. {example!r}): predict every test video"
            )

    def note_extra(self, line: int, vid: str) -> None:
        if self.first_extra is None:
            self.first_extra = (line, vid)

    @property
    def missing(self) -> int:
        return len(self.expected - self.seen) if self.expected is not None else 0

    @property
    def extra(self) -> int:
        return len(self.seen - self.expected) if self.expected is not None else 0

    def _extra_problem(self) -> tuple[int, str]:
        line, vid = self.first_extra
        tail = (
            f" ({self.extra} such ids, {self.missing} expected ids missing)"
            if self.complete
            else ""
        )
        return line, f"video id {vid!r} is not in the test set{tail}"

    def report(self, version: int) -> dict:
        out = {
            "path": self.path,
            "version": version,
            "format": self.format,
            "ok": self.error is None,
            "error": self.error,
            "line": self.line,
            "rows": self.rows,
            "num_classes": self.num_classes,
        }
        out.update(self.counts())
        if self.expected is not None:
            out.update(
                expected_ids=len(self.expected),
                missing_ids=self.missing if self.complete else None,
                extra_ids=self.extra,
            )
        return out

    def counts(self) -> dict:
        return {}


class _VideoCheck(_Check):
    format = "video"

    def __init__(self, path, num_classes, expected):
        super().__init__(path, num_classes, expected)
        self.pairs = 0
        self.min_pairs: int | None = None
        self.max_pairs = 0

    def run(self, chunk_rows: int) -> None:
        try:
            for chunk in parsing.iter_video_chunks(self.path, chunk_rows=chunk_rows):
                self._check_chunk(chunk)
        except parsing.SubmissionFormatError as e:
            raise _Stop(e.line, e.reason) from None
        self.finish()

    def counts(self) -> dict:
        return {"pairs": self.pairs, "min_pairs": self.min_pairs, "max_pairs": self.max_pairs}

    def _check_chunk(self, chunk: parsing.VideoChunk) -> None:
        n, c = len(chunk.ids), self.num_classes
        rows, labels, scores, num_pairs = chunk.rows, chunk.labels, chunk.scores, chunk.num_pairs
        in_range = (labels >= 0) & (labels < c)
        bad_score = ~(np.isfinite(scores) & (scores >= 0) & (scores <= 1))
        keys = np.sort(rows[in_range] * c + labels[in_range])
        repeated = keys[1:][keys[1:] == keys[:-1]]
        # (row mask or row index of the first failing pair, message for the row) in priority order.
        problems: list[tuple[np.ndarray, Callable[[int], str]]] = [
            (num_pairs == 0, lambda r: "no 'label score' pairs: predict at least one class"),
            (
                num_pairs > specs.SUBMISSION_TOP_K,
                lambda r: f"{num_pairs[r]} pairs, at most {specs.SUBMISSION_TOP_K} allowed",
            ),
            (
                _rows_with(rows, ~in_range, n),
                lambda r: f"label {_first(labels, rows, ~in_range, r)} is outside [0, {c})",
            ),
            (
                _rows_with(rows, bad_score, n),
                lambda r: f"score {_first(scores, rows, bad_score, r)!r} is outside [0, 1]",
            ),
            (
                np.isin(np.arange(n), repeated // c),
                lambda r: f"label {int(repeated[repeated // c == r][0] % c)} appears twice",
            ),
        ]
        first = min((int(np.argmax(mask)) for mask, _ in problems if mask.any()), default=n)
        for i, vid in enumerate(chunk.ids[:first]):
            self._check_id(int(chunk.line_numbers[i]), vid)
        if first < n:
            self.rows += first
            line = int(chunk.line_numbers[first])
            message = next(describe(first) for mask, describe in problems if mask[first])
            raise _Stop(line, message)
        self.rows += n
        self.pairs += int(num_pairs.sum())
        low = int(num_pairs.min())
        self.min_pairs = low if self.min_pairs is None else min(self.min_pairs, low)
        self.max_pairs = max(self.max_pairs, int(num_pairs.max()))

    def _check_id(self, line: int, vid: str) -> None:
        if vid in self.seen:
            raise _Stop(line, f"video id {vid!r} repeats line {self._line_of(vid)}")
        self.seen.add(vid)
        if self.expected is not None and vid not in self.expected:
            self.note_extra(line, vid)

    def _line_of(self, vid: str) -> int:
        # Only on the error path: rescanning beats keeping a line number per id in memory.
        for chunk in parsing.iter_video_chunks(self.path):
            if vid in chunk.ids:
                return int(chunk.line_numbers[chunk.ids.index(vid)])
        return 0


class _SegmentCheck(_Check):
    format = "segment"

    def __init__(self, path, num_classes, expected):
        super().__init__(path, num_classes, expected)
        self.segments = 0
        self.max_segments = 0
        self.classes: dict[int, int] = {}

    def counts(self) -> dict:
        return {"segments": self.segments, "max_segments": self.max_segments}

    def run(self, chunk_rows: int) -> None:
        try:
            for line, class_id, segments in parsing.iter_segment_rows(self.path):
                self._check_row(line, class_id, segments)
        except parsing.SubmissionFormatError as e:
            raise _Stop(e.line, e.reason) from None
        self.finish()

    def finish(self) -> None:
        # Segment files list only the videos that scored high, so missing ids are no problem.
        self.complete = True
        if self.first_extra is not None:
            self.fail(*self._extra_problem())

    def _check_row(self, line: int, class_id: int, segments: list[str]) -> None:
        if not 0 <= class_id < self.num_classes:
            raise _Stop(line, f"class {class_id} is outside [0, {self.num_classes})")
        if class_id in self.classes:
            raise _Stop(
                line, f"class {class_id} already has a row on line {self.classes[class_id]}"
            )
        self.classes[class_id] = line
        if not segments:
            raise _Stop(line, f"class {class_id} has no segments: leave the class out instead")
        if len(segments) > specs.SEGMENT_MAX_PRED:
            raise _Stop(
                line,
                f"class {class_id} has {len(segments)} segments, at most {specs.SEGMENT_MAX_PRED} allowed",
            )
        videos, starts = _split_segments(segments)
        bad = np.flatnonzero(starts % specs.SEGMENT_SIZE)
        if len(bad):
            raise _Stop(
                line,
                f"segment {segments[bad[0]]!r} starts at {starts[bad[0]]}, "
                f"not a multiple of {specs.SEGMENT_SIZE} seconds",
            )
        if len(set(segments)) != len(segments):
            once: set[str] = set()
            repeated = next(s for s in segments if s in once or once.add(s))
            raise _Stop(line, f"segment {repeated!r} appears twice in class {class_id}")
        if self.expected is not None:
            videos = set(videos)
            outside = videos - self.expected
            if outside:
                self.note_extra(line, min(outside))
            self.seen.update(videos)
        self.rows += 1
        self.segments += len(segments)
        self.max_segments = max(self.max_segments, len(segments))


def _split_segments(segments: list[str]) -> tuple[list[str], np.ndarray]:
    """Video ids and [N] int64 start times of `videoid:start` segment ids (already checked)."""
    # One replace and split over the joined row keeps the per-segment work in C: a class may
    # list 100000 segments. Ids that themselves contain ':' take the slow path.
    parts = " ".join(segments).replace(":", " ").split()
    if len(parts) == 2 * len(segments):
        return parts[0::2], np.asarray(parts[1::2], dtype=np.int64)
    videos, _, starts = zip(*(s.rpartition(":") for s in segments))
    return list(videos), np.asarray(starts, dtype=np.int64)


def _rows_with(rows: np.ndarray, pair_mask: np.ndarray, n: int) -> np.ndarray:
    """[n] bool: rows holding at least one flagged pair."""
    return np.bincount(rows[pair_mask], minlength=n) > 0


def _first(values: np.ndarray, rows: np.ndarray, pair_mask: np.ndarray, row: int):
    value = values[pair_mask & (rows == row)][0]
    return value.item()


def raise_for_report(report: dict) -> None:
    """Raises the report's first problem as a one-line UsageError (nothing when it is ok)."""
    if not report["ok"]:
        raise UsageError(f"invalid submission {report['path']}: {report['error']}")
