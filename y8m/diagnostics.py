"""What a model gets right and wrong, from one labelled prediction store: the tables of `y8m report`.

Every table is a pure function of a `Ranked` store (its top-K lists re-ranked by the tie rule of
`y8m.metrics`), so the per-class AP here is `metrics.average_precision_by_class` over the
pooled top-k entries and its mean is the official mAP. Stores keep K classes per video, so
values that would look beyond K (PERR of a video with more than K labels) count the unseen
classes as misses.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from y8m import metrics
from y8m.data.specs import SUBMISSION_TOP_K
from y8m.errors import UsageError
from y8m.predictions import Predictions

__all__ = [
    "Ranked",
    "calibration_table",
    "class_table",
    "confused_pairs",
    "long_tail_table",
    "rank_store",
    "summary",
    "vertical_table",
]

NO_VERTICAL = "(none)"
# Videos per pass of the confusion count: bounds its [n, labels, k] scratch to ~10^7 entries.
_CONFUSION_CHUNK = 16384


@dataclasses.dataclass
class Ranked:
    """A store's lists in rank order (the metrics' tie rule), with its ground truth.

    Attributes:
        classes: [V, K] int32 classes per video, best first; -1 pads.
        scores: [V, K] float32 scores; -inf on padding.
        hits: [V, K] bool, whether each class is a label of its video.
        num_labels: [V] labels per video.
        positives: [C] float64 positives of each class over the videos.
        top_k: the k of GAP@k, mAP and the per-class AP (<= K).
        labels: V int arrays of true classes.
    """

    classes: np.ndarray
    scores: np.ndarray
    hits: np.ndarray
    num_labels: np.ndarray
    positives: np.ndarray
    top_k: int
    labels: list

    @property
    def num_classes(self) -> int:
        return self.positives.size


def rank_store(p: Predictions, top_k: int = SUBMISSION_TOP_K) -> Ranked:
    """Re-ranks a labelled store's rows by the tie rule (misses before hits on equal scores).

    Raises:
        UsageError: a store without labels (predicted on unlabelled records).
    """
    if p.labels is None:
        raise UsageError(
            f"{p.model_name or 'the store'} has no labels: report on validation stores "
            "(`y8m predict` on labelled records)"
        )
    hits = p.hits()
    scores = np.where(p.classes >= 0, p.scores, -np.inf).astype(np.float32)
    if p.num_videos and p.top_k > 1:
        order, scores = metrics.top_k_per_row(scores, p.top_k, sort=True, labels=hits)
        classes = np.take_along_axis(p.classes, order, axis=1)
        hits = np.take_along_axis(hits, order, axis=1)
    else:
        classes = p.classes
    num_classes = p.num_classes
    flat = np.concatenate([np.zeros(0, np.int64), *p.labels]).astype(np.int64)
    if flat.size and flat.max() >= num_classes:
        raise UsageError(
            f"{p.model_name or 'the store'} has label {flat.max()} but {num_classes} classes: "
            "was it predicted on another release?"
        )
    return Ranked(
        classes=classes,
        scores=scores,
        hits=hits,
        num_labels=np.array([len(x) for x in p.labels], np.int64),
        positives=np.bincount(flat, minlength=num_classes).astype(np.float64),
        top_k=min(int(top_k), p.top_k),
        labels=p.labels,
    )


def summary(r: Ranked) -> dict:
    """GAP@k, Hit@1, PERR and mAP@k (as `metrics.gap`, `hit_at_one`, `perr`,
    `mean_average_precision` on the dense scores), with `videos` and `positives`."""
    n = len(r.classes)
    if n == 0:
        return {"gap": 0.0, "hit_at_one": 0.0, "perr": 0.0, "map": 0.0, "videos": 0, "positives": 0}
    k = r.top_k
    gap = metrics.pooled_average_precision(r.scores[:, :k], r.hits[:, :k], r.positives.sum())
    counted = (np.arange(r.hits.shape[1])[None, :] < r.num_labels[:, None]) & (r.scores > 0)
    perr = np.divide(
        (r.hits & counted).sum(axis=1),
        r.num_labels,
        out=np.zeros(n, np.float64),
        where=r.num_labels > 0,
    )
    ap = class_ap(r)
    finite = ap[~np.isnan(ap)]
    return {
        "gap": float(gap),
        "hit_at_one": float(np.mean(r.hits[:, 0])),
        "perr": float(perr.mean()),
        "map": float(finite.mean()) if finite.size else 0.0,
        "videos": n,
        "positives": int(r.positives.sum()),
    }


def class_ap(r: Ranked) -> np.ndarray:
    """[C] AP of each class over the pooled top-k entries; NaN where a class has no positives."""
    k = r.top_k
    classes = r.classes[:, :k]
    real = classes >= 0
    return metrics.average_precision_by_class(
        classes[real], r.scores[:, :k][real], r.hits[:, :k][real], r.positives
    )


def class_table(
    ranked: dict[str, Ranked],
    vocabulary: dict[int, dict] | None = None,
    train_videos: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per class that has positives in some store: name, vertical, counts, AP per store.

    Columns: `class`, `name`, `vertical`, `train_videos` (the vocabulary's TrainVideoCount, or
    TRAIN_VIDEOS; NaN when neither is known), `positives` (in the first store's videos),
    then `ap:<store>` and `predicted:<store>` (times the class is in a top-k list) per store.
    """
    stores = list(ranked)
    num_classes = max(r.num_classes for r in ranked.values())
    positives = np.zeros(num_classes)
    for r in ranked.values():
        positives = np.maximum(positives, np.pad(r.positives, (0, num_classes - r.num_classes)))
    index = np.flatnonzero(positives > 0)
    vocabulary = vocabulary or {}
    table = pd.DataFrame({"class": index})
    table["name"] = [vocabulary.get(int(c), {}).get("name", "") for c in index]
    table["vertical"] = [vocabulary.get(int(c), {}).get("vertical") or NO_VERTICAL for c in index]
    counts = np.full(num_classes, np.nan)
    if train_videos is not None:
        known = np.asarray(train_videos, np.float64)[:num_classes]
        counts[: known.size] = known
    for c, entry in vocabulary.items():
        if 0 <= c < num_classes and entry.get("train_videos") is not None:
            counts[c] = entry["train_videos"]
    table["train_videos"] = counts[index]
    first = ranked[stores[0]]
    first_positives = np.pad(first.positives, (0, num_classes - first.num_classes))
    table["positives"] = first_positives[index].astype(np.int64)
    for name, r in ranked.items():
        ap = np.pad(class_ap(r), (0, num_classes - r.num_classes), constant_values=np.nan)
        top = r.classes[:, : r.top_k]
        predicted = np.bincount(top[top >= 0].ravel(), minlength=num_classes)[:num_classes]
        table[f"ap:{name}"] = ap[index]
        table[f"predicted:{name}"] = predicted[index]
    return table


