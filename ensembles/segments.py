"""`y8m ensemble --segments`: greedy segment-mAP ensembles of 2019 segment stores.

Each model's store (`y8m predict --segments`, `*.segments.parquet`) holds its rated classes'
kept top segments with scores. Models are combined by a weighted sum of scores per
(segment, class), a pair missing from a store counting 0 (`--method=rank`: of per-class rank
scores (n - j) / n instead). Greedy selection (with replacement: weights are pick counts) adds,
step by step, the model that most raises the segment mAP on the validation ratings
(`submissions.segments.segment_map`, computed here on the union of pairs in one pass).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

import numpy as np
import pandas as pd

from submissions.truth import load_segment_ratings
from y8m.errors import UsageError
from y8m.fileio import expand_pattern
from y8m.segment_store import load_segment_store

__all__ = ["SegmentTable", "combine", "check_stores", "index_stores", "segment_ensemble"]

SEGMENT_METHODS = ("greedy", "mean", "weighted", "rank")


def index_stores(pattern: str, what: str) -> dict[str, tuple[pd.DataFrame, dict]]:
    """model name -> (store frame, metadata) for every file of PATTERN."""
    stores: dict[str, tuple[pd.DataFrame, dict]] = {}
    paths: dict[str, str] = {}
    for path in expand_pattern(pattern, f"{what} segment stores"):
        frame, metadata = load_segment_store(path)
        name = str(metadata.get("model_name") or os.path.basename(path))
        if name in stores:
            raise UsageError(
                f"{what} segment stores {paths[name]} and {path} are both model {name!r}: give "
                "each model one store per split"
            )
        stores[name], paths[name] = (frame, metadata), path
    return stores


def check_stores(stores: Mapping[str, tuple[pd.DataFrame, dict]], what: str) -> None:
    """A UsageError when the stores of one split differ in classes or segments scored."""
    names = sorted(stores)
    first = stores[names[0]][1]
    for name in names[1:]:
        meta = stores[name][1]
        for key, label in (
            ("num_classes", "num_classes"),
            ("rated_classes", "rated classes"),
            ("num_segments", "number of segments scored"),
            ("segment_set", "set of segments scored"),
        ):
            a, b = first.get(key), meta.get(key)
            if key == "rated_classes":
                a, b = sorted(a or []), sorted(b or [])
            if a != b:
                raise UsageError(
                    f"{what} segment stores of {names[0]!r} and {name!r} differ in {label}: "
                    "predict every model on the same records and rated classes"
                )


class SegmentTable:
    """The union of (segment, class) pairs of several stores, as a dense [P, M] score table."""

    def __init__(self, stores: Mapping[str, tuple[pd.DataFrame, dict]], names, rank=False):
        frames = []
        for m, name in enumerate(names):
            frame = stores[name][0]
            frame = frame.assign(model=m, score=_rank_scores(frame) if rank else frame["score"])
            frames.append(frame)
        joined = pd.concat(frames, ignore_index=True)
        keys = pd.MultiIndex.from_arrays([joined["segment_id"], joined["class"].astype(np.int64)])
        codes, uniques = pd.factorize(keys)
        self.names = list(names)
        self.segments = np.asarray(uniques.get_level_values(0), dtype=object)
        self.classes = np.asarray(uniques.get_level_values(1), np.int64)
        self.scores = np.zeros((len(uniques), len(names)), np.float64)
        self.present = np.zeros((len(uniques), len(names)), bool)
        model = joined["model"].to_numpy()
        self.scores[codes, model] = joined["score"].to_numpy(np.float64)
        self.present[codes, model] = True
        self.segment_order = pd.factorize(self.segments, sort=True)[0]

    def ranked(self, weights: np.ndarray, max_per_class: int) -> np.ndarray:
        """Indices of the submitted pairs: by class, best combined score first (ties by
        segment id), at most MAX_PER_CLASS per class, pairs of weighted models only."""
        keep = np.flatnonzero(self.present[:, weights > 0].any(axis=1))
        combined = self.scores[keep] @ weights
        order = keep[np.lexsort((self.segment_order[keep], -combined, self.classes[keep]))]
        classes = self.classes[order]
        starts = np.r_[0, np.flatnonzero(np.diff(classes)) + 1]
        position = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
        return order[position < max_per_class]

    def submission(self, weights: np.ndarray, max_per_class: int) -> dict[int, list[str]]:
        order = self.ranked(weights, max_per_class)
        out: dict[int, list[str]] = {}
        for class_id, segment in zip(self.classes[order].tolist(), self.segments[order]):
            out.setdefault(class_id, []).append(segment)
        return out


class _Scorer:
    """Segment mAP of a SegmentTable's submissions against rated segments, as `segment_map`."""

    def __init__(self, table: SegmentTable, ratings: pd.DataFrame):
        ratings = load_segment_ratings(ratings)
        keys = ratings["id"].astype(str) + ":" + ratings["start_time"].astype(np.int64).astype(str)
        rated = pd.DataFrame(
            {
                "segment": keys,
                "class": ratings["class"].astype(np.int64),
                "positive": ratings["score"].astype(np.float64) > 0,
            }
        ).drop_duplicates(["segment", "class"], keep="last")
        if not len(rated):
            raise UsageError("the segment ratings are empty: pass the validation ratings")
        self.num_positives = rated.loc[rated["positive"]].groupby("class").size().to_dict()
        lookup = rated.set_index(["segment", "class"])["positive"]
        pairs = pd.MultiIndex.from_arrays([table.segments, table.classes])
        found = lookup.reindex(pairs)
        self.judged = found.notna().to_numpy()
        self.positive = found.fillna(False).to_numpy(bool)
        self.table = table

    def map(self, weights: np.ndarray, max_per_class: int) -> float:
        order = self.table.ranked(weights, max_per_class)
        classes = self.table.classes[order]
        submitted = [c for c in np.unique(classes).tolist() if self.num_positives.get(c, 0)]
        if not submitted:
            return 0.0
        judged = order[self.judged[order]]
        cls, hits = self.table.classes[judged], self.positive[judged]
        starts = np.r_[0, np.flatnonzero(np.diff(cls)) + 1] if len(cls) else np.zeros(0, int)
        lengths = np.diff(np.r_[starts, len(cls)])
        rank = np.arange(len(cls)) - np.repeat(starts, lengths) + 1
        cum = np.cumsum(hits)
        before = np.repeat(np.r_[0, cum][starts], lengths)
        precision = (cum - before) / rank
        totals = pd.Series(precision * hits).groupby(cls).sum().to_dict() if len(cls) else {}
        return float(np.mean([totals.get(c, 0.0) / self.num_positives[c] for c in submitted]))


