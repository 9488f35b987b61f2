"""The prediction store: each video's top-K classes and scores in Parquet, one file per model and split.

Written in a stream by `y8m predict`, read by the ensembler and by plain `pandas.read_parquet`.
The format is described in docs/ensembles.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
from collections.abc import Mapping, Sequence

import numpy as np

from y8m import metrics
from y8m.data.specs import SUBMISSION_TOP_K
from y8m.errors import UsageError
from y8m.fileio import atomic_path

__all__ = [
    "PAD_CLASS",
    "PredictionWriter",
    "Predictions",
    "load_predictions",
]

FORMAT_NAME = "y8m.predictions"
FORMAT_VERSION = 1
METADATA_KEY = b"y8m"
# Rows shorter than K (a Kaggle CSV with fewer pairs, a sparse input) end in class -1 with
# score 0, the same padding as `submissions.formats.read_video_submission`.
PAD_CLASS = -1
DEFAULT_ROW_GROUP_SIZE = 8192  # rows per Parquet row group: bounds what predict buffers
_CSV_SUFFIXES = (".csv", ".csv.gz")


@dataclasses.dataclass
class Predictions:
    """Top-K predictions of one model on one split, aligned by video.

    Attributes:
        ids: [V] str video ids.
        classes: [V, K] int32 class indices, each row sorted by score descending; -1 pads.
        scores: [V, K] float32 scores of those classes (0 on padding).
        labels: V int32 arrays of true classes, or None when the inputs had no labels.
        metadata: model_name, split, num_classes, top_k, data_pattern, created, and extras.
    """

    ids: np.ndarray
    classes: np.ndarray
    scores: np.ndarray
    labels: list[np.ndarray] | None = None
    metadata: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self.ids = np.asarray(self.ids).astype(str)
        self.classes = np.asarray(self.classes, np.int32)
        self.scores = np.asarray(self.scores, np.float32)
        if self.classes.ndim != 2 or self.classes.shape != self.scores.shape:
            raise ValueError(
                f"classes {self.classes.shape} and scores {self.scores.shape} must both be [V, K]"
            )
        if self.ids.shape != (len(self.classes),):
            raise ValueError(f"{self.ids.shape[0]} ids for {len(self.classes)} rows")
        if self.labels is not None:
            if len(self.labels) != len(self.ids):
                raise ValueError(f"{len(self.labels)} label rows for {len(self.ids)} videos")
            self.labels = [np.asarray(x, np.int32).ravel() for x in self.labels]

    @property
    def num_videos(self) -> int:
        return len(self.ids)

    @property
    def top_k(self) -> int:
        """K, the classes kept per video."""
        return self.classes.shape[1]

    @property
    def model_name(self) -> str:
        return str(self.metadata.get("model_name", ""))

    @property
    def num_classes(self) -> int:
        """C from the metadata, or one more than the largest class seen."""
        if self.metadata.get("num_classes"):
            return int(self.metadata["num_classes"])
        seen = [int(self.classes.max(initial=-1))]
        if self.labels:
            seen.append(max((int(x.max(initial=-1)) for x in self.labels), default=-1))
        return max(seen) + 1

    def num_positives(self) -> int:
        """Total true labels over all videos (positives outside every top-K list included)."""
        if self.labels is None:
            raise UsageError(f"{self._describe()} has no labels: predict on labelled records")
        return int(sum(map(len, self.labels)))

    def hits(self) -> np.ndarray:
        """[V, K] bool: whether each kept class is a true label of its video (False on padding)."""
        if self.labels is None:
            raise UsageError(f"{self._describe()} has no labels: predict on labelled records")
        label_cols = np.concatenate([np.zeros(0, np.int32), *self.labels]).astype(np.int64)
        # Wide enough for any class or label seen, so keys of different rows never collide.
        width = max(self.num_classes, int(label_cols.max(initial=-1)) + 1, 1) + 1
        rows = np.repeat(np.arange(self.num_videos, dtype=np.int64), [len(x) for x in self.labels])
        label_keys = np.sort(rows * width + label_cols)
        keys = np.arange(self.num_videos, dtype=np.int64)[:, None] * width + self.classes
        if label_keys.size == 0:
            return np.zeros(self.classes.shape, bool)
        at = np.minimum(np.searchsorted(label_keys, keys), label_keys.size - 1)
        return (label_keys[at] == keys) & (self.classes >= 0)

    def gap(self, top_k: int = SUBMISSION_TOP_K) -> float:
        """GAP@top_k of these predictions against their own labels (padding never counts)."""
        scores = np.where(self.classes >= 0, self.scores, -np.inf)
        return metrics.gap_topk(scores, self.hits(), self.num_positives(), top_k)

    def take(self, index: np.ndarray) -> Predictions:
        """The rows `index` (any integer array), metadata shared."""
        index = np.asarray(index)
        labels = None if self.labels is None else [self.labels[i] for i in index]
        return Predictions(
            self.ids[index], self.classes[index], self.scores[index], labels, dict(self.metadata)
        )

    def _describe(self) -> str:
        name = self.model_name or "predictions"
        split = self.metadata.get("split")
        return f"{name} ({split})" if split else name


class PredictionWriter:
    """Streams top-K predictions of one model on one split into a Parquet prediction store.

    Use as a context manager: rows go to a temporary file beside `path`, renamed onto `path`
    only when the block ends without an exception. Memory holds one row group at most.

    Args:
        path: output file; `.parquet` is appended when it has no suffix.
        model_name: the name ensembles match validation and test files by.
        split: "validate", "test", ...
        num_classes: C, the width of dense probabilities.
        top_k: classes kept per video (clamped to C).
        data_pattern: the records the predictions came from (recorded, not read).
        extra_metadata: more JSON-able key/values for the metadata.
        row_group_size: rows buffered before a row group is written.

    Example:
        >>> with PredictionWriter("preds/netvlad_validate", model_name="netvlad",
        ...                       split="validate", num_classes=3862, top_k=100) as writer:
        ...     for batch in batches:
        ...         writer.add_batch(batch["id"], model(batch), labels=batch["labels"])
    """

    def __init__(
        self,
        path: str,
        *,
        model_name: str,
        split: str,
        num_classes: int,
        top_k: int,
        data_pattern: str = "",
        extra_metadata: Mapping | None = None,
        row_group_size: int = DEFAULT_ROW_GROUP_SIZE,
    ):
        path = os.fspath(path)
        if not os.path.splitext(os.path.basename(path))[1]:
            path += ".parquet"
        if num_classes <= 0 or top_k <= 0:
            raise UsageError(f"num_classes ({num_classes}) and top_k ({top_k}) must be positive")
        self.path = path
        self.num_classes = int(num_classes)
        self.top_k = min(int(top_k), self.num_classes)
        self.row_group_size = int(row_group_size)
        self.metadata = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "model_name": str(model_name),
            "split": str(split),
            "num_classes": self.num_classes,
            "top_k": self.top_k,
            "data_pattern": str(data_pattern or ""),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            **dict(extra_metadata or {}),
        }
        self.num_rows = 0
        self._has_labels: bool | None = None
        self._buffer: list[tuple] = []
        self._buffered = 0
        self._writer = None
        self._stack: contextlib.ExitStack | None = None
        self._tmp: str | None = None

    def __enter__(self) -> PredictionWriter:
        self._stack = contextlib.ExitStack()
        self._tmp = self._stack.enter_context(atomic_path(self.path))
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        stack, self._stack = self._stack, None
        error = exc
        try:
            if exc_type is None:
                self._flush()
                if self._writer is None:  # no rows: still a valid, empty store
                    self._open_writer(bool(self._has_labels))
        except BaseException as err:
            error = err
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                # Close even after a failure, so the temporary can be removed; a failed close
                # (a full disk on the footer) means the file is incomplete.
                writer.close()
            except BaseException as err:
                error = error if error is not None else err
        if error is None:
            stack.close()  # renames the finished file onto the path
            return False
        # Handing the failure to atomic_path deletes the temporary file and keeps the old
        # output; it turns an OSError into `cannot write PATH: reason`.
        stack.__exit__(type(error), error, error.__traceback__)
        if error is exc:
            return False
        raise error

    def add_batch(
        self,
        ids: Sequence[str],
        probabilities: np.ndarray,
        labels: np.ndarray | None = None,
    ) -> None:
        """Adds dense predictions; only each video's top-K classes are kept.

        Args:
            ids: [B] video ids (str or bytes).
            probabilities: [B, C] float scores.
            labels: [B, C] multi-hot ground truth, or None.
        """
        probabilities = np.asarray(probabilities)
        if probabilities.ndim != 2 or probabilities.shape[1] != self.num_classes:
            raise ValueError(
                f"probabilities must be [B, {self.num_classes}], got {probabilities.shape}"
            )
        classes, scores = metrics.top_k_per_row(probabilities, self.top_k, sort=True)
        label_lists = None
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape != probabilities.shape:
                raise ValueError(f"labels {labels.shape} differ from predictions' shape")
            rows, cols = np.nonzero(labels > 0)
            label_lists = np.split(
                cols.astype(np.int32), np.cumsum(np.bincount(rows, minlength=len(labels)))[:-1]
            )
        self._add(ids, classes, scores, label_lists)

    def add_topk(
        self,
        ids: Sequence[str],
        classes: np.ndarray,
        scores: np.ndarray,
        labels: Sequence[np.ndarray] | None = None,
    ) -> None:
        """Adds already-sparse predictions.

        Args:
            ids: [B] video ids.
            classes: [B, K'] int class indices (-1 pads); rows need not be sorted. Rows are cut
                to the store's top_k or padded up to it.
            scores: [B, K'] float scores.
            labels: B int arrays of true classes, or None.
        """
        classes = np.asarray(classes)
        scores = np.asarray(scores, np.float32)
        if classes.ndim != 2 or classes.shape != scores.shape or len(classes) != len(ids):
            raise ValueError(
                f"need ids [B], classes [B, K] and scores [B, K]; got {len(ids)}, "
                f"{classes.shape} and {scores.shape}"
            )
        if classes.size and (classes.max() >= self.num_classes or classes.min() < PAD_CLASS):
            raise ValueError(f"class indices must be in [0, {self.num_classes}) or -1 (padding)")
        key = np.where(classes >= 0, scores, -np.inf)
        order = np.argsort(-key, axis=1, kind="stable")[:, : self.top_k]
        classes = np.take_along_axis(classes, order, axis=1).astype(np.int32)
        scores = np.take_along_axis(scores, order, axis=1)
        scores = np.where(classes >= 0, scores, 0.0).astype(np.float32)
        if classes.shape[1] < self.top_k:
            pad = ((0, 0), (0, self.top_k - classes.shape[1]))
            classes = np.pad(classes, pad, constant_values=PAD_CLASS)
            scores = np.pad(scores, pad)
        if labels is not None:
            if len(labels) != len(ids):
                raise ValueError(f"{len(labels)} label rows for {len(ids)} videos")
            labels = [np.asarray(x, np.int32).ravel() for x in labels]
        self._add(ids, classes, scores, labels)

    def _add(self, ids, classes: np.ndarray, scores: np.ndarray, labels) -> None:
        if self._stack is None:
            raise RuntimeError("use PredictionWriter as a context manager: `with ... as writer:`")
        if len(ids) != len(classes):
            raise ValueError(f"{len(ids)} ids for {len(classes)} prediction rows")
        has_labels = labels is not None
        if self._has_labels is None:
            self._has_labels = has_labels
        elif has_labels != self._has_labels:
            raise ValueError("either every batch has labels or none has")
        if not np.isfinite(scores).all():
            raise ValueError(f"non-finite scores among the top-{self.top_k} of a batch")
        ids = [x.decode() if isinstance(x, bytes) else str(x) for x in np.asarray(ids).tolist()]
        self._buffer.append((ids, classes, scores, labels))
        self._buffered += len(ids)
        self.num_rows += len(ids)
        if self._buffered >= self.row_group_size:
            self._flush()

    def _open_writer(self, has_labels: bool) -> None:
        import pyarrow.parquet as pq

        self.metadata["has_labels"] = has_labels
        schema = _schema(self.top_k, has_labels).with_metadata(
            {METADATA_KEY: json.dumps(self.metadata).encode()}
        )
        self._writer = pq.ParquetWriter(self._tmp, schema, compression="zstd")

    def _flush(self) -> None:
        if not self._buffer:
            return
        import pyarrow as pa

        if self._writer is None:
            self._open_writer(bool(self._has_labels))
        ids = [i for chunk in self._buffer for i in chunk[0]]
        classes = np.concatenate([chunk[1] for chunk in self._buffer])
        scores = np.concatenate([chunk[2] for chunk in self._buffer])
        columns = {
            "id": pa.array(ids, pa.string()),
            "classes": pa.FixedSizeListArray.from_arrays(pa.array(classes.ravel()), self.top_k),
            "scores": pa.FixedSizeListArray.from_arrays(pa.array(scores.ravel()), self.top_k),
        }
        if self._has_labels:
            rows = [x for chunk in self._buffer for x in chunk[3]]
            offsets = np.concatenate([[0], np.cumsum([len(x) for x in rows])]).astype(np.int32)
            values = np.concatenate([np.zeros(0, np.int32), *rows])
            columns["labels"] = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))
        table = pa.Table.from_pydict(columns, schema=self._writer.schema)
        self._writer.write_table(table, row_group_size=max(len(ids), 1))
        self._buffer, self._buffered = [], 0


def _schema(top_k: int, has_labels: bool):
    import pyarrow as pa

    fields = [
        pa.field("id", pa.string(), nullable=False),
        pa.field("classes", pa.list_(pa.int32(), top_k), nullable=False),
        pa.field("scores", pa.list_(pa.float32(), top_k), nullable=False),
    ]
    if has_labels:
        fields.append(pa.field("labels", pa.list_(pa.int32()), nullable=False))
    return pa.schema(fields)


def load_predictions(path: str, *, num_classes: int | None = None) -> Predictions:
    """Loads a prediction store (`.parquet`, as written by `PredictionWriter`).

    Kaggle submission CSVs are not stores: `ensembles.inputs.load_input` reads either.

    Args:
        path: the file.
        num_classes: unused (a store records its own C); kept so callers can pass it.

    Returns:
        `Predictions` with rows in file order.

    Raises:
        UsageError: a missing file, a CSV, or a file that is not a store.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UsageError(f"no such prediction file {path!r}: check the path")
    if path.lower().endswith(_CSV_SUFFIXES):
        raise UsageError(
            f"{path} is a Kaggle CSV, not a prediction store: read it with "
            "`ensembles.inputs.load_input` (stores or CSVs)"
        )
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise UsageError(
            f"{path} is not a Parquet prediction store ({e}); pass files written by `y8m predict`"
        ) from None
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    if raw is None or not {"id", "classes", "scores"} <= set(table.column_names):
        raise UsageError(
            f"{path} is Parquet but not a y8m prediction store (no y8m metadata); "
            "write it with `y8m predict`"
        )
    metadata = json.loads(raw)
    k = int(metadata["top_k"])
    n = table.num_rows
    ids = np.asarray(table.column("id").to_pylist(), dtype=str) if n else np.zeros(0, str)
    classes = _flat_values(table.column("classes")).reshape(n, k)
    scores = _flat_values(table.column("scores")).reshape(n, k)
    labels = None
    if "labels" in table.column_names:
        column = table.column("labels").combine_chunks()
        offsets = np.asarray(column.offsets)
        values = np.asarray(column.flatten().to_numpy(zero_copy_only=False), np.int32)
        labels = np.split(values, offsets[1:-1] - offsets[0]) if n else []
    return Predictions(ids, classes, scores, labels, metadata)


def _flat_values(column) -> np.ndarray:
    if column.num_chunks == 0:
        return np.zeros(0)
    return column.combine_chunks().flatten().to_numpy(zero_copy_only=False)
