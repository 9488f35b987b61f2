"""Kaggle submission formats: pure row builders, atomic writers and readers (reference 3).

Video task (2017, 2018): `VideoId,LabelConfidencePairs`, then `id,label score label score ...`.
Segment task (2019): `Class,Segments`, then `class_id,vid:start vid:start ...`.
"""

from __future__ import annotations

import contextlib
import gzip as gzip_module
import io
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np

from submissions import parsing
from y8m.data import specs
from y8m.errors import UsageError
from y8m.fileio import atomic_path

# The official inference.py wrote "%i %f" in 2017 and "%i %g" from 2018 on.
_PAIR_FORMAT = {2017: "%i %f"}
_DEFAULT_PAIR_FORMAT = "%i %g"
_BLOCK_ROWS = 65536
# A video id goes into a CSV field unquoted, and the readers split rows on spaces: these
# characters would shift fields or rows, so the writers refuse ids holding one.
_ID_BREAKERS = (",", '"', "\n", "\r", " ", "\t")


def video_rows(
    ids: Sequence[str],
    classes: np.ndarray,
    scores: np.ndarray,
    top_k: int = specs.SUBMISSION_TOP_K,
    version: int = specs.DEFAULT_VERSION,
) -> Iterator[str]:
    """Builds `VideoId,LabelConfidencePairs` data rows (no header, no newline).

    Args:
        ids: the V video ids.
        classes: [V, K] int class indices; entries < 0 are padding and are skipped.
        scores: [V, K] float scores of those classes.
        top_k: pairs kept per video, the highest scores first (ties keep their column order).
        version: 2017 writes scores with "%f" (6 decimals), 2018 and 2019 with "%g".

    Yields:
        One `id,label score label score ...` string per video, pairs sorted by score desc.
    """
    pair_format = _PAIR_FORMAT.get(specs.release(version).version, _DEFAULT_PAIR_FORMAT)
    ids = list(ids)
    classes = np.asarray(classes)
    scores = np.asarray(scores)
    if classes.ndim != 2 or classes.shape != scores.shape or len(ids) != len(classes):
        raise ValueError(
            f"need ids [V], classes [V, K] and scores [V, K]; got {len(ids)}, "
            f"{classes.shape} and {scores.shape}"
        )
    if top_k < 1:
        raise ValueError(f"top_k must be positive, got {top_k}")
    for start in range(0, len(classes), _BLOCK_ROWS):
        stop = start + _BLOCK_ROWS
        yield from _video_block(
            ids[start:stop], classes[start:stop], scores[start:stop], top_k, pair_format
        )


def _video_block(
    ids: Sequence[str], classes: np.ndarray, scores: np.ndarray, top_k: int, pair_format: str
) -> Iterator[str]:
    valid = classes >= 0
    key = np.where(valid, scores.astype(np.float64), -np.inf)
    order = np.argsort(-key, axis=1, kind="stable")[:, :top_k]  # (V, k); padding sorts last
    counts = np.take_along_axis(valid, order, axis=1).sum(axis=1).tolist()
    # One "%"-format call per row over interleaved (class, score) values is twice as fast as
    # formatting pair by pair; the object array turns numpy scalars into Python ones first.
    pairs = np.empty((len(order), 2 * order.shape[1]), dtype=object)  # (V, 2k)
    pairs[:, 0::2] = np.take_along_axis(classes, order, axis=1)
    pairs[:, 1::2] = np.take_along_axis(scores, order, axis=1).astype(np.float64)
    formats = [" ".join([pair_format] * n) for n in range(order.shape[1] + 1)]
    ids = [str(vid) for vid in ids]
    check_ids(ids)
    for vid, values, n in zip(ids, pairs.tolist(), counts):
        yield f"{vid},{formats[n] % tuple(values[: 2 * n])}"


def check_ids(ids: Sequence[str], what: str = "video id") -> None:
    """Raises a UsageError naming the first id that cannot go into a Kaggle CSV unquoted:
    an empty one, or one holding a comma, a quote, a space, a tab or a line break."""
    # One scan of the joined text in C finds whether any id is bad; only then is each looked at.
    joined = "\0".join(ids)
    if not any(c in joined for c in _ID_BREAKERS) and min(map(len, ids), default=1) > 0:
        return
    for vid in ids:
        if not vid or any(c in vid for c in _ID_BREAKERS):
            raise UsageError(
                f"{what} {vid!r} cannot be written to a Kaggle CSV: ids must be non-empty, "
                "without commas, quotes, spaces or line breaks"
            )


def segment_rows(
    per_class: Mapping[int, Sequence[str]], max_per_class: int = specs.SEGMENT_MAX_PRED
) -> Iterator[str]:
    """Builds `Class,Segments` data rows, classes in increasing id order.

    Args:
        per_class: class id -> segment ids (`videoid:start`), most confident first.
        max_per_class: segments kept per class (the first ones).

    Yields:
        One `class_id,vid:start vid:start ...` string per class; classes with no segment are
        left out, because a row with no segment is not valid.
    """
    for class_id in sorted(per_class, key=int):
        segments = [str(s) for s in list(per_class[class_id])[:max_per_class]]
        check_ids(segments, "segment id")
        if segments and parsing.is_segment_row(" ".join(segments)):
            yield f"{int(class_id)},{' '.join(segments)}"
            continue
        for segment in segments:
            if not parsing.is_segment_row(segment):
                raise UsageError(
                    f"segment id {segment!r} of class {class_id} is not 'videoid:start' "
                    "(a non-empty video id, a colon, an integer start)"
                )
        if segments:
            yield f"{int(class_id)},{' '.join(segments)}"