def _rank_scores(frame: pd.DataFrame) -> np.ndarray:
    """Per class, the j-th best of n kept segments scores (n - j) / n."""
    order = frame.groupby("class")["score"].rank(method="first", ascending=False)
    sizes = frame.groupby("class")["score"].transform("size")
    return ((sizes - order + 1) / sizes).to_numpy(np.float64)


def greedy_select(scorer: _Scorer, steps: int, replace: bool, max_per_class: int):
    """(history, best_step, weights array, single maps) of greedy forward selection."""
    names = scorer.table.names
    counts = np.zeros(len(names))
    history, singles = [], {}
    for step in range(1, steps + 1):
        candidates = [i for i in range(len(names)) if replace or not counts[i]]
        if not candidates:
            break
        maps = []
        for i in candidates:
            trial = counts.copy()
            trial[i] += 1
            maps.append(scorer.map(trial, max_per_class))
        if step == 1:
            singles = {names[i]: m for i, m in zip(candidates, maps)}
        best = int(np.argmax(maps))  # ties: the first candidate, in name order
        counts[candidates[best]] += 1
        history.append(
            {
                "step": step,
                "model": names[candidates[best]],
                "weight": counts[candidates[best]] / step,
                "map": float(maps[best]),
            }
        )
    best_step = int(np.argmax([h["map"] for h in history])) + 1
    weights = np.zeros(len(names))
    for h in history[:best_step]:
        weights[names.index(h["model"])] += 1.0 / best_step
    return history, best_step, weights, singles


def combine(stores, weights: Mapping[str, float], method: str, max_per_class: int):
    """The ensemble submission (class id -> segment ids) of STORES with WEIGHTS."""
    names = list(weights)
    table = SegmentTable(stores, names, rank=method == "rank")
    return table.submission(np.array([weights[n] for n in names], np.float64), max_per_class)


