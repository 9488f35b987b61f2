"""Streaming parsers for Kaggle submission files, with the line number of every problem.

Shared by the readers (`formats.py`), the validator and the scorer; plain or gzip files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import io
import itertools
import re
import warnings
import zlib
from collections.abc import Iterator

import numpy as np

from y8m.data import specs
from y8m.errors import UsageError

DEFAULT_CHUNK_ROWS = 65536
_SEGMENT_ID = re.compile(r"\S+:\d+")
_SEGMENT_ROW = re.compile(r"\S+:\d+(?: +\S+:\d+)*")


class SubmissionFormatError(UsageError):
    """A submission line that does not parse; `line` is 1-based (the header is line 1)."""

    def __init__(self, line: int, message: str):
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.reason = message


@dataclasses.dataclass
class VideoChunk:
    """Consecutive data rows of a `VideoId,LabelConfidencePairs` file.

    Attributes:
        line_numbers: [n] int64, the 1-based line of each row.
        ids: the n video ids, in file order.
        num_pairs: [n] int64, pairs per row.
        labels: [P] int64, every row's labels concatenated (P = num_pairs.sum()), file order.
        scores: [P] float64, the matching scores.
    """

    line_numbers: np.ndarray
    ids: list[str]
    num_pairs: np.ndarray
    labels: np.ndarray
    scores: np.ndarray

    @property
    def rows(self) -> np.ndarray:
        """[P] int64: the row (0..n-1) of each pair."""
        return np.repeat(np.arange(len(self.ids)), self.num_pairs)


def open_text(path: str) -> TextReader:
    """Opens a text file for reading, gunzipping it when it starts with the gzip magic bytes.

    Lines that are not UTF-8 and a truncated or corrupt gzip stream are one-line UsageErrors.
    """
    try:
        with open(path, "rb") as f:
            magic = f.read(2)
    except FileNotFoundError:
        raise UsageError(f"no such file {path!r}: check the path") from None
    except IsADirectoryError:
        raise UsageError(f"{path!r} is a directory: pass a submission file") from None
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror or err}") from None
    # utf-8-sig drops a byte-order mark that spreadsheet tools like to add.
    if magic == b"\x1f\x8b":
        return TextReader(gzip.open(path, "rt", encoding="utf-8-sig", newline=""), path)
    return TextReader(open(path, encoding="utf-8-sig", newline=""), path)


class TextReader:
    """A text file read by lines whose decoding and decompression errors become one-line
    UsageErrors naming the file (a context manager and an iterator, like the file)."""

    def __init__(self, f: io.TextIOBase, path: str):
        self._f = f
        self.path = path

    def __enter__(self) -> TextReader:
        return self

    def __exit__(self, *exc) -> bool:
        self._f.close()
        return False

    def __iter__(self) -> TextReader:
        return self

    def __next__(self) -> str:
        with self._errors():
            return next(self._f)

    def readline(self, size: int = -1) -> str:
        with self._errors():
            return self._f.readline(size)

    def close(self) -> None:
        self._f.close()

    @contextlib.contextmanager
    def _errors(self):
        try:
            yield
        except UnicodeDecodeError as err:
            byte = err.object[err.start : err.start + 1].hex()
            raise UsageError(
                f"cannot read {self.path}: not UTF-8 text (byte 0x{byte}): save it as UTF-8"
            ) from None
        except EOFError:
            raise UsageError(
                f"cannot read {self.path}: the gzip stream is truncated: copy or write it again"
            ) from None
        except (OSError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
            raise UsageError(f"cannot read {self.path}: {err}") from None


def is_segment_row(text: str) -> bool:
    """True for `videoid:start` segment ids (non-empty ids, integer starts) joined by spaces."""
    return _SEGMENT_ROW.fullmatch(text) is not None


def header_matches(line: str, header: tuple[str, ...]) -> bool:
    """True when `line` is the header, ignoring case (WILLOW wrote `VideoID`) and spaces."""
    fields = [f.strip().lower() for f in line.split(",")]
    return fields == [h.lower() for h in header]


def check_header(line: str | None, header: tuple[str, ...]) -> None:
    """Raises a line-1 SubmissionFormatError unless `line` is the expected header."""
    expected = ",".join(header)
    if line is None:
        raise SubmissionFormatError(1, f"the file is empty: expected the header {expected!r}")
    if not header_matches(line, header):
        hint = ""
        if header_matches(line, specs.SEGMENT_SUBMISSION_HEADER):
            hint = " (a 2019 segment file: pass --version=2019)"
        elif header_matches(line, specs.VIDEO_SUBMISSION_HEADER):
            hint = " (a video file: pass --version=2018 or 2017)"
        raise SubmissionFormatError(1, f"header is {_clip(line)!r}, expected {expected!r}{hint}")


def sniff_format(path: str) -> str:
    """'video' or 'segment' from a submission's header; a UsageError for anything else."""
    with open_text(path) as f:
        first = _strip_newline(f.readline())
    if header_matches(first, specs.VIDEO_SUBMISSION_HEADER):
        return "video"
    if header_matches(first, specs.SEGMENT_SUBMISSION_HEADER):
        return "segment"
    video, segment = (
        ",".join(h) for h in (specs.VIDEO_SUBMISSION_HEADER, specs.SEGMENT_SUBMISSION_HEADER)
    )
    raise SubmissionFormatError(1, f"header is {_clip(first)!r}, expected {video!r} or {segment!r}")


