"""2019 segment task: per-class top segments in bounded memory, segment mAP, the rated classes.

References: yt8m_facts.md 1.6 (rated segments, `segment_label_ids.csv`), 2.6 (segment mAP),
3 (the official inference: rated classes, top 20 classes per segment, best N per class).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from submissions import parsing
from y8m.data import specs
from y8m.errors import UsageError
from y8m.metrics import top_k_per_row


class SegmentTopK:
    """Keeps, for each rated class, the best-scored segments seen in a stream of batches.

    Follows the official 2019 inference: scores are restricted to the rated classes, each segment
    keeps only its `top_k` best rated classes, and each class keeps its `max_per_class` best
    (score, segment id) pairs. Memory is bounded: each class buffers at most
    2 * max_per_class pairs (pruned with `argpartition` when it grows past that), plus one batch.
    Ties are deterministic, whatever the batching: a segment's cut keeps the lower class id
    (as `y8m.metrics.top_k_per_row` without labels) and a class's cut the lower segment id.

    Args:
        class_ids: [R] the rated class ids (columns of the score matrices), e.g. from
            `load_segment_label_ids`.
        max_per_class: segments kept per class (Kaggle allowed SEGMENT_MAX_PRED).
        top_k: rated classes kept per segment.

    Example:
        >>> topk = SegmentTopK([3, 7], max_per_class=2, top_k=1)
        >>> scores = np.zeros((2, 8))
        >>> scores[:, [3, 7]] = [[0.9, 0.1], [0.2, 0.8]]
        >>> topk.update(["a:0", "a:5"], scores).result()
        {3: ['a:0'], 7: ['a:5']}
    """

    def __init__(
        self,
        class_ids: Sequence[int] | np.ndarray,
        max_per_class: int = specs.SEGMENT_MAX_PRED,
        top_k: int = specs.SUBMISSION_TOP_K,
    ):
        class_ids = np.asarray(class_ids, dtype=np.int64)
        if class_ids.ndim != 1 or not len(class_ids) or len(np.unique(class_ids)) != len(class_ids):
            raise UsageError("class_ids must be a non-empty list of distinct class ids")
        if class_ids.min() < 0:
            raise UsageError(f"class ids must be >= 0, got {int(class_ids.min())}")
        if max_per_class < 1 or top_k < 1:
            raise UsageError(
                f"max_per_class and top_k must be positive, got {max_per_class} and {top_k}"
            )
        self.class_ids = class_ids
        self._by_id = np.argsort(class_ids, kind="stable")  # columns in class id order
        self.max_per_class = int(max_per_class)
        self.top_k = int(top_k)
        num_rated = len(class_ids)
        self._scores: list[list[np.ndarray]] = [[] for _ in range(num_rated)]
        self._segments: list[list[np.ndarray]] = [[] for _ in range(num_rated)]
        self._sizes = np.zeros(num_rated, np.int64)
        # After a prune, anything below a class's kept minimum can never enter its top list.
        self._floor = np.full(num_rated, -np.inf)
        self.num_segments = 0

    @property
    def buffered(self) -> np.ndarray:
        """[R] int64: pairs held per rated class right now (never above 2 * max_per_class)."""
        return self._sizes.copy()

    def update(self, segment_ids: Sequence[str], scores: np.ndarray) -> SegmentTopK:
        """Adds one batch of segments.

        Args:
            segment_ids: [S] segment ids `videoid:start`.
            scores: [S, C] float class scores over the whole vocabulary (C > max class id).

        Returns:
            self.
        """
        scores = np.asarray(scores)
        segments = np.char.encode(np.asarray(segment_ids, dtype=str), "utf-8")  # (S,) bytes
        if scores.ndim != 2 or len(scores) != len(segments):
            raise ValueError(f"need scores [S, C] for {len(segments)} segments, got {scores.shape}")
        if scores.shape[1] <= self.class_ids.max():
            raise ValueError(
                f"scores have {scores.shape[1]} classes but class id {self.class_ids.max()} is rated"
            )
        if not len(segments):
            return self
        if not np.issubdtype(scores.dtype, np.floating):
            scores = scores.astype(np.float64)
        rated = scores[:, self.class_ids[self._by_id]]  # (S, R), by increasing class id
        num_rated = rated.shape[1]
        k = min(self.top_k, num_rated)
        picked, values = top_k_per_row(rated, k)  # (S, k); ties keep the lower class id
        values = values.ravel()
        columns = self._by_id[picked.ravel()]
        rows = np.repeat(np.arange(len(segments)), k)
        keep = values >= self._floor[columns]
        values, columns, rows = values[keep], columns[keep], rows[keep]
        order = np.argsort(columns, kind="stable")
        columns, values, rows = columns[order], values[order], rows[order]
        touched, starts = np.unique(columns, return_index=True)
        for column, part_values, part_rows in zip(
            touched.tolist(), np.split(values, starts[1:]), np.split(rows, starts[1:])
        ):
            self._scores[column].append(part_values)
            self._segments[column].append(segments[part_rows])
            self._sizes[column] += len(part_values)
            if self._sizes[column] > 2 * self.max_per_class:
                self._prune(column)
        self.num_segments += len(segments)
        return self

    def result(self) -> dict[int, list[str]]:
        """Class id -> its best segment ids, highest score first (ties by segment id).

        Classes that never received a segment are left out; classes follow `class_ids` order.
        """
        return {class_id: ids for class_id, (ids, _) in self.scored_result().items()}

    def scored_result(self) -> dict[int, tuple[list[str], list[float]]]:
        """As `result`, with each kept segment's score: class id -> (segment ids, scores)."""
        out = {}
        for column, class_id in enumerate(self.class_ids.tolist()):
            if not self._sizes[column]:
                continue
            scores, segments = self._top(column)
            order = np.lexsort((segments, -scores))
            ids = [s.decode("utf-8") for s in segments[order].tolist()]
            out[class_id] = (ids, scores[order].astype(float).tolist())
        return out

    def _top(self, column: int) -> tuple[np.ndarray, np.ndarray]:
        scores = np.concatenate(self._scores[column])
        segments = np.concatenate(self._segments[column])
        n = self.max_per_class
        if len(scores) > n:
            threshold = -np.partition(-scores, n - 1)[n - 1]
            above = np.flatnonzero(scores > threshold)
            tied = np.flatnonzero(scores == threshold)
            # Ties at the cut keep the lower segment ids, the order `result` lists them in.
            tied = tied[np.argsort(segments[tied], kind="stable")[: n - len(above)]]
            best = np.concatenate([above, tied])
            scores, segments = scores[best], segments[best]
        return scores, segments

    def _prune(self, column: int) -> None:
        scores, segments = self._top(column)
        self._scores[column], self._segments[column] = [scores], [segments]
        self._sizes[column] = len(scores)
        self._floor[column] = scores.min()