def segment_ensemble(
    validation, test, *, greedy, replace, method, weights, ratings, max_per_class
) -> dict:
    """Chooses weights (greedy on validation, or given) and combines the test stores.

    Returns:
        dict: weights, history, best_step, validation_map, single_maps, submission (class id
        -> segment ids, None without test stores), num_classes.
    """
    if method not in SEGMENT_METHODS:
        raise UsageError(f"unknown --method={method!r}: use one of {', '.join(SEGMENT_METHODS)}")
    val = index_stores(validation, "validation") if validation else {}
    tst = index_stores(test, "test") if test else {}
    for stores, what in ((val, "validation"), (tst, "test")):
        if stores:
            check_stores(stores, what)
    if val and tst:
        _check_splits(val, tst)
    out = {"history": [], "best_step": None, "validation_map": None, "single_maps": {}}
    if method == "greedy":
        if not val or ratings is None:
            raise UsageError(
                "greedy --segments needs --validation=GLOB of segment stores and "
                "--segment_ratings=CSV of the validation ratings"
            )
        names = sorted(val)
        scorer = _Scorer(SegmentTable(val, names), ratings)
        history, best_step, w, singles = greedy_select(scorer, greedy, replace, max_per_class)
        chosen = {n: float(x) for n, x in zip(names, w) if x > 0}
        out.update(history=history, best_step=best_step, single_maps=singles)
        out["validation_map"] = history[best_step - 1]["map"]
    else:
        chosen = _fixed(weights, val or tst, method)
        if val and ratings is not None:
            names = sorted(val)
            scorer = _Scorer(SegmentTable(val, names, rank=method == "rank"), ratings)
            vector = np.array([chosen.get(n, 0.0) for n in names])
            out["validation_map"] = scorer.map(vector, max_per_class)
            out["single_maps"] = {n: scorer.map(np.eye(len(names))[i], max_per_class)
                                  for i, n in enumerate(names)}  # fmt: skip
    missing = [n for n in chosen if tst and n not in tst]
    if missing:
        raise UsageError(f"model {missing[0]!r} has no test segment store: pass it too")
    out["weights"] = chosen
    out["submission"] = combine(tst, chosen, method, max_per_class) if tst else None
    out["num_classes"] = len(out["submission"] or {})
    return out


def _fixed(weights, stores, method) -> dict[str, float]:
    if weights is None:
        if method == "weighted":
            raise UsageError("--method=weighted needs --weights, e.g. --weights='a=0.7,b=0.3'")
        weights = dict.fromkeys(sorted(stores), 1.0)
    unknown = [n for n in weights if n not in stores]
    if unknown:
        raise UsageError(f"--weights names model {unknown[0]!r}, which has no segment store")
    total = sum(weights.values())
    if total <= 0 or any(w < 0 for w in weights.values()):
        raise UsageError(f"weights must be >= 0 with a positive sum, got {dict(weights)}")
    return {n: w / total for n, w in weights.items() if w > 0}


def _check_splits(val, tst) -> None:
    for name in sorted(set(val) ^ set(tst)):
        side = "validation" if name in val else "test"
        raise UsageError(
            f"model {name!r} has a {side} segment store only: give every model both splits"
        )
    a, b = next(iter(val.values()))[1], next(iter(tst.values()))[1]
    for key in ("num_classes", "rated_classes"):
        if sorted(np.atleast_1d(a.get(key)).tolist()) != sorted(np.atleast_1d(b.get(key)).tolist()):
            raise UsageError(
                f"the validation and test segment stores differ in {key.replace('_', ' ')}: "
                "predict both splits with the same models and rated classes"
            )


def recipe_text(result: dict, method, max_per_class, validation, test, options) -> bytes:
    recipe = {
        "format": "y8m-segment-ensemble",
        "format_version": 1,
        "task": "segments",
        "method": method,
        "models": list(result["weights"]),
        "weights": result["weights"],
        "segment_max_pred": int(max_per_class),
        "version": 2019,
        "validation": validation,
        "test": test,
        "validation_map": result["validation_map"],
        "best_step": result["best_step"],
        "history": result["history"],
        "single_model_maps": result["single_maps"],
        "options": options,
    }
    return (json.dumps(recipe, indent=2) + "\n").encode("utf-8")