def _ap_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c.startswith("ap:")]


def vertical_table(classes: pd.DataFrame) -> pd.DataFrame:
    """Per vertical: `vertical`, `classes`, `positives`, and `mean_ap:<store>` (mean class AP)."""
    columns = _ap_columns(classes)
    grouped = classes.groupby("vertical", sort=True)
    out = pd.DataFrame({"classes": grouped.size(), "positives": grouped["positives"].sum()})
    for c in columns:
        out["mean_" + c] = grouped[c].mean()
    return out.reset_index().sort_values("positives", ascending=False, ignore_index=True)


def long_tail_table(classes: pd.DataFrame, buckets: int = 5) -> pd.DataFrame:
    """Mean class AP by class-frequency bucket: classes split into BUCKETS equal-count groups
    by training videos (validation positives where training counts are unknown), rarest first.

    Columns: `bucket` (1 = rarest), `frequency` (the count range, e.g. "3-17"), `count_source`,
    `classes`, `mean_ap:<store>`.
    """
    known = classes["train_videos"].notna().all() and len(classes)
    source = "train_videos" if known else "positives"
    table = classes.sort_values([source, "class"], kind="stable", ignore_index=True)
    groups = np.array_split(np.arange(len(table)), max(1, min(int(buckets), len(table))))
    rows = []
    for number, rows_of in enumerate(groups, 1):
        part = table.iloc[rows_of]
        if part.empty:
            continue
        low, high = int(part[source].min()), int(part[source].max())
        row = {
            "bucket": number,
            "frequency": f"{low}" if low == high else f"{low}-{high}",
            "count_source": source,
            "classes": len(part),
        }
        row.update({"mean_" + c: float(part[c].mean()) for c in _ap_columns(table)})
        rows.append(row)
    return pd.DataFrame(rows)