def segment_map(
    submission: Mapping[int, Sequence[str]],
    ratings: pd.DataFrame,
    top_n: int | None = specs.SEGMENT_MAX_PRED,
) -> dict:
    """Segment mAP of a 2019 submission against the rated segments (reference 2.6).

    As the official `segment_eval_inference.py`: each submitted class's list is cut to `top_n`,
    then predictions of unrated (segment, class) pairs are dropped (neither hits nor misses);
    the remaining M get rank-only scores (M - j) / M; a class's positives are its rated pairs
    with score > 0, whether predicted or not; AP is non-interpolated over the whole list; the
    result is the mean AP over the submitted classes that have positives.

    Departures, for invalid input only: a submitted class with no positive is left out of the
    mean (the official script stops with a KeyError), and a segment listed twice in one class
    counts once, at its first position (the official script would count it twice).

    Args:
        submission: class id -> segment ids `videoid:start`, most confident first.
        ratings: DataFrame with columns `id`, `class`, `start_time`, `score` (one row per rated
            segment and class; the last row wins for a repeated pair, as in the official dict).
        top_n: predictions read per class; None or 0 reads all.

    Returns:
        dict: `map`, `num_classes` (classes averaged), `aps` (class -> AP), `num_positives`,
        `num_rated`, `skipped_classes` (submitted classes without positives),
        `unsubmitted_classes` (classes with positives that the submission does not list; the
        official metric ignores them too).
    """
    segment_keys = (
        ratings["id"].astype(str) + ":" + ratings["start_time"].astype(np.int64).astype(str)
    )
    table = pd.DataFrame(
        {
            "segment": segment_keys,
            "class": ratings["class"].astype(np.int64),
            "positive": ratings["score"].astype(np.float64) > 0,
        }
    ).drop_duplicates(["segment", "class"], keep="last")
    positives = table.loc[table["positive"]].groupby("class").size()
    rated = {
        int(c): dict(zip(group["segment"], group["positive"]))
        for c, group in table.groupby("class", sort=False)
    }
    aps: dict[int, float] = {}
    skipped = []
    for class_id in sorted(int(c) for c in submission):
        num_positives = int(positives.get(class_id, 0))
        if not num_positives:
            skipped.append(class_id)
            continue
        predictions = list(submission[class_id])
        if top_n:
            predictions = predictions[:top_n]
        predictions = list(dict.fromkeys(predictions))
        judged = rated.get(class_id, {})
        hits = np.array([judged[p] for p in predictions if p in judged], dtype=bool)
        aps[class_id] = _average_precision(hits, num_positives)
    unsubmitted = sorted(set(positives.index.astype(int)) - {int(c) for c in submission})
    return {
        "map": float(np.mean(list(aps.values()))) if aps else 0.0,
        "num_classes": len(aps),
        "aps": aps,
        "num_positives": int(positives.sum()),
        "num_rated": len(table),
        "skipped_classes": skipped,
        "unsubmitted_classes": len(unsubmitted),
    }


def _average_precision(hits: np.ndarray, num_positives: int) -> float:
    """Non-interpolated AP of a ranked [M] hit list with `num_positives` positives in all."""
    if not hits.any():
        return 0.0
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].sum() / num_positives)


def load_segment_label_ids(path: str) -> np.ndarray:
    """The rated class ids of a `segment_label_ids.csv` file: header `Index`, one id per line.

    Returns:
        [R] int64 class ids in file order.

    Raises:
        UsageError: with the line number of a bad header, a non-integer or a repeated id.
    """
    ids: list[int] = []
    with parsing.open_text(path) as f:
        header = f.readline().strip()
        if header.lower() != specs.SEGMENT_LABEL_IDS_COLUMN.lower():
            raise UsageError(
                f"{path}: line 1: header is {header!r}, expected {specs.SEGMENT_LABEL_IDS_COLUMN!r}"
            )
        seen: set[int] = set()
        for line_no, line in enumerate(f, start=2):
            text = line.strip()
            if not text:
                continue
            if not (text.isascii() and text.isdigit()):
                raise UsageError(
                    f"{path}: line {line_no}: class id {text[:40]!r} is not an integer"
                )
            if int(text) in seen:
                raise UsageError(f"{path}: line {line_no}: class id {text} is listed twice")
            seen.add(int(text))
            ids.append(int(text))
    if not ids:
        raise UsageError(
            f"{path}: no class ids under the {specs.SEGMENT_LABEL_IDS_COLUMN!r} header"
        )
    return np.asarray(ids, dtype=np.int64)
