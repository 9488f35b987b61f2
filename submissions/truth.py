"""Ground truth for validation and scoring: test-set ids, video labels, segment ratings.

Each is a DataFrame already read, or a small CSV/TXT file read here. TFRecords are read by the
caller (`y8m submission` uses `y8m.data.read_labels` / `read_segment_ratings`), so this package
never loads TensorFlow.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from submissions import parsing
from y8m.errors import UsageError

_TABLE_SUFFIXES = (".csv", ".txt", ".csv.gz", ".txt.gz")
_ID_HEADERS = {"id", "videoid", "video_id"}
RATING_COLUMNS = ("id", "class", "start_time", "score")


def is_table(source) -> bool:
    """True when `source` names a CSV/TXT file rather than a TFRecord glob."""
    return isinstance(source, (str, os.PathLike)) and os.fspath(source).lower().endswith(
        _TABLE_SUFFIXES
    )


def load_ids(source) -> list[str]:
    """Video ids from a DataFrame with an `id` column or a CSV/TXT file of ids.

    A CSV/TXT gives its first column; a first line reading `id`, `VideoId` or `video_id` is a
    header and is skipped. Blank lines are skipped. For TFRecords, pass
    `y8m.data.read_labels(glob)`.
    """
    if isinstance(source, pd.DataFrame):
        return source["id"].astype(str).tolist()
    ids = []
    with parsing.open_text(_table(source, "ids", "y8m.data.read_labels")) as f:
        for line_no, line in enumerate(f, start=1):
            vid = line.rstrip("\r\n").split(",", 1)[0].strip()
            if vid and not (line_no == 1 and vid.lower() in _ID_HEADERS):
                ids.append(vid)
    if not ids:
        raise UsageError(f"no video ids in {source!r}: give one id per line")
    return ids


def load_video_labels(solution) -> pd.DataFrame:
    """True labels as a DataFrame with columns `id` (str) and `labels` (list of int).

    Args:
        solution: a DataFrame with those columns (for TFRecords, `y8m.data.read_labels(glob)`),
            or a CSV of `VideoId,Labels` rows with space-separated class ids (the official
            ground-truth layout `VIDEO_ID,LABEL1 LABEL2 ...`); the header is optional.
    """
    if isinstance(solution, pd.DataFrame):
        return solution
    ids, labels = [], []
    with parsing.open_text(_table(solution, "labels", "y8m.data.read_labels")) as f:
        for line_no, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            vid, _, text = line.partition(",")
            tokens = text.split()
            if not all(t.isascii() and t.isdigit() for t in tokens):
                if line_no == 1:
                    continue  # a header such as VideoId,Labels
                raise UsageError(
                    f"{solution}: line {line_no}: expected 'video_id,label label ...' with integer "
                    f"labels, got {line[:60]!r}"
                )
            ids.append(vid.strip())
            labels.append([int(t) for t in tokens])
    return pd.DataFrame({"id": ids, "labels": labels})


def load_segment_ratings(solution) -> pd.DataFrame:
    """Rated segments as a DataFrame with columns `id`, `class`, `start_time`, `score`.

    Args:
        solution: such a DataFrame (for 2019 validate/test TFRecords,
            `y8m.data.read_segment_ratings(glob)`); a CSV with a header naming those columns; or
            a header-less CSV of `videoid:start,class,score` lines (the official label cache).
    """
    if isinstance(solution, pd.DataFrame):
        frame = solution
    else:
        frame = _read_ratings_csv(
            _table(solution, "segment ratings", "y8m.data.read_segment_ratings")
        )
    missing = [c for c in RATING_COLUMNS if c not in frame.columns]
    if missing:
        raise UsageError(f"segment ratings lack column(s) {missing}: need {list(RATING_COLUMNS)}")
    return frame


def _read_ratings_csv(path: str) -> pd.DataFrame:
    with parsing.open_text(path) as f:
        first = f.readline().strip().lower().split(",")
    options = dict(dtype=str, keep_default_na=False, na_filter=False)
    try:
        if set(RATING_COLUMNS) <= set(first):
            frame = pd.read_csv(path, **options)
        else:
            cache = pd.read_csv(path, header=None, names=["segment", "class", "score"], **options)
            parts = cache["segment"].str.rpartition(":")
            frame = pd.DataFrame(
                {
                    "id": parts[0],
                    "start_time": parts[2],
                    "class": cache["class"],
                    "score": cache["score"],
                }
            )
        return frame.astype({"class": np.int64, "start_time": np.int64, "score": np.float64})
    except (ValueError, pd.errors.ParserError) as e:
        raise UsageError(
            f"cannot read segment ratings from {path}: need columns {list(RATING_COLUMNS)} or "
            f"'videoid:start,class,score' lines ({str(e).splitlines()[0]})"
        ) from None


def _table(source, what: str, reader: str) -> str:
    """The path of an existing CSV/TXT file; a UsageError for anything else."""
    if not is_table(source):
        raise UsageError(
            f"{what} from {source!r}: pass a DataFrame or a .csv/.txt file; read TFRecords "
            f"first with {reader}(glob) (the `y8m submission` command does)"
        )
    path = os.fspath(source)
    if not os.path.isfile(path):
        raise UsageError(f"no such file {path!r}: check the path")
    return path
