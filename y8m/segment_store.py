"""The 2019 segment prediction store: each rated class's kept top segments, with their scores.

`y8m predict --segments` writes one beside its `Class,Segments` submission (same stem,
`.segments.parquet`), so that `y8m ensemble --segments` can combine models by score. A store is
a Parquet table with columns `segment_id` (`videoid:start`), `class` (int32) and `score`
(float32), one row per kept (segment, class) pair, and JSON metadata under the `y8m_segments`
key: `model_name`, `num_classes`, `rated_classes`, `segment_max_pred`, `data_pattern`, and
`num_segments` / `segment_set` (how many segments were scored, and an order-free fingerprint of
their ids, so that stores of different videos are told apart).

Example:
    >>> write_segment_store("m.segments.parquet", {3: (["a:0", "b:5"], [0.9, 0.4])},
    ...                     {"model_name": "m", "num_classes": 8, "rated_classes": [3]})
    >>> frame, metadata = load_segment_store("m.segments.parquet")
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from y8m.errors import UsageError
from y8m.fileio import atomic_path

__all__ = [
    "METADATA_KEY",
    "SUFFIX",
    "SegmentSet",
    "load_segment_store",
    "segment_store_path",
    "write_segment_store",
]

METADATA_KEY = b"y8m_segments"
SUFFIX = ".segments.parquet"
COLUMNS = ("segment_id", "class", "score")
REQUIRED = ("model_name", "num_classes", "rated_classes")


def segment_store_path(submission_path: str) -> str:
    """The store beside a `Class,Segments` file: `seg.csv[.gz]` -> `seg.segments.parquet`."""
    path = os.fspath(submission_path)
    for suffix in (".gz", ".csv"):
        path = path[: -len(suffix)] if path.endswith(suffix) else path
    return path + SUFFIX


class SegmentSet:
    """Order-free fingerprint of the segment ids scored (a sum of 64-bit hashes, and a count)."""

    def __init__(self):
        self.count = 0
        self._sum = 0

    def update(self, segment_ids: Iterable[str]) -> SegmentSet:
        for segment in segment_ids:
            digest = hashlib.blake2b(segment.encode("utf-8"), digest_size=8).digest()
            self._sum = (self._sum + int.from_bytes(digest, "little")) % (1 << 64)
            self.count += 1
        return self

    def hexdigest(self) -> str:
        return f"{self._sum:016x}"


def write_segment_store(
    path: str,
    per_class: Mapping[int, tuple[Sequence[str], Sequence[float]]] | pd.DataFrame,
    metadata: Mapping,
) -> str:
    """Writes a segment store atomically.

    Args:
        path: the `.parquet` file (written through a temporary beside it).
        per_class: class id -> (segment ids, scores), most confident first; or a DataFrame
            with columns `segment_id`, `class`, `score`.
        metadata: at least `model_name`, `num_classes`, `rated_classes`; usually also
            `segment_max_pred`, `data_pattern`, `num_segments`, `segment_set`.

    Returns:
        path.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    missing = [k for k in REQUIRED if k not in metadata]
    if missing:
        raise UsageError(f"segment store metadata lacks {missing}: need {list(REQUIRED)}")
    if isinstance(per_class, pd.DataFrame):
        frame = per_class
    else:
        frame = _frame(per_class)
    table = pa.table(
        {
            "segment_id": pa.array(frame["segment_id"].astype(str).tolist(), pa.string()),
            "class": pa.array(np.asarray(frame["class"], np.int32)),
            "score": pa.array(np.asarray(frame["score"], np.float32)),
        }
    )
    meta = dict(metadata)
    meta["rated_classes"] = [int(c) for c in meta["rated_classes"]]
    meta["num_classes"] = int(meta["num_classes"])
    table = table.replace_schema_metadata({METADATA_KEY: json.dumps(meta).encode("utf-8")})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return os.fspath(path)


def _frame(per_class) -> pd.DataFrame:
    segments, classes, scores = [], [], []
    for class_id, (ids, values) in per_class.items():
        ids, values = list(ids), np.asarray(values, np.float32).ravel()
        if len(ids) != len(values):
            raise UsageError(f"class {class_id}: {len(ids)} segment ids but {len(values)} scores")
        segments.extend(str(s) for s in ids)
        classes.append(np.full(len(ids), int(class_id), np.int32))
        scores.append(values)
    return pd.DataFrame(
        {
            "segment_id": segments,
            "class": np.concatenate(classes) if classes else np.zeros(0, np.int32),
            "score": np.concatenate(scores) if scores else np.zeros(0, np.float32),
        }
    )


def load_segment_store(path: str) -> tuple[pd.DataFrame, dict]:
    """Reads a segment store.

    Returns:
        (DataFrame `segment_id` str, `class` int32, `score` float32, in file order; metadata).

    Raises:
        UsageError: a missing file, or one that is not a segment store (a video prediction
            store, a CSV, a damaged file).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UsageError(f"no such segment store {path!r}: check the path")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise UsageError(
            f"{path} is not a segment store ({str(err).splitlines()[0]}): pass the "
            f"`*{SUFFIX}` files `y8m predict --segments` writes"
        ) from None
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    if raw is None or any(c not in table.column_names for c in COLUMNS):
        raise UsageError(
            f"{path} is a Parquet file but not a segment store: pass the `*{SUFFIX}` files "
            "`y8m predict --segments` writes (video prediction stores are for plain ensembles)"
        )
    try:
        metadata = json.loads(raw)
    except ValueError:
        raise UsageError(f"{path}: the segment store metadata is not valid JSON") from None
    missing = [k for k in REQUIRED if k not in metadata]
    if missing:
        raise UsageError(f"{path}: the segment store metadata lacks {missing}")
    frame = pd.DataFrame(
        {
            "segment_id": table.column("segment_id").to_pylist(),
            "class": table.column("class").to_numpy().astype(np.int32),
            "score": table.column("score").to_numpy().astype(np.float32),
        }
    )
    return frame, metadata
