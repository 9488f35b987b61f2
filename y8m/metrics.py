"""YouTube-8M metrics (GAP@k, Hit@1, PERR, mAP) in vectorised numpy, equal to the official calculators.

Definitions: reference/yt8m_facts.md section 2 and docs/metrics.md.
"""

from __future__ import annotations

import numpy as np

from y8m.data.specs import SUBMISSION_TOP_K

__all__ = [
    "Evaluator",
    "average_precision_by_class",
    "gap",
    "gap_topk",
    "hit_at_one",
    "mean_average_precision",
    "perr",
    "pooled_average_precision",
    "top_k_per_row",
]

# Rows per chunk for the dense top-k pass: about 16M scores, so the boolean mask stays small.
_CHUNK_ELEMENTS = 1 << 24


def top_k_per_row(
    predictions: np.ndarray, k: int, *, sort: bool = False, chunk_size: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's `k` largest scores and their column indices.

    Uses `np.partition` to find each row's k-th largest score and keeps the scores at or above it,
    which is several times faster than `np.argpartition`; rows with ties at the threshold (or NaN)
    fall back to `argpartition`, which keeps exactly k of the tied entries.

    Args:
        predictions: [N, C] scores (any float dtype; it is kept, not converted).
        k: how many per row; clamped to C.
        sort: order each row by score, descending.
        chunk_size: rows per pass; default keeps a pass near 16M scores.

    Returns:
        `(indices [N, k] int32, scores [N, k])`, unordered within a row unless `sort`.
    """
    predictions = np.asarray(predictions)
    if predictions.ndim != 2:
        raise ValueError(f"predictions must be [N, C], got shape {predictions.shape}")
    n, c = predictions.shape
    k = min(int(k), c)
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    indices = np.empty((n, k), np.int32)
    if chunk_size is None:
        chunk_size = max(1, _CHUNK_ELEMENTS // max(c, 1))
    for start in range(0, n, chunk_size):
        block = predictions[start : start + chunk_size]
        indices[start : start + len(block)] = _top_k_block(block, k)
    scores = np.take_along_axis(predictions, indices, axis=1)
    if sort and k > 1:
        order = np.argsort(-scores, axis=1, kind="stable")
        indices = np.take_along_axis(indices, order, axis=1)
        scores = np.take_along_axis(scores, order, axis=1)
    return indices, scores


def _top_k_block(block: np.ndarray, k: int) -> np.ndarray:
    n, c = block.shape
    if k == c:
        return np.broadcast_to(np.arange(c, dtype=np.int32), (n, c))
    threshold = np.partition(block, c - k, axis=1)[:, c - k : c - k + 1]
    flat = np.flatnonzero(block >= threshold)
    # Every row has at least k entries >= its k-th largest, so a total of n*k means exactly k each.
    if flat.size == n * k:
        return (flat % c).reshape(n, k).astype(np.int32)
    return np.argpartition(block, c - k, axis=1)[:, c - k :].astype(np.int32)


def pooled_average_precision(scores: np.ndarray, hits: np.ndarray, num_positives: float) -> float:
    """Non-interpolated AP of one pooled ranking, as the official `AveragePrecisionCalculator`.

    `AP = (1/P) * sum over hits h of precision@rank(h)`, with P = `num_positives` (which may
    exceed the hits in the list: positives that were never predicted lower recall).

    Ties: an entry tied with a hit counts as ranked above it, so the value does not depend on
    input order; the official code breaks ties with a seeded shuffle instead. Without ties the
    two agree exactly.

    Args:
        scores: [M] scores of the pooled entries.
        hits: [M] bool (or 0/1), whether each entry is a positive.
        num_positives: total positives in the ground truth; 0 gives 0.0.

    Returns:
        The average precision (float).
    """
    scores = np.asarray(scores).ravel()
    hits = np.asarray(hits).ravel().astype(bool, copy=False)
    if scores.shape != hits.shape:
        raise ValueError(f"scores {scores.shape} and hits {hits.shape} differ in shape")
    if num_positives <= 0 or not hits.any():
        return 0.0
    hit_scores = np.sort(scores[hits])
    all_sorted = np.sort(scores)
    # Entries (and hits) scoring >= each hit's score: its rank and the positives up to it.
    rank = all_sorted.size - np.searchsorted(all_sorted, hit_scores, side="left")
    positives_so_far = hit_scores.size - np.searchsorted(hit_scores, hit_scores, side="left")
    return float(np.sum(positives_so_far / rank.astype(np.float64)) / float(num_positives))


def gap_topk(
    scores: np.ndarray, hits: np.ndarray, num_positives: float, top_k: int = SUBMISSION_TOP_K
) -> float:
    """GAP from each video's top predictions (the sparse form used by ensembles and submissions).

    Args:
        scores: [V, K] float scores of each video's predicted classes; rows need not be sorted;
            padding entries are -inf.
        hits: [V, K] bool or 0/1, whether each predicted class is a true label of the video.
        num_positives: total positive labels in the ground truth, including labels that no row
            predicted.
        top_k: only each row's `top_k` highest scores count (all of them when K <= top_k).

    Returns:
        Global average precision at `top_k` (float).
    """
    scores = np.asarray(scores)
    hits = np.asarray(hits)
    if scores.ndim != 2 or scores.shape != hits.shape:
        raise ValueError(f"scores {scores.shape} and hits {hits.shape} must both be [V, K]")
    if scores.shape[1] > top_k:
        index, scores = top_k_per_row(scores, top_k)
        hits = np.take_along_axis(hits, index, axis=1)
    # A -inf score marks a class that was not predicted: it can never be a hit.
    return pooled_average_precision(scores, (hits > 0) & (scores > -np.inf), num_positives)


def _check_dense(predictions: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    predictions = np.asarray(predictions)
    labels = np.asarray(labels)
    if predictions.ndim != 2 or predictions.shape != labels.shape:
        raise ValueError(
            f"predictions {predictions.shape} and labels {labels.shape} must both be [N, C]"
        )
    return predictions, labels


def gap(predictions: np.ndarray, labels: np.ndarray, top_k: int = SUBMISSION_TOP_K) -> float:
    """Global average precision at `top_k`, the Kaggle 2017/2018 metric.

    Each video contributes its `top_k` (score, is-label) pairs; all pairs are ranked together;
    the AP is divided by the total number of positive labels (including those outside every
    top-k list).

    Args:
        predictions: [N, C] float scores.
        labels: [N, C] multi-hot (0/1) ground truth.
        top_k: predictions kept per video.

    Returns:
        GAP (float).
    """
    predictions, labels = _check_dense(predictions, labels)
    index, scores = top_k_per_row(predictions, top_k)
    hits = np.take_along_axis(labels, index, axis=1) > 0
    return pooled_average_precision(scores, hits, float(np.sum(labels, dtype=np.float64)))


def hit_at_one(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Mean over videos of the label value at the top-scoring class (first one on ties).

    Args:
        predictions: [N, C] float scores.
        labels: [N, C] multi-hot ground truth.

    Returns:
        Hit@1 (float); 0.0 for no videos.
    """
    predictions, labels = _check_dense(predictions, labels)
    if len(predictions) == 0:
        return 0.0
    top = np.argmax(predictions, axis=1)
    return float(np.mean(labels[np.arange(len(labels)), top], dtype=np.float64))


def perr(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Precision at equal recall rate, averaged over all videos.

    For a video with L labels: the fraction of its top-L classes that are labels and have a
    positive score. As in the official code a video with no labels scores 0 and still counts
    in the mean.

    Args:
        predictions: [N, C] float scores.
        labels: [N, C] multi-hot ground truth.

    Returns:
        PERR (float); 0.0 for no videos.
    """
    predictions, labels = _check_dense(predictions, labels)
    if len(predictions) == 0:
        return 0.0
    num_labels = _num_labels(labels)
    index, scores, values = _sorted_top(predictions, labels, int(num_labels.max()))
    return float(np.sum(_perr_per_video(index, scores, values, num_labels)) / len(predictions))


def _num_labels(labels: np.ndarray) -> np.ndarray:
    """[N] int label count per video: int() of the row sum, as the official code (truncates)."""
    counts = np.trunc(np.sum(labels, axis=1, dtype=np.float64)).astype(np.int64)
    return np.minimum(counts, labels.shape[1])


def _perr_per_video(
    index: np.ndarray, scores: np.ndarray, values: np.ndarray, num_labels: np.ndarray
) -> np.ndarray:
    """[N] precision at equal recall of each video (0 for videos without labels).

    Args:
        index, scores, values: [N, k] each row's top-k classes, scores and label values, sorted
            by score descending, with k >= max(num_labels).
        num_labels: [N] labels per video.
    """
    keep = np.arange(index.shape[1])[None, :] < num_labels[:, None]
    counted = np.where(keep & (scores > 0), values.astype(np.float64), 0.0)
    return np.divide(
        counted.sum(axis=1),
        num_labels,
        out=np.zeros(len(num_labels), np.float64),
        where=num_labels > 0,
    )


def _sorted_top(
    predictions: np.ndarray, labels: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's top-k classes, scores and label values, sorted by score descending."""
    index, scores = top_k_per_row(predictions, max(k, 1), sort=True)
    return index, scores, np.take_along_axis(labels, index, axis=1)


def average_precision_by_class(
    classes: np.ndarray,
    scores: np.ndarray,
    hits: np.ndarray,
    positives_per_class: np.ndarray,
) -> np.ndarray:
    """Per-class AP over pooled (class, score, hit) triplets, as `MeanAveragePrecisionCalculator`.

    Args:
        classes: [M] int class of each pooled prediction.
        scores: [M] float score.
        hits: [M] bool, whether the prediction is a true label.
        positives_per_class: [C] positives of each class in the full ground truth.

    Returns:
        [C] float64 AP per class; NaN for classes with no positives (the official calculator
        leaves them out of the mean).
    """
    classes = np.asarray(classes).ravel()
    scores = np.asarray(scores).ravel()
    hits = np.asarray(hits).ravel().astype(bool, copy=False)
    positives = np.asarray(positives_per_class, np.float64)
    num_classes = positives.size
    sums = np.zeros(num_classes, np.float64)
    if hits.any():
        # Group by class, then within a class count entries/hits scoring >= each hit, mirroring
        # `pooled_average_precision` (same tie rule) without a Python loop over classes.
        order = np.lexsort((scores, classes))
        classes, scores, hits = classes[order], scores[order], hits[order]
        group_end = np.searchsorted(classes, classes, side="right")
        first_ge = _first_index_ge(classes, scores)
        rank = group_end - first_ge
        hit_cum = np.concatenate([[0], np.cumsum(hits)])
        positives_so_far = hit_cum[group_end] - hit_cum[first_ge]
        precision = positives_so_far[hits] / rank[hits].astype(np.float64)
        sums = np.bincount(classes[hits], weights=precision, minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = np.where(positives > 0, sums / np.where(positives > 0, positives, 1.0), np.nan)
    return ap


def _first_index_ge(classes: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """For entries sorted by (class, score), the first index of each one's (class, score) run."""
    new_run = np.ones(classes.size, bool)
    new_run[1:] = (classes[1:] != classes[:-1]) | (scores[1:] != scores[:-1])
    starts = np.flatnonzero(new_run)
    return starts[np.cumsum(new_run) - 1]


def mean_average_precision(
    predictions: np.ndarray, labels: np.ndarray, top_k: int = SUBMISSION_TOP_K
) -> float:
    """The official eval.py "MAP": mean per-class AP over the pooled top-k-per-video predictions.

    Each class's AP ranks the scores that reached some video's top-k list in that class, and
    divides by all its positives in the ground truth; classes with no positives are left out.

    Args:
        predictions: [N, C] float scores.
        labels: [N, C] multi-hot ground truth.
        top_k: predictions kept per video; None keeps every class.

    Returns:
        mAP (float); 0.0 when no class has a positive (the official code would give NaN).
    """
    predictions, labels = _check_dense(predictions, labels)
    k = predictions.shape[1] if top_k is None else top_k
    index, scores = top_k_per_row(predictions, k)
    hits = np.take_along_axis(labels, index, axis=1) > 0
    positives = np.sum(labels, axis=0, dtype=np.float64)
    return _nanmean(average_precision_by_class(index, scores, hits, positives))


def _nanmean(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else 0.0


class Evaluator:
    """Streaming GAP, Hit@1, PERR and mAP over batches of dense predictions.

    Memory is bounded by `top_k` per video: each batch is reduced to its top-k (score, class,
    hit) triplets plus per-class positive counts; Hit@1 and PERR are summed batch by batch.

    Args:
        num_classes: C, the width of every batch.
        top_k: predictions kept per video for GAP and mAP (20 in the Kaggle metric).

    Example:
        >>> ev = Evaluator(num_classes=3862)
        >>> for batch in batches:
        ...     ev.update(batch["predictions"], batch["labels"])
        >>> ev.result()["gap"]
    """

    def __init__(self, num_classes: int, top_k: int = SUBMISSION_TOP_K):
        if num_classes <= 0 or top_k <= 0:
            raise ValueError(f"num_classes ({num_classes}) and top_k ({top_k}) must be positive")
        self.num_classes = int(num_classes)
        self.top_k = int(top_k)
        self.reset()

    def reset(self) -> None:
        """Forgets every batch seen so far."""
        self._scores: list[np.ndarray] = []
        self._classes: list[np.ndarray] = []
        self._hits: list[np.ndarray] = []
        self._positives = np.zeros(self.num_classes, np.float64)
        self._hit_at_one_sum = 0.0
        self._perr_sum = 0.0
        self._num_videos = 0

    def update(self, predictions: np.ndarray, labels: np.ndarray) -> None:
        """Adds one batch.

        Args:
            predictions: [B, C] float scores.
            labels: [B, C] multi-hot ground truth.
        """
        predictions, labels = _check_dense(predictions, labels)
        if predictions.shape[1] != self.num_classes:
            raise ValueError(
                f"batch has {predictions.shape[1]} classes, evaluator expects {self.num_classes}"
            )
        if len(predictions) == 0:
            return
        # One sorted top-k pass serves GAP/mAP (first top_k columns) and PERR (first L columns).
        num_labels = _num_labels(labels)
        index, scores, values = _sorted_top(
            predictions, labels, max(self.top_k, int(num_labels.max()))
        )
        k = min(self.top_k, self.num_classes)
        self._classes.append(np.ascontiguousarray(index[:, :k]))
        self._scores.append(np.ascontiguousarray(scores[:, :k]))
        self._hits.append(values[:, :k] > 0)
        self._positives += np.sum(labels, axis=0, dtype=np.float64)
        self._hit_at_one_sum += hit_at_one(predictions, labels) * len(predictions)
        self._perr_sum += float(np.sum(_perr_per_video(index, scores, values, num_labels)))
        self._num_videos += len(predictions)

    def state(self) -> dict[str, np.ndarray]:
        """Everything accumulated, as arrays (for saving): `merge` on another evaluator adds it.

        Workers that evaluate disjoint shards save their state; one merges them all, and the
        result equals evaluating every video in one process.
        """
        k = min(self.top_k, self.num_classes)
        empty = (np.zeros((0, k), np.int64), np.zeros((0, k), np.float32), np.zeros((0, k), bool))
        return {
            "classes": np.concatenate(self._classes) if self._classes else empty[0],
            "scores": np.concatenate(self._scores) if self._scores else empty[1],
            "hits": np.concatenate(self._hits) if self._hits else empty[2],
            "positives": self._positives.copy(),
            "sums": np.array([self._hit_at_one_sum, self._perr_sum, self._num_videos], np.float64),
        }

    def merge(self, state: dict[str, np.ndarray]) -> None:
        """Adds the `state()` of an evaluator that saw other videos."""
        if np.asarray(state["positives"]).shape != (self.num_classes,):
            raise ValueError("cannot merge evaluators of different num_classes")
        self._classes.append(np.asarray(state["classes"]))
        self._scores.append(np.asarray(state["scores"]))
        self._hits.append(np.asarray(state["hits"], bool))
        self._positives += np.asarray(state["positives"], np.float64)
        hit_sum, perr_sum, n = (float(v) for v in state["sums"])
        self._hit_at_one_sum += hit_sum
        self._perr_sum += perr_sum
        self._num_videos += int(n)

    def result(self) -> dict:
        """The metrics so far: `gap`, `hit_at_one`, `perr`, `map` (floats) and `num_videos`."""
        n = self._num_videos
        if n == 0:
            return {"gap": 0.0, "hit_at_one": 0.0, "perr": 0.0, "map": 0.0, "num_videos": 0}
        scores = np.concatenate(self._scores)
        classes = np.concatenate(self._classes)
        hits = np.concatenate(self._hits)
        total_positives = float(self._positives.sum())
        ap = average_precision_by_class(classes, scores, hits, self._positives)
        return {
            "gap": pooled_average_precision(scores, hits, total_positives),
            "hit_at_one": self._hit_at_one_sum / n,
            "perr": self._perr_sum / n,
            "map": _nanmean(ap),
            "num_videos": n,
        }