def iter_video_chunks(path: str, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[VideoChunk]:
    """Parses a `VideoId,LabelConfidencePairs` file chunk by chunk (memory bounded by the chunk).

    Checks only what parsing needs: the header, `id,` on every row, an even number of numeric
    fields, integer labels. Ranges and counts are the validator's job. Blank lines are skipped.

    Raises:
        SubmissionFormatError: at the first line that does not parse.
    """
    with open_text(path) as f:
        check_header(_first_line(f), specs.VIDEO_SUBMISSION_HEADER)
        line_no = 1
        while True:
            raw = list(itertools.islice(f, chunk_rows))
            if not raw:
                return
            numbers, lines = [], []
            for i, line in enumerate(raw, start=line_no + 1):
                line = _strip_newline(line)
                if line.strip():
                    numbers.append(i)
                    lines.append(line)
            line_no += len(raw)
            if lines:
                yield _parse_video_lines(np.asarray(numbers, np.int64), lines)


def iter_segment_rows(path: str) -> Iterator[tuple[int, int, list[str]]]:
    """Parses a `Class,Segments` file row by row.

    Yields:
        (line number, class id, segment ids in file order). Segment ids are checked to look like
        `videoid:start` with an integer start; blank lines are skipped.

    Raises:
        SubmissionFormatError: at the first line that does not parse.
    """
    with open_text(path) as f:
        check_header(_first_line(f), specs.SEGMENT_SUBMISSION_HEADER)
        for line_no, line in enumerate(f, start=2):
            line = _strip_newline(line)
            if not line.strip():
                continue
            head, comma, text = line.partition(",")
            if not comma:
                raise SubmissionFormatError(
                    line_no, f"expected 'class_id,vid:start vid:start ...', got {_clip(line)!r}"
                )
            head = head.strip()
            if not (head.isascii() and head.isdigit()):
                raise SubmissionFormatError(line_no, f"class id {_clip(head)!r} is not an integer")
            text = text.strip()
            if text and not _SEGMENT_ROW.fullmatch(text):
                for token in text.split():
                    if not _SEGMENT_ID.fullmatch(token):
                        raise SubmissionFormatError(
                            line_no, f"segment id {_clip(token)!r} is not 'videoid:start'"
                        )
            yield line_no, int(head), text.split()


def _parse_video_lines(line_numbers: np.ndarray, lines: list[str]) -> VideoChunk:
    ids, texts = [], []
    for line_no, line in zip(line_numbers.tolist(), lines):
        vid, comma, text = line.partition(",")
        if not comma:
            raise SubmissionFormatError(
                line_no, f"expected 'video_id,label score label score ...', got {_clip(line)!r}"
            )
        if not vid.strip():
            raise SubmissionFormatError(line_no, "the video id is empty")
        if vid != vid.strip() or " " in vid:
            raise SubmissionFormatError(line_no, f"video id {vid!r} contains spaces")
        ids.append(vid)
        texts.append(text)
    # Fast path: writers put one space between fields, so counting spaces counts fields.
    counts = np.fromiter((t.count(" ") + 1 if t else 0 for t in texts), np.int64, len(texts))
    values = _numbers(" ".join(texts))
    if values is None or len(values) != counts.sum():
        counts = np.fromiter((len(t.split()) for t in texts), np.int64, len(texts))
        if values is None or len(values) != counts.sum():
            _raise_unparsable(line_numbers, texts)
    odd = np.flatnonzero(counts % 2)
    if len(odd):
        raise SubmissionFormatError(
            int(line_numbers[odd[0]]),
            f"{counts[odd[0]]} fields: expected 'label score' pairs, each label followed by its score",
        )
    labels, scores = values[0::2], values[1::2]
    not_int = np.flatnonzero(~np.isfinite(labels) | (labels != np.floor(labels)))
    if len(not_int):
        row = np.searchsorted(np.cumsum(counts // 2), not_int[0], side="right")
        raise SubmissionFormatError(
            int(line_numbers[row]), f"label {labels[not_int[0]]:g} is not an integer class id"
        )
    return VideoChunk(line_numbers, ids, counts // 2, labels.astype(np.int64), scores)


def _numbers(text: str) -> np.ndarray | None:
    """Whitespace-separated numbers parsed in C; None if any field is not a number."""
    with warnings.catch_warnings():
        # numpy signals a field it cannot read with a DeprecationWarning and a short result.
        warnings.simplefilter("error")
        try:
            return np.fromstring(text, dtype=np.float64, sep=" ")
        except (ValueError, DeprecationWarning):
            return None


def _raise_unparsable(line_numbers: np.ndarray, texts: list[str]) -> None:
    for line_no, text in zip(line_numbers.tolist(), texts):
        for token in text.split():
            parsed = _numbers(token)
            if parsed is None or len(parsed) != 1:
                raise SubmissionFormatError(
                    line_no, f"cannot read {_clip(token)!r} as a number in 'label score' pairs"
                )
    raise SubmissionFormatError(int(line_numbers[0]), "a row in this block does not parse")


def _first_line(f) -> str | None:
    line = f.readline()
    return _strip_newline(line) if line else None


def _strip_newline(line: str) -> str:
    return line.rstrip("\r\n")


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."
