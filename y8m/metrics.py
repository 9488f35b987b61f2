"""YouTube-8M metrics (GAP@k, Hit@1, PERR, mAP) in vectorised numpy, equal to the official calculators.

Definitions: reference/yt8m_facts.md section 2 and docs/metrics.md.

Tie rule (every function here, the streaming `Evaluator`, and through them the ensembles and
`y8m submission score`): entries are ranked by score, highest first; among equal scores the
negatives (label <= 0) rank before the positives, then the lower class index first. It applies
to each video's top-k cut, to the pooled ranking across videos (GAP, and mAP within a class),
to PERR's top-L and to Hit@1, so tied scores are never rewarded and no value depends on input
order or on how videos are batched. Where no labels are given (writing top-k lists) ties go to
the lower class index. NaN ranks as -inf. Without ties every value equals the official one.
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
    predictions: np.ndarray,
    k: int,
    *,
    sort: bool = False,
    chunk_size: int | None = None,
    labels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's `k` largest scores and their column indices, ties by the module's rule.

    Uses `np.partition` to find each row's k-th largest score and keeps the scores at or above
    it, which is several times faster than `np.argpartition`. Rows with more than k entries at
    or above it (ties at the cut) keep every entry above it and fill up with the tied ones:
    negatives (`labels <= 0`) before positives, then the lower column first.

    Args:
        predictions: [N, C] scores (any float dtype; it is kept, not converted).
        k: how many per row; clamped to C.
        sort: order each row by score descending, ties as at the cut.
        chunk_size: rows per pass; default keeps a pass near 16M scores.
        labels: [N, C] ground truth (or hits) that breaks ties; None breaks them by column.

    Returns:
        `(indices [N, k] int32, scores [N, k])`; within a row by ascending column unless `sort`.
    """
    predictions = np.asarray(predictions)
    if predictions.ndim != 2:
        raise ValueError(f"predictions must be [N, C], got shape {predictions.shape}")
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != predictions.shape:
            raise ValueError(f"labels {labels.shape} and predictions {predictions.shape} differ")
    n, c = predictions.shape
    k = min(int(k), c)
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    indices = np.empty((n, k), np.int32)
    if chunk_size is None:
        chunk_size = max(1, _CHUNK_ELEMENTS // max(c, 1))
    for start in range(0, n, chunk_size):
        block = predictions[start : start + chunk_size]
        block_labels = None if labels is None else labels[start : start + chunk_size]
        indices[start : start + len(block)] = _top_k_block(block, k, block_labels)
    scores = np.take_along_axis(predictions, indices, axis=1)
    if sort and k > 1:
        order = _rank_order(scores, None if labels is None else _take(labels, indices) > 0)
        indices = np.take_along_axis(indices, order, axis=1)
        scores = np.take_along_axis(scores, order, axis=1)
    return indices, scores


def _take(values: np.ndarray, indices: np.ndarray) -> np.ndarray:
    return np.take_along_axis(values, indices, axis=1)


def _rank_order(scores: np.ndarray, hits: np.ndarray | None) -> np.ndarray:
    """[N, k] argsort of rows whose columns ascend: score descending, negatives first on ties."""
    keys = -_nan_as_lowest(scores)
    if hits is None:
        return np.argsort(keys, axis=1, kind="stable")
    # Negatives first (stable, so columns stay ascending within each group), then by score.
    by_hit = np.argsort(hits, axis=1, kind="stable")
    by_score = np.argsort(_take(keys, by_hit), axis=1, kind="stable")
    return _take(by_hit, by_score)


def _nan_as_lowest(scores: np.ndarray) -> np.ndarray:
    """`scores` with NaN replaced by -inf (the same array when it has none)."""
    if np.issubdtype(scores.dtype, np.floating) and np.isnan(scores).any():
        return np.where(np.isnan(scores), -np.inf, scores).astype(scores.dtype)
    return scores


def _top_k_block(block: np.ndarray, k: int, labels: np.ndarray | None) -> np.ndarray:
    n, c = block.shape
    if k == c:
        return np.broadcast_to(np.arange(c, dtype=np.int32), (n, c))
    threshold = np.partition(block, c - k, axis=1)[:, c - k : c - k + 1]
    rows, columns = np.divmod(np.flatnonzero(block >= threshold), c)
    # A NaN ranks as -inf but is never >= anything: rows whose k-th largest is -inf (padding,
    # which may tie with NaN) go the slow way below, like rows with too few entries.
    minus_inf = threshold[:, 0] == -np.inf
    # Fast path: every row has exactly k entries at or above its k-th largest (no ties, no NaN).
    if rows.size == n * k and np.array_equal(rows, np.arange(n * k) // k) and not minus_inf.any():
        return columns.reshape(n, k).astype(np.int32)
    out = np.empty((n, k), np.int32)
    counts = np.bincount(rows, minlength=n)
    counts[minus_inf] = 0
    exact = counts == k
    out[exact] = columns[exact[rows]].reshape(-1, k)
    over = counts > k  # ties at the k-th largest: choose among the entries equal to it
    if over.any():
        at = over[rows]
        out[over] = _break_ties(block, labels, rows[at], columns[at], counts[over], threshold, k)
    under = np.flatnonzero(counts < k)  # NaN among the top k, or a k-th largest of -inf
    if under.size:
        sub = _nan_as_lowest(block[under])
        sub_labels = None if labels is None else labels[under]
        sub_threshold = np.partition(sub, c - k, axis=1)[:, c - k : c - k + 1]
        sub_rows, sub_columns = np.divmod(np.flatnonzero(sub >= sub_threshold), c)
        sub_counts = np.bincount(sub_rows, minlength=under.size)
        out[under] = _break_ties(
            sub, sub_labels, sub_rows, sub_columns, sub_counts, sub_threshold, k
        )
    return out


def _break_ties(block, labels, rows, columns, counts, threshold, k) -> np.ndarray:
    """[m, k] columns kept in m rows that have `counts` (> k) entries at or above `threshold`.

    `rows`, `columns` list those entries row by row (columns ascending). Entries above the
    threshold stay; the rest are filled from the tied ones, negatives first, then by column.
    Works on the listed entries only, not on whole rows.
    """
    above = block[rows, columns] > threshold[rows, 0]
    local = np.repeat(np.arange(counts.size), counts)  # row of each entry, 0..m-1
    starts = np.cumsum(counts) - counts

    def rank_in_row(mask):  # 1-based rank of each entry among its row's `mask` entries
        running = np.cumsum(mask)
        return running - (running[starts] - mask[starts])[local]

    need = k - np.bincount(local, weights=above, minlength=counts.size).astype(np.int64)
    tied = ~above
    if labels is None:
        keep = above | (tied & (rank_in_row(tied) <= need[local]))
    else:
        positive = labels[rows, columns] > 0
        negative = tied & ~positive
        positive &= tied
        keep = above | (negative & (rank_in_row(negative) <= need[local]))
        need -= np.bincount(local, weights=negative, minlength=counts.size).astype(np.int64)
        keep |= positive & (rank_in_row(positive) <= need[local])
    return columns[keep].reshape(-1, k)


def pooled_average_precision(scores: np.ndarray, hits: np.ndarray, num_positives: float) -> float:
    """Non-interpolated AP of one pooled ranking, as the official `AveragePrecisionCalculator`.

    `AP = (1/P) * sum over hits h of precision@rank(h)`, with P = `num_positives` (which may
    exceed the hits in the list: positives that were never predicted lower recall).

    Ties: among equal scores the misses rank before the hits (the module's rule), so the value
    does not depend on input order; the official code breaks ties with a seeded shuffle
    instead. Without ties the two agree exactly.

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
    scores = _nan_as_lowest(scores)
    hit_scores = np.sort(scores[hits])
    all_sorted = np.sort(scores)
    # A run of h hits tied at score s sits below every entry scoring > s and every miss scoring
    # s; its j-th hit (j = 1..h) has rank (entries >= s) - h + j and (hits > s) + j positives.
    first = np.searchsorted(hit_scores, hit_scores, side="left")
    after = np.searchsorted(hit_scores, hit_scores, side="right")
    j = np.arange(1, hit_scores.size + 1) - first
    rank = (
        all_sorted.size - np.searchsorted(all_sorted, hit_scores, side="left") - (after - first) + j
    )
    positives_so_far = hit_scores.size - after + j
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
    # A -inf score marks a class that was not predicted: it can never be a hit.
    hits = (hits > 0) & (scores > -np.inf)
    if scores.shape[1] > top_k:
        index, scores = top_k_per_row(scores, top_k, labels=hits)
        hits = _take(hits, index)
    return pooled_average_precision(scores, hits, num_positives)


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
    index, scores = top_k_per_row(predictions, top_k, labels=labels)
    hits = _take(labels, index) > 0
    return pooled_average_precision(scores, hits, float(np.sum(labels, dtype=np.float64)))


def hit_at_one(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Mean over videos of the label value at the top-ranked class.

    On a tie for the top score a negative class ranks first (the module's rule), so the video
    counts only when every class sharing the top score is a label; the official code takes the
    first such class instead. Without ties the two agree.

    Args:
        predictions: [N, C] float scores.
        labels: [N, C] multi-hot ground truth.

    Returns:
        Hit@1 (float); 0.0 for no videos.
    """
    predictions, labels = _check_dense(predictions, labels)
    if len(predictions) == 0:
        return 0.0
    top = np.argmax(predictions, axis=1)[:, None]
    best = _take(predictions, top)
    # Only rows whose best score is shared (or NaN) need the tie rule.
    tied = np.flatnonzero(
        (np.count_nonzero(predictions == best, axis=1) > 1) | np.isnan(best[:, 0])
    )
    if tied.size:
        top[tied] = top_k_per_row(predictions[tied], 1, labels=labels[tied])[0]
    return float(np.mean(_take(labels, top), dtype=np.float64))


def perr(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Precision at equal recall rate, averaged over all videos.

    For a video with L labels: the fraction of its top-L classes that are labels and have a
    positive score. As in the official code a video with no labels scores 0 and still counts
    in the mean. Ties at the L-th score keep the negatives first (the module's rule), so the
    value of a video never depends on the other videos of its batch.

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
    """Each row's top-k classes, scores and label values, ranked by the module's tie rule.

    The rule is a total order, so the first j columns are the row's top-j for every j <= k.
    """
    index, scores = top_k_per_row(predictions, max(k, 1), sort=True, labels=labels)
    return index, scores, _take(labels, index)


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
        # Group by class, then rank within a class as `pooled_average_precision` (same tie
        # rule: a run of tied entries ranks its misses first), without a Python loop.
        scores = _nan_as_lowest(scores)
        order = np.lexsort((scores, classes))
        classes, scores, hits = classes[order], scores[order], hits[order]
        group_end = np.searchsorted(classes, classes, side="right")
        run_start, run_end = _runs(classes, scores)
        hit_cum = np.concatenate([[0], np.cumsum(hits)])
        run_hits = hit_cum[run_end] - hit_cum[run_start]
        j = hit_cum[1:] - hit_cum[run_start]  # at a hit: its place among its run's hits
        rank = group_end - run_start - run_hits + j
        positives_so_far = hit_cum[group_end] - hit_cum[run_start] - run_hits + j
        precision = positives_so_far[hits] / rank[hits].astype(np.float64)
        sums = np.bincount(classes[hits], weights=precision, minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = np.where(positives > 0, sums / np.where(positives > 0, positives, 1.0), np.nan)
    return ap


def _runs(classes: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For entries sorted by (class, score): start and end (exclusive) of each one's run."""
    new_run = np.ones(classes.size, bool)
    new_run[1:] = (classes[1:] != classes[:-1]) | (scores[1:] != scores[:-1])
    starts = np.flatnonzero(new_run)
    ends = np.append(starts[1:], classes.size)
    run = np.cumsum(new_run) - 1
    return starts[run], ends[run]


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
    index, scores = top_k_per_row(predictions, k, labels=labels)
    hits = _take(labels, index) > 0
    positives = np.sum(labels, axis=0, dtype=np.float64)
    return _nanmean(average_precision_by_class(index, scores, hits, positives))


def _nanmean(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else 0.0


class Evaluator:
    """Streaming GAP, Hit@1, PERR and mAP over batches of dense predictions.

    Memory is bounded by `top_k` per video: each batch is reduced to its top-k (score, class,
    hit) triplets plus per-class positive counts; Hit@1 and PERR are summed batch by batch.
    Ties follow the module's rule, so any split into batches gives the values of `gap`,
    `hit_at_one`, `perr` and `mean_average_precision` on all the videos at once.

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
        # One ranked top-k pass serves GAP/mAP (first top_k columns), Hit@1 (first column) and
        # PERR (first L columns): the tie rule is a total order, so each prefix is that top-j.
        num_labels = _num_labels(labels)
        index, scores, values = _sorted_top(
            predictions, labels, max(self.top_k, int(num_labels.max()))
        )
        k = min(self.top_k, self.num_classes)
        self._classes.append(np.ascontiguousarray(index[:, :k]))
        self._scores.append(np.ascontiguousarray(scores[:, :k]))
        self._hits.append(values[:, :k] > 0)
        self._positives += np.sum(labels, axis=0, dtype=np.float64)
        self._hit_at_one_sum += float(np.sum(values[:, 0], dtype=np.float64))
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
