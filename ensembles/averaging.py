"""Averaging sparse top-K predictions of several models: plain, weighted and rank averages.

Inputs are `{model name: Predictions}`; rows are matched by video id; a class missing from a
model's list contributes 0; the result keeps each video's top-K classes.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ensembles import sparse
from y8m.errors import UsageError
from y8m.predictions import Predictions

__all__ = ["align", "average", "rank_average", "rank_transform", "weighted_average"]


def align(predictions: Mapping[str, Predictions], what: str = "predictions") -> list[Predictions]:
    """The predictions in model-name order, rows reordered to the first model's id order.

    Args:
        predictions: model name -> Predictions.
        what: how to name this side in errors ("validation", "test").

    Returns:
        One Predictions per model (sorted by name), all with the same `ids` order.

    Raises:
        UsageError: no models, duplicate ids, or models that cover different videos.
    """
    if not predictions:
        raise UsageError(f"no {what} predictions given")
    names = sorted(predictions)
    reference = predictions[names[0]]
    _check_unique(reference, names[0], what)
    reference_order = np.argsort(reference.ids, kind="stable")
    out = [reference]
    for name in names[1:]:
        p = predictions[name]
        if np.array_equal(p.ids, reference.ids):
            out.append(p)
            continue
        _check_unique(p, name, what)
        order = np.argsort(p.ids, kind="stable")
        if len(p.ids) != len(reference.ids) or not np.array_equal(
            p.ids[order], reference.ids[reference_order]
        ):
            only = np.setdiff1d(p.ids, reference.ids)
            missing = np.setdiff1d(reference.ids, p.ids)
            example = (
                f"{only[0]!r} only in {name!r}"
                if only.size
                else (f"{missing[0]!r} missing from {name!r}")
            )
            raise UsageError(
                f"{what} predictions of {name!r} ({len(p.ids)} videos) and {names[0]!r} "
                f"({len(reference.ids)} videos) cover different videos ({example}): predict every "
                "model on the same records"
            )
        index = np.empty_like(order)
        index[reference_order] = order
        out.append(p.take(index))
    return out


def _check_unique(p: Predictions, name: str, what: str) -> None:
    unique, counts = np.unique(p.ids, return_counts=True)
    if unique.size != p.ids.size:
        raise UsageError(
            f"{what} predictions of {name!r} list video {unique[counts > 1][0]!r} more than once"
        )


def check_scores(p: Predictions, name: str) -> None:
    """Ensembles average probabilities: scores must be finite and >= 0."""
    listed = p.scores[p.classes >= 0]
    if listed.size and not (np.isfinite(listed).all() and listed.min() >= 0):
        raise UsageError(
            f"predictions of {name!r} hold negative or non-finite scores: ensembles average "
            "probabilities in [0, 1]"
        )


def common_num_classes(predictions: list[Predictions], names: list[str]) -> int:
    """C shared by every model (from the metadata; CSVs, which lack it, take the largest)."""
    declared = {
        name: int(p.metadata["num_classes"])
        for name, p in zip(names, predictions)
        if p.metadata.get("num_classes")
    }
    if len(set(declared.values())) > 1:
        raise UsageError(f"models disagree on num_classes: {declared}")
    seen = max(p.num_classes for p in predictions)
    return max([seen, *declared.values()])


def reference_labels(predictions: list[Predictions], names: list[str]) -> list[np.ndarray] | None:
    """The labels of the first model that has them (checked against the others' counts)."""
    labelled = [(n, p) for n, p in zip(names, predictions) if p.labels is not None]
    if not labelled:
        return None
    first_name, first = labelled[0]
    total = first.num_positives()
    for name, p in labelled[1:]:
        if p.labels is not first.labels and p.num_positives() != total:
            raise UsageError(
                f"labels of {name!r} ({p.num_positives()} positives) and {first_name!r} "
                f"({total}) differ: were they predicted on the same records?"
            )
    return first.labels


def weighted_average(
    predictions: Mapping[str, Predictions],
    weights: Mapping[str, float],
    top_k: int | None = None,
    *,
    method: str = "weighted",
    chunk_size: int = sparse.DEFAULT_CHUNK_SIZE,
) -> Predictions:
    """`sum_m w_m * scores_m / sum_m w_m` over the union of each video's listed classes.

    Args:
        predictions: model name -> Predictions; models without a weight are not used.
        weights: model name -> weight >= 0 (normalised to sum 1).
        top_k: classes kept per video; default the largest K among the inputs.
        method: recorded in the result's metadata.
        chunk_size: videos per dense scratch block.

    Returns:
        Predictions named "ensemble", rows in the first model's id order, labels carried over
        when an input has them.

    Raises:
        UsageError: a weighted model missing from `predictions`, bad weights, misaligned ids.
    """
    if not predictions:
        raise UsageError("no predictions given to average")
    weights = {str(k): float(v) for k, v in weights.items()}
    missing = sorted(set(weights) - set(predictions))
    if missing:
        raise UsageError(
            f"model {missing[0]!r} has a weight but no predictions (have: "
            f"{', '.join(sorted(predictions))}): pass its prediction file too"
        )
    if any(not np.isfinite(w) or w < 0 for w in weights.values()):
        raise UsageError(f"weights must be finite and >= 0, got {weights}")
    total = sum(weights.values())
    if total <= 0:
        raise UsageError("the weights sum to 0: give at least one model a positive weight")
    used = {name: predictions[name] for name, w in weights.items() if w > 0}
    aligned = align(used)
    names = sorted(used)
    for name, p in zip(names, aligned):
        check_scores(p, name)
    num_classes = common_num_classes(aligned, names)
    k = max(p.top_k for p in aligned) if top_k is None else int(top_k)
    lists = [sparse.internal_lists(p.classes, p.scores, num_classes) for p in aligned]
    classes, scores = sparse.weighted_sum(
        lists, [weights[n] / total for n in names], num_classes, k, chunk_size=chunk_size
    )
    splits = sorted({str(p.metadata.get("split", "")) for p in aligned})
    metadata = {
        "model_name": "ensemble",
        "split": splits[0] if len(splits) == 1 else ",".join(splits),
        "num_classes": num_classes,
        "top_k": classes.shape[1],
        "method": method,
        "weights": {n: weights[n] / total for n in names},
    }
    labels = reference_labels(aligned, names)
    return Predictions(aligned[0].ids, classes, scores, labels, metadata)


def average(
    predictions: Mapping[str, Predictions], top_k: int | None = None, **kwargs
) -> Predictions:
    """Plain average of every model (equal weights); see `weighted_average`."""
    return weighted_average(
        predictions, dict.fromkeys(predictions, 1.0), top_k, method="mean", **kwargs
    )


def rank_transform(p: Predictions) -> Predictions:
    """Scores replaced by their rank among all of the model's listed scores, scaled to (0, 1].

    Ranks are global over videos (GAP ranks globally too), so models with different score
    calibrations count alike; ties share their average rank.
    """
    listed = p.classes >= 0
    values = p.scores[listed].astype(np.float64)
    if values.size == 0:
        return p
    ordered = np.sort(values)
    # Average 1-based rank of each value among equal values.
    rank = (
        np.searchsorted(ordered, values, side="left")
        + np.searchsorted(ordered, values, side="right")
        + 1
    ) / 2.0
    scores = np.zeros_like(p.scores)
    scores[listed] = rank / values.size
    return Predictions(p.ids, p.classes, scores, p.labels, dict(p.metadata))


def rank_average(
    predictions: Mapping[str, Predictions],
    weights: Mapping[str, float] | None = None,
    top_k: int | None = None,
    **kwargs,
) -> Predictions:
    """(Weighted) average of each model's global score ranks (`rank_transform`)."""
    if weights is None:
        weights = dict.fromkeys(predictions, 1.0)
    ranked = {n: rank_transform(p) if n in weights else p for n, p in predictions.items()}
    return weighted_average(ranked, weights, top_k, method="rank", **kwargs)
