"""Scores a submission against the true labels the way the Kaggle leaderboard does."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from submissions import formats, parsing, segments, truth
from y8m.data import specs
from y8m.errors import UsageError


def score_submission(path: str, solution, version: int = specs.DEFAULT_VERSION) -> dict:
    """GAP@20 of a 2017/2018 submission, or segment mAP of a 2019 one.

    Video task: each video's top-20 pairs of the submission, positives counted from the full
    ground truth (reference 2.4); tied scores follow the tie rule of `y8m.metrics` (non-labels
    first, at the top-20 cut and in the ranking), so the result equals `y8m.metrics.gap` on the
    same scores; a solution video missing from the submission has no
    predictions, so its positives only lower recall; submitted ids outside the solution are
    ignored (Kaggle scores a subset of the test set on each leaderboard).

    Args:
        path: the submission file (plain or gzip).
        solution: video task: a CSV of `VideoId,Labels` rows (labels space-separated; the
            header is optional) or a DataFrame (`id`, `labels`), e.g. from
            `y8m.data.read_labels(glob)`. Segment task: a CSV of ratings or a DataFrame (`id`,
            `class`, `start_time`, `score`), e.g. from `y8m.data.read_segment_ratings(glob)`;
            see `truth.load_segment_ratings`.
        version: 2017 or 2018 (GAP) or 2019 (segment mAP).

    Returns:
        Video task: `gap`, `videos` (in the solution), `submitted`, `scored` (in both),
        `missing`, `extra`, `positives`, `hits`. Segment task: `segment_map`'s dict with `map`.
    """
    release = scored_release(path, version)
    if release.has_segments:
        result = segments.segment_map(
            formats.read_segment_submission(path), truth.load_segment_ratings(solution)
        )
        return {"metric": "segment_map", **result}
    # Every pair is read: which tied pairs make a row's top-20 depends on the labels.
    ids, classes, scores = formats.read_video_submission(path, top_k=None)
    labels = truth.load_video_labels(solution)
    return {"metric": "gap", **video_gap(ids, classes, scores, labels)}


def scored_release(path: str, version: int = specs.DEFAULT_VERSION) -> specs.Release:
    """The release `version` names, once the file is checked to be that task's submission.

    Raises:
        UsageError: an unknown version, an unreadable file, or a video submission scored as
            segments (or the reverse).
    """
    release = specs.release(version)
    found = parsing.sniff_format(path)
    wanted = "segment" if release.has_segments else "video"
    if found != wanted:
        hint = "--version=2019" if found == "segment" else "--version=2018 (or 2017)"
        raise UsageError(
            f"{path} is a {found} submission but version {version} scores {wanted}s: pass {hint}"
        )
    return release


def video_gap(
    ids: Sequence[str],
    classes: np.ndarray,
    scores: np.ndarray,
    labels: pd.DataFrame,
    top_k: int = specs.SUBMISSION_TOP_K,
) -> dict:
    """GAP of top-K predictions against true labels, as the leaderboard computes it.

    Args:
        ids: [V] submitted video ids (unique).
        classes: [V, K] int predicted classes; entries < 0 are padding.
        scores: [V, K] float scores; only each row's `top_k` best count (on a tie at the cut,
            non-labels first: the tie rule of `y8m.metrics`).
        labels: DataFrame with `id` (str) and `labels` (list of int), one row per video.
        top_k: predictions per video that count (20 on the leaderboard).

    Returns:
        dict: `gap`, `videos`, `submitted`, `scored`, `missing`, `extra`, `positives`, `hits`.
    """
    from y8m.metrics import gap_topk

    submitted = pd.Index(np.asarray(ids, dtype=object).astype(str))
    if not submitted.is_unique:
        raise UsageError(
            f"video id {submitted[submitted.duplicated()][0]!r} is submitted twice: "
            "run `y8m submission validate` to find the line"
        )
    truth_ids = pd.Index(labels["id"].astype(str))
    if not truth_ids.is_unique:
        raise UsageError(
            f"video id {truth_ids[truth_ids.duplicated()][0]!r} is twice in the solution"
        )
    lengths = labels["labels"].map(len).to_numpy(np.int64)
    flat_labels = np.fromiter(
        (int(c) for row in labels["labels"] for c in row), np.int64, int(lengths.sum())
    )
    # One int64 key per (video, class): video index in the high bits, class in the low 32.
    true_keys = np.unique((np.repeat(np.arange(len(truth_ids)), lengths) << 32) | flat_labels)

    classes = np.asarray(classes)
    position = truth_ids.get_indexer(submitted)  # (V,) -1 for ids outside the solution
    matched = position >= 0
    classes, position = classes[matched], position[matched]
    valid = classes >= 0
    pair_keys = (position[:, None] << 32) | np.maximum(classes, 0)  # (V', K)
    hits = valid & np.isin(pair_keys, true_keys)
    scores = np.where(valid, np.asarray(scores, dtype=np.float64)[matched], -np.inf)
    gap = gap_topk(scores, hits, len(true_keys), top_k=top_k)
    scored = int(matched.sum())
    return {
        "gap": float(gap),
        "videos": len(truth_ids),
        "submitted": len(submitted),
        "scored": scored,
        "missing": len(truth_ids) - scored,
        "extra": len(submitted) - scored,
        "positives": len(true_keys),
        "hits": _top_hits(scores, hits, top_k),
    }


def _top_hits(scores: np.ndarray, hits: np.ndarray, top_k: int) -> int:
    """True labels among each row's `top_k` best-scored predictions (the metrics' tie rule)."""
    from y8m.metrics import top_k_per_row

    if scores.shape[1] <= top_k:
        return int(hits.sum())
    index, _ = top_k_per_row(scores, top_k, labels=hits)
    return int(np.take_along_axis(hits, index, axis=1).sum())
