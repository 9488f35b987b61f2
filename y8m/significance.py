"""Paired bootstrap over videos: intervals for GAP, per-class AP and their differences.

The method and its checks: docs/metrics.md, "Significance".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from y8m import metrics
from y8m.data.specs import SUBMISSION_TOP_K
from y8m.errors import UsageError
from y8m.predictions import Predictions

__all__ = [
    "ClassRanking",
    "Comparison",
    "Interval",
    "Ranking",
    "bootstrap",
    "chunk_for",
    "compare_predictions",
    "paired_predictions",
    "percentile_interval",
    "rankings",
    "resample_counts",
    "top_k_entries",
]

DEFAULT_RESAMPLES = 1000
DEFAULT_CONFIDENCE = 0.95
# Resamples per chunk are chosen so a chunk's [resamples, entries] int32 block stays near 16 MB.
CHUNK_ELEMENTS = 1 << 22


@dataclasses.dataclass(frozen=True)
class Interval:
    """A bootstrap percentile interval of a statistic (a float, or one per class as arrays).

    Attributes:
        estimate: the statistic on the data as it is (every video once).
        low, high: the (1 - confidence) / 2 and (1 + confidence) / 2 percentiles of the
            statistic over the resamples where it is defined (finite).
        p_value: the fraction of those resamples where the statistic is <= 0: for a
            difference A - B, the one-sided bootstrap p-value of "A is better".
        confidence: the interval's coverage, e.g. 0.95.
        num_resamples: resamples the percentiles come from (NaN ones left out).
    """

    estimate: float | np.ndarray
    low: float | np.ndarray
    high: float | np.ndarray
    p_value: float | np.ndarray
    confidence: float
    num_resamples: int | np.ndarray

    @property
    def significant(self) -> bool | np.ndarray:
        """Whether the interval leaves out 0 (low > 0 or high < 0)."""
        return (np.asarray(self.low) > 0) | (np.asarray(self.high) < 0)

    def as_dict(self) -> dict:
        """The scalar interval as JSON-able floats (`estimate`, `low`, `high`, `p_value`,
        `confidence`, `num_resamples`, `significant`)."""
        return {
            "estimate": float(self.estimate),
            "low": float(self.low),
            "high": float(self.high),
            "p_value": float(self.p_value),
            "confidence": float(self.confidence),
            "num_resamples": int(self.num_resamples),
            "significant": bool(self.significant),
        }


def percentile_interval(
    estimate: float | np.ndarray, samples: np.ndarray, confidence: float = DEFAULT_CONFIDENCE
) -> Interval:
    """The percentile interval of bootstrap `samples` (NaN samples are left out).

    Args:
        estimate: the statistic on the original data: a float, or [C] for [R, C] samples.
        samples: [R] or [R, C] float, the statistic on each resample.
        confidence: coverage in (0, 1).

    Returns:
        An `Interval`; where no sample is finite its bounds and p-value are NaN.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    samples = np.asarray(samples, np.float64)
    finite = np.isfinite(samples)
    count = finite.sum(axis=0)
    tails = [(1 - confidence) / 2, (1 + confidence) / 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        if finite.all():
            low, high = np.quantile(samples, tails, axis=0)
        else:
            masked = np.where(finite, samples, np.nan)
            # All-NaN columns (a class no resample has positives of) give NaN, not a warning.
            low, high = _nanquantile(masked, tails)
        not_positive = np.sum(finite & (samples <= 0), axis=0) / count
    scalar = samples.ndim == 1
    convert = float if scalar else np.asarray
    return Interval(
        estimate=convert(estimate),
        low=convert(low),
        high=convert(high),
        p_value=convert(not_positive),
        confidence=float(confidence),
        num_resamples=int(count) if scalar else count,
    )


def _nanquantile(masked: np.ndarray, tails: list[float]) -> tuple[np.ndarray, np.ndarray]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanquantile(masked, tails, axis=0)
    return low, high


def resample_counts(
    num_videos: int, num_resamples: int, seed: int = 0, chunk_size: int = 64
) -> Iterator[np.ndarray]:
    """Bootstrap resamples of the videos as per-video counts, in chunks.

    Resample r draws `num_videos` videos with replacement (uniform), so its counts are
    multinomial. The draws come from one `numpy.random.Generator` seeded with `seed`, resample
    after resample, so the counts depend on (seed, num_videos, r) only, never on the chunk
    size. Every caller with the same seed and number of videos sees the same resamples: that
    is what pairs two statistics (two models, or a greedy ensemble before and after a step).

    Args:
        num_videos: V.
        num_resamples: R.
        seed: the seed of the whole sequence.
        chunk_size: resamples per yielded block.

    Yields:
        [r, V] int32 counts (each row sums to V), r <= chunk_size, R rows in all.
    """
    rng = np.random.default_rng(int(seed))
    chunk_size = max(1, int(chunk_size))
    for start in range(0, int(num_resamples), chunk_size):
        size = min(chunk_size, int(num_resamples) - start)
        draws = rng.integers(0, num_videos, (size, num_videos), dtype=np.int32)
        counts = np.empty((size, num_videos), np.int32)
        for row in range(size):
            counts[row] = np.bincount(draws[row], minlength=num_videos)
        yield counts


def chunk_for(num_entries: int) -> int:
    """Resamples per chunk for statistics over `num_entries` pooled entries."""
    return max(1, CHUNK_ELEMENTS // max(int(num_entries), 1))


def bootstrap(
    statistics: Sequence[Callable[[np.ndarray], np.ndarray]],
    num_videos: int,
    num_resamples: int = DEFAULT_RESAMPLES,
    *,
    seed: int = 0,
    chunk_size: int = 64,
    on_chunk: Callable[[int], object] | None = None,
) -> list[np.ndarray]:
    """Each statistic on the same bootstrap resamples (paired).

    Args:
        statistics: functions of counts [r, V] -> [r] or [r, C] (e.g. `Ranking.gap`).
        num_videos: V.
        num_resamples: R.
        seed: see `resample_counts`.
        chunk_size: resamples per chunk (`chunk_for` gives one that bounds memory).
        on_chunk: called with the number of resamples after each chunk (a progress bar).

    Returns:
        One array per statistic: [R] or [R, C].
    """
    parts: list[list[np.ndarray]] = [[] for _ in statistics]
    for counts in resample_counts(num_videos, num_resamples, seed, chunk_size):
        for part, statistic in zip(parts, statistics):
            part.append(np.asarray(statistic(counts)))
        if on_chunk is not None:
            on_chunk(len(counts))
    return [np.concatenate(p) if p else np.zeros(0) for p in parts]


def _unit(num_videos: int) -> np.ndarray:
    return np.ones((1, num_videos), np.int32)


def _with_leading_zero(values: np.ndarray) -> np.ndarray:
    """[r, n + 1] int32: 0 then the running sums of `values` [r, n] along axis 1."""
    # int32 suffices: a row sums to at most V entries per list position (V * k < 2**31).
    out = np.empty((values.shape[0], values.shape[1] + 1), np.int32)
    out[:, 0] = 0
    np.cumsum(values, axis=1, dtype=np.int32, out=out[:, 1:])
    return out


def _hit_precisions(weights: np.ndarray, hits_before: np.ndarray, before: np.ndarray):
    """[r, H] float64: the summed precision of each hit's copies in its resample.

    A hit of a video drawn w times appears as w tied copies; the j-th (j = 1..w) sits after
    `before` weighted entries, of which `hits_before` are hits, so its precision is
    (hits_before + j) / (before + j). This is exactly the AP of the resampled videos written
    out, ties included (copies are tied hits: their order does not change the sum).

    Args:
        weights, hits_before, before: [r, H] int32 each.
    """
    out = np.divide(hits_before + 1, before + 1)
    out *= weights > 0
    # Copies beyond the first are rare (P(w >= 2) ~ 0.26, then ~ 0.08, ...): only those are
    # summed, on compacted arrays, one copy number at a time, then added back in one scatter.
    index = np.flatnonzero(weights > 1)
    w, h, n = (a.ravel()[index] for a in (weights, hits_before, before))
    extra = np.divide(h + 2, n + 2)
    more = np.flatnonzero(w > 2)
    copy = 3
    while more.size:
        extra[more] += np.divide(h[more] + copy, n[more] + copy)
        more = more[w[more] > copy]
        copy += 1
    out.reshape(-1)[index] += extra
    return out


class Ranking:
    """One model's pooled top-k entries ranked once by the tie rule, for GAP under weights.

    Sorting is done here, once; each resample then costs two running sums over the entries
    (videos' counts as weights) and a pass over the hits, with no loop over videos.

    Args:
        video: [M] int video index (0..V-1) of each entry.
        scores: [M] float score (NaN ranks as -inf; leave padding out, as `top_k_entries`).
        hits: [M] bool, whether the entry is a true label of its video.
        positives: [V] true labels of each video (labels outside every list included).
    """

    def __init__(self, video, scores, hits, positives):
        video, scores, hits = _entries(video, scores, hits)
        self.positives = np.asarray(positives, np.float64).ravel()
        self.num_videos = self.positives.size
        # Highest score first; among equal scores the misses first (the tie rule).
        order = np.lexsort((hits, -scores))
        hits = hits[order]
        last = np.flatnonzero(hits)
        # Entries after the last hit change no hit's rank: they are not kept.
        keep = last[-1] + 1 if last.size else 0
        self.video = video[order][:keep].astype(np.intp)
        self.hit_at = np.flatnonzero(hits[:keep])
        self.hit_video = self.video[self.hit_at]
        self.num_entries = int(keep)

    def gap(self, counts: np.ndarray | None = None) -> np.ndarray:
        """[r] GAP of each resample given as per-video counts [r, V] (None: the data itself)."""
        counts = _unit(self.num_videos) if counts is None else np.asarray(counts)
        # Not `@`: a one-row product goes to BLAS dot, which on a busy machine waits ~10 ms
        # for its threads; einsum's own loop takes microseconds.
        positives = np.einsum("rv,v->r", counts, self.positives)
        if self.hit_at.size == 0:
            return np.zeros(len(counts))
        # [r, M] running weight in rank order
        running = np.cumsum(np.take(counts, self.video, axis=1), axis=1, dtype=np.int32)
        hit_weights = np.take(counts, self.hit_video, axis=1)  # [r, H]
        before = np.take(running, self.hit_at, axis=1) - hit_weights
        hits_before = np.cumsum(hit_weights, axis=1) - hit_weights
        total = _hit_precisions(hit_weights, hits_before, before).sum(axis=1)
        return np.divide(total, positives, out=np.zeros(len(counts)), where=positives > 0)


class ClassRanking:
    """Pooled top-k entries grouped by class and ranked within it, for per-class AP.

    Args:
        video, classes, scores, hits: [M] each, the pooled entries (see `top_k_entries`).
        label_video, label_class: [L] the ground truth as (video, class) pairs.
        num_videos: V.
        num_classes: C; classes beyond the entries' and labels' largest get NaN.
    """

    def __init__(
        self, video, classes, scores, hits, label_video, label_class, num_videos, num_classes
    ):
        video, scores, hits = _entries(video, scores, hits)
        classes = np.asarray(classes, np.int64).ravel()
        label_class = np.asarray(label_class, np.int64).ravel()
        largest = max(int(classes.max(initial=-1)), int(label_class.max(initial=-1)))
        self.num_videos, self.num_classes = int(num_videos), max(int(num_classes), largest + 1)
        order = np.lexsort((hits, -scores, classes))
        classes, hits = classes[order], hits[order]
        # An entry ranked below its class's last hit (or of a class without hits) changes no
        # hit's rank: such entries are dropped.
        last_hit = np.full(self.num_classes, -1)
        np.maximum.at(last_hit, classes[hits], np.flatnonzero(hits))
        keep = np.arange(classes.size) <= last_hit[classes]
        classes, hits, video = classes[keep], hits[keep], video[order][keep]
        self.video = video.astype(np.intp)
        self.hit_at = np.flatnonzero(hits)
        hit_classes = classes[self.hit_at]
        # Each hit's class begins at this entry (and at this hit, among the hits).
        self.class_start = np.searchsorted(classes, hit_classes, side="left")
        self.first_hit = np.searchsorted(hit_classes, hit_classes, side="left")
        self.hit_groups = np.flatnonzero(np.r_[True, hit_classes[1:] != hit_classes[:-1]])
        self.hit_group_class = hit_classes[self.hit_groups] if hit_classes.size else hit_classes
        label_order = np.argsort(label_class, kind="stable")
        label_class = label_class[label_order]
        self.label_video = np.asarray(label_video, np.intp)[label_order]
        self.label_groups = np.flatnonzero(np.r_[True, label_class[1:] != label_class[:-1]])
        self.label_group_class = label_class[self.label_groups] if label_class.size else label_class
        self.num_entries = int(self.video.size)

    def average_precision(self, counts: np.ndarray | None = None) -> np.ndarray:
        """[r, C] AP of each class in each resample; NaN where a resample has no positive of
        the class (counts [r, V]; None: the data itself)."""
        counts = _unit(self.num_videos) if counts is None else np.asarray(counts)
        r = len(counts)
        positives = np.zeros((r, self.num_classes))
        if self.label_video.size:
            per_label = np.take(counts, self.label_video, axis=1)
            grouped = np.add.reduceat(per_label, self.label_groups, axis=1)
            positives[:, self.label_group_class] = grouped
        sums = np.zeros((r, self.num_classes))
        if self.hit_at.size:
            # [r, M + 1] running weight in class-then-rank order, from 0
            running = _with_leading_zero(np.take(counts, self.video, axis=1))
            hit_weights = np.take(counts, self.video[self.hit_at], axis=1)
            before = np.take(running, self.hit_at, axis=1) - np.take(
                running, self.class_start, axis=1
            )
            hit_running = _with_leading_zero(hit_weights)
            hits_before = hit_running[:, :-1] - hit_running[:, self.first_hit]
            precision = _hit_precisions(hit_weights, hits_before, before)
            sums[:, self.hit_group_class] = np.add.reduceat(precision, self.hit_groups, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(positives > 0, sums / np.where(positives > 0, positives, 1), np.nan)


def _entries(video, scores, hits) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    video = np.asarray(video).ravel()
    scores = np.asarray(scores, np.float64).ravel()
    hits = np.asarray(hits).ravel().astype(bool)
    if not video.shape == scores.shape == hits.shape:
        raise ValueError(
            f"video {video.shape}, scores {scores.shape} and hits {hits.shape} must match"
        )
    return video, np.where(np.isnan(scores), -np.inf, scores), hits


def top_k_entries(p: Predictions, top_k: int = SUBMISSION_TOP_K) -> dict[str, np.ndarray]:
    """Each video's top-k (video, class, score, hit) entries, cut by the tie rule.

    The entries `Predictions.gap(top_k)` ranks: padding is dropped; rows longer than `top_k`
    keep their `top_k` best (tied entries at the cut: misses first).

    Returns:
        `video`, `classes`, `scores`, `hits` ([M] each), and the ground truth as pairs
        `label_video`, `label_class` ([L] each).
    """
    scores = np.where(p.classes >= 0, p.scores, -np.inf)
    hits = p.hits()
    classes = p.classes
    if p.top_k > top_k:
        index, scores = metrics.top_k_per_row(scores, top_k, labels=hits)
        hits = np.take_along_axis(hits, index, axis=1)
        classes = np.take_along_axis(classes, index, axis=1)
    rows, cols = np.nonzero(scores > -np.inf)
    lengths = [len(x) for x in p.labels]
    return {
        "video": rows,
        "classes": classes[rows, cols],
        "scores": scores[rows, cols],
        "hits": hits[rows, cols],
        "label_video": np.repeat(np.arange(p.num_videos), lengths),
        "label_class": np.concatenate([np.zeros(0, np.int32), *p.labels]).astype(np.int64),
    }


def rankings(
    p: Predictions, top_k: int = SUBMISSION_TOP_K, num_classes: int | None = None
) -> tuple[Ranking, ClassRanking]:
    """The GAP ranking and the per-class ranking of a labelled store's top-k entries."""
    e = top_k_entries(p, top_k)
    positives = np.bincount(e["label_video"], minlength=p.num_videos)
    num_classes = p.num_classes if num_classes is None else num_classes
    gap = Ranking(e["video"], e["scores"], e["hits"], positives)
    by_class = ClassRanking(
        e["video"], e["classes"], e["scores"], e["hits"], e["label_video"], e["label_class"],
        p.num_videos, num_classes,
    )  # fmt: skip
    return gap, by_class


@dataclasses.dataclass(frozen=True)
class Comparison:
    """GAP(A) - GAP(B) and per-class AP(A) - AP(B) with paired bootstrap intervals.

    Attributes:
        gap_a, gap_b: GAP@top_k of each on all the videos.
        difference: the `Interval` of GAP(A) - GAP(B).
        ap_a, ap_b: [C] per-class AP (NaN for classes without positives).
        ap_difference: the `Interval` of AP(A) - AP(B) per class ([C] arrays), or None.
        positives: [C] true labels of each class.
        num_videos, num_resamples, seed, top_k: what the comparison ran on.
    """

    gap_a: float
    gap_b: float
    difference: Interval
    ap_a: np.ndarray
    ap_b: np.ndarray
    ap_difference: Interval | None
    positives: np.ndarray
    num_videos: int
    num_resamples: int
    seed: int
    top_k: int


def paired_predictions(
    a: Predictions, b: Predictions, name_a: str = "A", name_b: str = "B"
) -> tuple[Predictions, Predictions]:
    """A and B with B's rows in A's video order; both must carry the same labels.

    Raises:
        UsageError: a store without labels, duplicate ids, different video sets (the counts
            and an example named) or different labels for a video.
    """
    for p, name in ((a, name_a), (b, name_b)):
        if p.labels is None:
            raise UsageError(f"{name} has no labels: compare stores predicted on labelled records")
        if np.unique(p.ids).size != p.num_videos:
            raise UsageError(f"{name} lists a video twice: pass a store with one row per video")
    order_a, order_b = np.argsort(a.ids), np.argsort(b.ids)
    if a.num_videos != b.num_videos or not np.array_equal(a.ids[order_a], b.ids[order_b]):
        only_a, only_b = np.setdiff1d(a.ids, b.ids), np.setdiff1d(b.ids, a.ids)
        example = (
            f"{str(only_a[0])!r} only in the first" if only_a.size
            else f"{str(only_b[0])!r} only in the second"
        )  # fmt: skip
        raise UsageError(
            f"{name_a} ({a.num_videos} videos) and {name_b} ({b.num_videos} videos) cover "
            f"different videos ({only_a.size} only in the first, {only_b.size} only in the "
            f"second; e.g. {example}): predict both on the same records"
        )
    b = b.take(order_b[np.argsort(order_a)])
    keys_a, keys_b = _label_keys(a), _label_keys(b)
    if not np.array_equal(keys_a, keys_b):
        differs = np.unique(np.setxor1d(keys_a, keys_b) >> 32)
        raise UsageError(
            f"{name_a} and {name_b} have different labels for {differs.size} videos (e.g. "
            f"{str(a.ids[differs[0]])!r}): were they predicted on the same records?"
        )
    return a, b


def _label_keys(p: Predictions) -> np.ndarray:
    """Sorted int64 keys video << 32 | class of every true label (label sets compare as arrays)."""
    lengths = [len(x) for x in p.labels]
    rows = np.repeat(np.arange(p.num_videos, dtype=np.int64), lengths)
    cols = np.concatenate([np.zeros(0, np.int64), *p.labels]).astype(np.int64)
    return np.unique((rows << 32) | cols)


def compare_predictions(
    a: Predictions,
    b: Predictions,
    *,
    top_k: int = SUBMISSION_TOP_K,
    num_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
    per_class: bool = True,
    on_chunk: Callable[[int], object] | None = None,
) -> Comparison:
    """Paired bootstrap comparison of two models on the same labelled videos.

    Args:
        a, b: Predictions on the same videos in the same order (see `paired_predictions`).
        top_k: k of GAP@k (and of the pooled per-class AP, as `metrics.mean_average_precision`).
        num_resamples: bootstrap resamples R (at least 1).
        seed: the resamples' seed (`resample_counts`).
        confidence: the intervals' coverage.
        per_class: also the per-class AP differences.
        on_chunk: called with the resamples done after each chunk (progress).

    Returns:
        A `Comparison`.
    """
    if not np.array_equal(a.ids, b.ids):
        raise ValueError("a and b must list the same videos in the same order: paired_predictions")
    num_classes = max(a.num_classes, b.num_classes)
    gap_a, class_a = rankings(a, top_k, num_classes)
    gap_b, class_b = rankings(b, top_k, num_classes)
    statistics = [gap_a.gap, gap_b.gap]
    if per_class:
        statistics += [class_a.average_precision, class_b.average_precision]
    entries = gap_a.num_entries + gap_b.num_entries
    entries += (class_a.num_entries + class_b.num_entries) if per_class else 0
    samples = bootstrap(
        statistics, a.num_videos, int(num_resamples), seed=seed,
        chunk_size=chunk_for(entries), on_chunk=on_chunk,
    )  # fmt: skip
    point_a, point_b = float(gap_a.gap()[0]), float(gap_b.gap()[0])
    difference = percentile_interval(point_a - point_b, samples[0] - samples[1], confidence)
    ap_a, ap_b = class_a.average_precision()[0], class_b.average_precision()[0]
    ap_difference = None
    if per_class:
        ap_difference = percentile_interval(ap_a - ap_b, samples[2] - samples[3], confidence)
    positives = np.bincount(
        np.concatenate([np.zeros(0, np.int64), *a.labels]).astype(np.int64), minlength=num_classes
    )
    return Comparison(
        point_a, point_b, difference, ap_a, ap_b, ap_difference, positives,
        a.num_videos, int(num_resamples), int(seed), int(top_k),
    )  # fmt: skip