def confused_pairs(r: Ranked, top: int = 30) -> pd.DataFrame:
    """The class pairs a model mixes up most: a false positive ranked above a true label of the
    same video, within the top-k.

    Columns: `true_class`, `predicted_class`, `videos` (videos where `predicted_class`, not a
    label, outranks the true label `true_class`, or where the true label missed the list),
    `rate` (videos / positives of the true class), `both_labels` (videos that carry both as
    labels: high means the two co-occur, so the pair is confusable by nature).
    """
    k = r.top_k
    keys = []
    for start in range(0, len(r.classes), _CONFUSION_CHUNK):
        stop = min(start + _CONFUSION_CHUNK, len(r.classes))
        keys.append(_confusion_keys(r, start, stop, k))
    keys = np.concatenate([np.zeros(0, np.int64), *keys])
    columns = ["true_class", "predicted_class", "videos", "rate", "both_labels"]
    if keys.size == 0:
        return pd.DataFrame(columns=columns)
    pairs, counts = np.unique(keys, return_counts=True)
    best = np.lexsort((pairs, -counts))[:top]
    true_class, predicted = pairs[best] // r.num_classes, pairs[best] % r.num_classes
    return pd.DataFrame(
        {
            "true_class": true_class,
            "predicted_class": predicted,
            "videos": counts[best],
            "rate": counts[best] / r.positives[true_class],
            "both_labels": _co_occurrences(r, true_class, predicted),
        },
        columns=columns,
    )


def _padded_labels(labels: list, width: int | None = None) -> np.ndarray:
    lengths = np.array([len(x) for x in labels], np.int64)
    width = int(lengths.max(initial=0)) if width is None else width
    out = np.full((len(labels), max(width, 1)), -1, np.int64)
    if lengths.sum():
        rows = np.repeat(np.arange(len(labels)), lengths)
        cols = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        out[rows, cols] = np.concatenate(labels)
    return out


def _confusion_keys(r: Ranked, start: int, stop: int, k: int) -> np.ndarray:
    """`true * C + predicted` for every (true label, outranking false positive) of the rows."""
    classes = r.classes[start:stop, :k].astype(np.int64)
    false_positive = ~r.hits[start:stop, :k] & (classes >= 0)
    labels = _padded_labels(r.labels[start:stop])
    found = labels[:, :, None] == classes[:, None, :]  # [n, L, k]
    rank = np.where(found.any(axis=2), found.argmax(axis=2), k)  # k: not in the list
    above = np.arange(k)[None, None, :] < rank[:, :, None]
    pair = above & false_positive[:, None, :] & (labels >= 0)[:, :, None]
    keys = labels[:, :, None] * r.num_classes + classes[:, None, :]
    return keys[pair]


def _co_occurrences(r: Ranked, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Videos whose labels include both classes of each pair."""
    from scipy import sparse

    lengths = r.num_labels
    rows = np.repeat(np.arange(len(lengths)), lengths)
    cols = np.concatenate([np.zeros(0, np.int64), *r.labels]).astype(np.int64)
    x = sparse.csc_matrix(
        (np.ones(cols.size, np.int64), (rows, cols)), shape=(len(lengths), r.num_classes)
    )
    return np.array([int(x[:, a].multiply(x[:, b]).sum()) for a, b in zip(first, second)], int)


def calibration_table(r: Ranked, bins: int = 10) -> tuple[pd.DataFrame, float]:
    """Reliability of the top-k scores: BINS equal-width score bins over [0, 1].

    Returns:
        (table with `low`, `high`, `entries`, `mean_score`, `hit_rate` per bin (empty bins
        kept with NaN rates), expected calibration error: sum over bins of
        entries/total * |hit_rate - mean_score|).
    """
    k = r.top_k
    real = r.classes[:, :k] >= 0
    scores = np.clip(r.scores[:, :k][real].astype(np.float64), 0.0, 1.0)
    hits = r.hits[:, :k][real]
    edges = np.linspace(0.0, 1.0, int(bins) + 1)
    which = np.clip(np.searchsorted(edges, scores, side="right") - 1, 0, int(bins) - 1)
    entries = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_score = np.bincount(which, weights=scores, minlength=bins) / entries
        hit_rate = np.bincount(which, weights=hits, minlength=bins) / entries
    table = pd.DataFrame(
        {
            "low": edges[:-1],
            "high": edges[1:],
            "entries": entries,
            "mean_score": mean_score,
            "hit_rate": hit_rate,
        }
    )
    used = entries > 0
    total = entries.sum()
    ece = float(np.sum(entries[used] / total * np.abs(hit_rate[used] - mean_score[used])))
    return table, ece if total else 0.0