def write_video_submission(
    path: str,
    ids: Sequence[str],
    classes: np.ndarray,
    scores: np.ndarray,
    version: int = specs.DEFAULT_VERSION,
    top_k: int = specs.SUBMISSION_TOP_K,
    gzip: bool | None = None,
) -> int:
    """Writes a 2017/2018 submission atomically.

    Args:
        path: output file; gzip-compressed when it ends in `.gz` or `gzip` is True.
        ids, classes, scores, top_k, version: as in `video_rows`.
        gzip: force compression on (True) or off (False); None decides from the suffix.

    Returns:
        The number of data rows written.
    """
    rows = video_rows(ids, classes, scores, top_k=top_k, version=version)
    return write_rows(path, specs.VIDEO_SUBMISSION_HEADER, rows, gzip=gzip)


def write_segment_submission(
    path: str,
    per_class: Mapping[int, Sequence[str]],
    gzip: bool | None = None,
    max_per_class: int = specs.SEGMENT_MAX_PRED,
) -> int:
    """Writes a 2019 `Class,Segments` submission atomically (see `segment_rows`).

    Returns:
        The number of data rows (classes) written.
    """
    rows = segment_rows(per_class, max_per_class=max_per_class)
    return write_rows(path, specs.SEGMENT_SUBMISSION_HEADER, rows, gzip=gzip)


def write_rows(
    path: str, header: Sequence[str], rows: Iterable[str], gzip: bool | None = None
) -> int:
    """Writes a header and rows as a CSV, atomically, gzipped on request; returns the row count."""
    path = os.fspath(path)
    use_gzip = path.endswith(".gz") if gzip is None else bool(gzip)
    count = 0
    with atomic_path(path) as tmp, _open_for_writing(tmp, use_gzip) as f:
        f.write(",".join(header) + "\n")
        for row in rows:
            f.write(row)
            f.write("\n")
            count += 1
    return count


def read_video_submission(
    path: str, top_k: int | None = specs.SUBMISSION_TOP_K
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reads a 2017/2018 submission (plain or gzip; header `VideoId` or WILLOW's `VideoID`).

    Rows are padded, not ragged: a row with fewer than `top_k` pairs ends in class -1 with
    score 0, so test `classes >= 0` before using a score.

    Args:
        path: the submission file.
        top_k: pairs kept per video, highest scores first (the leaderboard reads 20);
            None keeps every pair and pads to the longest row.

    Returns:
        ids: [V] object array of str, file order.
        classes: [V, top_k] int32, per row sorted by score desc (ties keep file order).
        scores: [V, top_k] float32.

    Raises:
        UsageError: with the line number of the first row that does not parse.
    """
    ids: list[str] = []
    blocks = []
    for chunk in parsing.iter_video_chunks(path):
        ids.extend(chunk.ids)
        blocks.append(_pad_chunk(chunk, top_k))
    width = max((b[0].shape[1] for b in blocks), default=top_k or 0)
    classes = np.full((len(ids), width), -1, np.int32)
    scores = np.zeros((len(ids), width), np.float32)
    start = 0
    for block_classes, block_scores in blocks:
        stop = start + len(block_classes)
        classes[start:stop, : block_classes.shape[1]] = block_classes
        scores[start:stop, : block_scores.shape[1]] = block_scores
        start = stop
    return np.asarray(ids, dtype=object), classes, scores


def read_segment_submission(path: str) -> dict[int, list[str]]:
    """Reads a 2019 `Class,Segments` submission (plain or gzip).

    Returns:
        class id -> segment ids in file order (most confident first), classes in file order.

    Raises:
        UsageError: with the line number of the first row that does not parse, or of a class
            that appears twice.
    """
    per_class: dict[int, list[str]] = {}
    first_line: dict[int, int] = {}
    for line_no, class_id, segments in parsing.iter_segment_rows(path):
        if class_id in per_class:
            raise parsing.SubmissionFormatError(
                line_no, f"class {class_id} already has a row on line {first_line[class_id]}"
            )
        per_class[class_id] = segments
        first_line[class_id] = line_no
    return per_class


def _pad_chunk(chunk: parsing.VideoChunk, top_k: int | None) -> tuple[np.ndarray, np.ndarray]:
    """[n, w] classes and scores of one chunk, each row sorted by score desc and cut to top_k."""
    n, rows = len(chunk.ids), chunk.rows
    widest = int(chunk.num_pairs.max(initial=0))
    starts = np.cumsum(chunk.num_pairs) - chunk.num_pairs
    position = np.arange(len(rows)) - starts[rows]  # (P,) column of each pair in its row
    scores = np.full((n, widest), -np.inf)  # (n, widest) padding sorts last
    classes = np.full((n, widest), -1, np.int32)
    scores[rows, position] = chunk.scores
    classes[rows, position] = chunk.labels
    width = widest if top_k is None else top_k
    order = np.argsort(-scores, axis=1, kind="stable")[:, :width]
    classes = np.take_along_axis(classes, order, axis=1)
    scores = np.take_along_axis(scores, order, axis=1)
    scores[classes < 0] = 0.0
    if classes.shape[1] < width:
        pad = ((0, 0), (0, width - classes.shape[1]))
        classes, scores = np.pad(classes, pad, constant_values=-1), np.pad(scores, pad)
    return classes, scores.astype(np.float32)


@contextlib.contextmanager
def _open_for_writing(path: str, use_gzip: bool) -> Iterator[io.TextIOBase]:
    if not use_gzip:
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            yield f
        return
    # An empty name and mtime 0 keep the temporary file's name and the time out of the gzip
    # header, so the same submission always gives the same bytes.
    with (
        open(path, "wb") as raw,
        gzip_module.GzipFile(fileobj=raw, mode="wb", filename="", mtime=0, compresslevel=6) as gz,
        io.TextIOWrapper(gz, encoding="utf-8", newline="\n") as f,
    ):
        yield f
