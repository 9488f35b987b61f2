"""Greedy forward selection of models by validation GAP (thesis 3.5.9), on sparse top-K lists.

Start from the best single model; at each step add the model whose addition gives the highest
validation GAP of the averaged scores. With replacement a model can be picked again, which
raises its weight (Caruana et al., "Ensemble selection from libraries of models", ICML 2004).
With a byte budget a model's size is paid when it is first picked, and models of one group
(one run at several precisions) exclude each other.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from tqdm.auto import tqdm

from ensembles import sparse
from ensembles.averaging import (
    align,
    check_scores,
    common_num_classes,
    reference_labels,
    weighted_average,
)
from y8m.data import specs
from y8m.errors import UsageError, integer, number
from y8m.metrics import pooled_average_precision, top_k_per_row
from y8m.predictions import Predictions
from y8m.significance import (
    DEFAULT_CONFIDENCE,
    DEFAULT_RESAMPLES,
    Ranking,
    bootstrap,
    chunk_for,
    percentile_interval,
)

__all__ = ["GreedyEnsembler"]

# The keys of each `history_` entry, in order (the recipe's history keeps them).
HISTORY_KEYS = ("step", "model", "weight", "gap", "bytes", "gain", "gain_low", "gain_high")


class GreedyEnsembler:
    """Greedy GAP-driven ensemble selection over prediction stores (scikit-learn style).

    Args:
        n_iter: selection steps (models picked, repeats included).
        replace: allow a model to be picked again (its weight grows); False picks each once.
        metric: the validation metric to maximise; only "gap" (GAP@top_k).
        top_k: k of GAP@k.
        chunk_size: videos per dense scratch block (memory is O(chunk_size * C)).
        progress: show a tqdm bar.
        max_bytes: the ensemble's size budget (None: unlimited); needs `costs` in `fit`.
        bootstrap: resamples of the validation videos for each step's gain interval (0: no
            intervals). The intervals never change a pick or a GAP.
        seed: the resamples' seed; every step uses the same resamples, so a step's gain is
            paired (the ensembles before and after it scored on the same resampled videos).
        min_gain: None (run all steps); "significant": stop before a step whose gain
            interval's lower bound is <= 0; a number: stop before a step whose gain is below
            it. The step stopped at is not taken (`stopped_`).
        confidence: the coverage of the gain intervals.

    Attributes:
        selection_: model names in pick order, one per step.
        history_: per step a dict `step`, `model`, `weight` (that model's weight after the
            step), `gap` (validation GAP of the ensemble after the step), `bytes` (the
            ensemble's size after the step; None without `costs`), `gain` (GAP after minus
            GAP before the step; None at step 1), `gain_low` and `gain_high` (the paired
            bootstrap interval of the gain; None at step 1 or without `bootstrap`).
        stopped_: the step `min_gain` refused, as a history entry (not taken) plus `reason`;
            None when selection was not stopped.
        best_step_: the step with the highest validation GAP (earliest on ties); the ensemble
            uses the picks up to it.
        weights_: model -> weight (picks up to `best_step_` / `best_step_`), first pick first.
        validation_gap_: validation GAP at `best_step_`.
        single_gaps_: model -> validation GAP of that model alone (every model, fitting the
            budget or not).
        bytes_: the size of the models in `weights_` (None without `costs`).

    Example:
        >>> est = GreedyEnsembler(n_iter=7).fit({"netvlad": p1, "netfv": p2, "gru": p3})
        >>> est.history_[-1]["gap"], est.history_[-1]["gain_low"], est.weights_
        >>> test_predictions = est.predict({"netvlad": t1, "netfv": t2, "gru": t3})
    """

    def __init__(
        self,
        n_iter: int = 7,
        replace: bool = True,
        metric: str = "gap",
        top_k: int = specs.SUBMISSION_TOP_K,
        chunk_size: int = sparse.DEFAULT_CHUNK_SIZE,
        progress: bool = False,
        max_bytes: float | None = None,
        bootstrap: int = DEFAULT_RESAMPLES,
        seed: int = 0,
        min_gain: str | float | None = None,
        confidence: float = DEFAULT_CONFIDENCE,
    ):
        self.n_iter = n_iter
        self.replace = replace
        self.metric = metric
        self.top_k = top_k
        self.chunk_size = chunk_size
        self.progress = progress
        self.max_bytes = max_bytes
        self.bootstrap = bootstrap
        self.seed = seed
        self.min_gain = min_gain
        self.confidence = confidence

    def fit(
        self,
        validation: Mapping[str, Predictions],
        costs: Mapping[str, float] | None = None,
        groups: Mapping[str, str] | None = None,
    ) -> GreedyEnsembler:
        """Selects models on validation predictions that carry labels.

        Args:
            validation: model name -> Predictions on the same labelled videos.
            costs: model name -> bytes, paid when the model is first picked (a repeat only
                adds weight); a step skips the models that would exceed `max_bytes`, and
                selection stops when none fits.
            groups: model name -> group; once a model of a group is picked, the others are
                skipped (one precision per run). Models not named are their own group.

        Returns:
            self.
        """
        if self.metric != "gap":
            raise UsageError(f"unknown metric {self.metric!r}: the greedy ensembler uses 'gap'")
        if int(self.n_iter) < 1 or int(self.top_k) < 1:
            raise UsageError(f"n_iter ({self.n_iter}) and top_k ({self.top_k}) must be at least 1")
        stop = _StopRule(self.min_gain, self.bootstrap, self.confidence)
        names = sorted(validation)
        aligned = align(validation, "validation")
        for name, p in zip(names, aligned):
            check_scores(p, name)
        labels = reference_labels(aligned, names)
        if labels is None:
            raise UsageError(
                "validation predictions carry no labels: run `y8m predict` on labelled records "
                "(Kaggle CSVs have none)"
            )
        budget = _Budget(names, costs, self.max_bytes, groups)
        num_classes = common_num_classes(aligned, names)
        largest = max((int(x.max(initial=-1)) for x in labels), default=-1)
        if largest >= num_classes:
            raise UsageError(
                f"validation labels include class {largest} but the models have {num_classes} "
                "classes: were they predicted on the same release?"
            )
        search = _Search(
            [sparse.internal_lists(p.classes, p.scores, num_classes) for p in aligned],
            labels,
            num_classes,
            int(self.top_k),
            int(self.chunk_size),
        )
        intervals = None
        if stop.num_resamples:
            positives = np.array([len(x) for x in labels], np.float64)
            intervals = _GainIntervals(
                positives, stop.num_resamples, int(self.seed), stop.confidence
            )
        history = self._select(names, search, budget, intervals, stop)
        self.history_ = history
        self.selection_ = [h["model"] for h in history]
        gaps = [h["gap"] for h in history]
        self.best_step_ = int(np.argmax(gaps)) + 1
        self.validation_gap_ = gaps[self.best_step_ - 1]
        weights: dict[str, float] = {}
        for name in self.selection_[: self.best_step_]:
            weights[name] = weights.get(name, 0.0) + 1.0 / self.best_step_
        self.weights_ = weights
        self.bytes_ = history[self.best_step_ - 1]["bytes"]
        self.num_classes_ = num_classes
        return self

    def _select(self, names, search, budget, intervals, stop) -> list[dict]:
        """The greedy steps: history entries; sets `single_gaps_` and `stopped_`."""
        counts: dict[int, int] = {}
        history: list[dict] = []
        steps = int(self.n_iter)
        self.stopped_ = None
        bar = tqdm(total=steps * len(names), desc="greedy", unit="model", disable=not self.progress)
        for step in range(1, steps + 1):
            allowed = [i for i in range(len(names)) if self.replace or i not in counts]
            # Step 1 scores every model (the single-model GAPs), then keeps those that fit.
            candidates = allowed if step == 1 else [i for i in allowed if budget.fits(i, counts)]
            if not candidates:
                break
            # The pick's entries are kept for its gain interval (the last step's ensemble is
            # never a baseline: step 1 needs them only when a step 2 can follow).
            resample = intervals is not None and (step > 1 or steps > 1)
            gaps = search.candidate_gaps(counts, candidates, bar, keep=resample)
            if step == 1:
                self.single_gaps_ = {names[i]: float(g) for i, g in zip(candidates, gaps)}
                fitting = [j for j, i in enumerate(candidates) if budget.fits(i, counts)]
                candidates, gaps = [candidates[j] for j in fitting], gaps[fitting]
            best = budget.pick(gaps, candidates, counts)
            pick = candidates[best]
            entry = {"step": step, "model": names[pick], "gap": float(gaps[best])}
            entry.update(gain=None, gain_low=None, gain_high=None)
            if step > 1:
                entry["gain"] = entry["gap"] - history[-1]["gap"]
            if resample:
                entry["gain_low"], entry["gain_high"] = intervals.step(
                    search.entries(pick), entry["gain"]
                )
            reason = stop.refuses(entry)
            if reason:
                self.stopped_ = {**entry, "weight": None, "bytes": None, "reason": reason}
                break
            counts[pick] = counts.get(pick, 0) + 1
            entry["weight"] = counts[pick] / step
            entry["bytes"] = budget.total(counts)
            history.append({k: entry[k] for k in HISTORY_KEYS})
        bar.close()
        return history

    def predict(self, test: Mapping[str, Predictions], top_k: int | None = None) -> Predictions:
        """Applies `weights_` to the same models' predictions on other videos.

        Args:
            test: model name -> Predictions; every model in `weights_` must be there.
            top_k: classes kept per video; default the largest K of the inputs, and at least
                the `top_k` of GAP@k.

        Returns:
            The weighted average as Predictions (model name "ensemble").
        """
        if not hasattr(self, "weights_"):
            raise RuntimeError("call fit() before predict()")
        missing = [name for name in self.weights_ if name not in test]
        if missing:
            raise UsageError(
                f"model {missing[0]!r} was selected on validation but has no test predictions: "
                "pass its test prediction file too"
            )
        if top_k is None:
            top_k = max([self.top_k, *(test[name].top_k for name in self.weights_)])
        result = weighted_average(
            test, self.weights_, top_k, method="greedy", chunk_size=self.chunk_size
        )
        result.metadata["validation_gap"] = self.validation_gap_
        return result


class _StopRule:
    """The `bootstrap`, `confidence` and `min_gain` settings, checked once, and whether a
    step's gain lets it be taken."""

    def __init__(self, min_gain, bootstrap, confidence):
        self.num_resamples = integer("bootstrap", bootstrap, minimum=0)
        self.confidence = number("confidence", confidence, above=0, below=1)
        self.kind, self.threshold = None, None
        if isinstance(min_gain, str) and min_gain.strip().lower() == "significant":
            if not self.num_resamples:
                raise UsageError(
                    "min_gain='significant' needs the gain intervals: set bootstrap to at "
                    "least 1 (1000 is the default)"
                )
            self.kind = "significant"
        elif min_gain is not None:
            try:
                self.threshold = number("min_gain", min_gain)
            except UsageError:
                raise UsageError(
                    f"--min_gain must be 'significant' or a number, got {min_gain!r}"
                ) from None
            self.kind = "number"

    def refuses(self, entry: dict) -> str | None:
        """Why the step ENTRY (its gain and interval) is not taken; None when it is."""
        if self.kind is None or entry["gain"] is None:
            return None
        if self.kind == "significant" and not entry["gain_low"] > 0:
            level = f"{self.confidence * 100:g}%"
            if entry["gain_high"] < 0:
                return f"significantly negative (its {level} interval lies below 0)"
            return f"not significant (its {level} interval contains 0)"
        if self.kind == "number" and entry["gain"] < self.threshold:
            return f"gain {entry['gain']:+.5f} is below min_gain {self.threshold:g}"
        return None


class _GainIntervals:
    """Paired bootstrap intervals of each step's gain over the validation videos.

    Every step scores its new ensemble on the same resamples (one seed), so in resample r a
    step's gain is GAP_r(after) - GAP_r(before), both on the same videos. The previous
    ensemble's resampled GAPs are kept ([R] floats), so a step costs one bootstrap pass over
    its ensemble's pooled top-k entries (`significance.Ranking`).
    """

    def __init__(self, positives, num_resamples, seed, confidence):
        self.positives = positives
        self.num_resamples = num_resamples
        self.seed = seed
        self.confidence = confidence
        self.previous = None

    def step(self, entries, gain) -> tuple[float | None, float | None]:
        """The interval (low, high) of the GAIN of the step whose ensemble has the pooled
        ENTRIES (video, scores, hits); (None, None) for the first step, which only records its
        resampled GAPs."""
        video, scores, hits = entries
        ranking = Ranking(video, scores, hits, self.positives)
        (samples,) = bootstrap(
            [ranking.gap], len(self.positives), self.num_resamples, seed=self.seed,
            chunk_size=chunk_for(ranking.num_entries),
        )  # fmt: skip
        previous, self.previous = self.previous, samples
        if gain is None or previous is None:
            return None, None
        interval = percentile_interval(gain, samples - previous, self.confidence)
        return float(interval.low), float(interval.high)


# Under a byte budget, GAP differences below this are noise: the cheaper candidate wins.
BUDGET_TIE_GAP = 1e-4


class _Budget:
    """Which models still fit the byte budget and their group, given the picks so far."""

    def __init__(self, names, costs, max_bytes, groups):
        if max_bytes is not None and costs is None:
            raise UsageError("a byte budget (max_bytes) needs each model's size (costs)")
        self.costs = None
        if costs is not None:
            missing = [n for n in names if n not in costs]
            if missing:
                raise UsageError(f"model {missing[0]!r} has no size among the costs")
            self.costs = [_non_negative(costs[n], f"the size of model {n!r}") for n in names]
        self.max_bytes = None if max_bytes is None else _non_negative(max_bytes, "max_bytes")
        groups = groups or {}
        self.groups = [groups.get(n, ("model", n)) for n in names]
        if self.max_bytes is not None and min(self.costs, default=0) > self.max_bytes:
            smallest = int(np.argmin(self.costs))
            raise UsageError(
                f"no model fits the budget of {self.max_bytes:.0f} bytes: the smallest, "
                f"{names[smallest]!r}, is {self.costs[smallest]:.0f} bytes"
            )

    def fits(self, i: int, counts: Mapping[int, int]) -> bool:
        """Whether model I can be picked next: a repeat always can; a new model must be the
        first of its group and leave the total within the budget."""
        if i in counts:
            return True
        if any(self.groups[j] == self.groups[i] for j in counts):
            return False
        if self.max_bytes is None:
            return True
        return self.total(counts) + self.costs[i] <= self.max_bytes

    def pick(self, gaps: np.ndarray, candidates: list[int], counts: Mapping[int, int]) -> int:
        """The index into CANDIDATES of the step's pick. Without a budget: the highest GAP
        (argmax takes the first maximum and candidates are in name order: ties by name).
        Under a budget, candidates within BUDGET_TIE_GAP of the best GAP count as equal and
        the one that adds the fewest bytes wins (then the higher GAP, then the name): a
        precision that scores the same for half the bytes leaves room for later picks."""
        if self.max_bytes is None:
            return int(np.argmax(gaps))
        near = np.flatnonzero(gaps >= gaps.max() - BUDGET_TIE_GAP)

        def added(j: int) -> float:
            i = candidates[j]
            return 0.0 if i in counts else self.costs[i]

        return int(min(near, key=lambda j: (added(j), -gaps[j], j)))

    def total(self, counts: Mapping[int, int]) -> float | None:
        """The bytes of the picked models (each once); None without costs."""
        if self.costs is None:
            return None
        return float(sum(self.costs[j] for j in counts))


def _non_negative(value, what: str) -> float:
    value = float(value)
    if not np.isfinite(value) or value < 0:
        raise UsageError(f"{what} must be a finite number >= 0, got {value}")
    return value


class _Search:
    """Scores every candidate's addition to the running ensemble without dense per-model data.

    The running ensemble E is the count-weighted sum of the picked models' lists. For a
    candidate m the new top-k per video can only come from (a) E's own top-k classes and (b)
    m's listed classes: any other class of E scores E(c) <= E's k-th best, and adding m (scores
    >= 0) never lowers those k. So each candidate costs O(V * (k + K)), not O(V * C). This
    holds for ties too because E's top-k and every cut follow the tie rule of `y8m.metrics`
    (non-labels before labels on equal scores): a class that lost a tie to E's top-k still
    loses it after m is added.
    """

    def __init__(
        self,
        lists: list[tuple[np.ndarray, np.ndarray]],
        labels: list[np.ndarray],
        num_classes: int,
        top_k: int,
        chunk_size: int,
    ):
        self.lists = lists
        self.num_classes = num_classes
        self.top_k = top_k
        self.num_videos = len(lists[0][0])
        self.chunk_size = max(1, min(chunk_size, self.num_videos))
        self.num_positives = float(sum(len(x) for x in labels))
        width = num_classes + 1  # the extra column holds padding
        rows = np.repeat(np.arange(self.num_videos, dtype=np.int64), [len(x) for x in labels])
        cols = np.concatenate([np.zeros(0, np.int64), *labels]).astype(np.int64)
        self._label_keys = np.sort(rows * width + cols)
        self.hits = self._model_hits(rows, cols)
        self._kept = None
        # One cell per (video, class) of a chunk: E(c) in the real part and the slot of c in
        # E's top-k (-1 if none) in the imaginary part, so one gather fetches both.
        self._cells = np.empty((self.chunk_size, width), np.complex64)

    def _model_hits(self, rows: np.ndarray, cols: np.ndarray) -> list[np.ndarray]:
        """[V, K] bool per model: whether each listed class is a true label (dense per chunk)."""
        width = self.num_classes + 1
        hits = [np.empty(classes.shape, bool) for classes, _ in self.lists]
        is_label = np.empty((self.chunk_size, width), bool)
        for start in range(0, self.num_videos, self.chunk_size):
            stop = min(start + self.chunk_size, self.num_videos)
            block = is_label[: stop - start]
            block.fill(False)
            lo, hi = np.searchsorted(rows, [start, stop])
            block[rows[lo:hi] - start, cols[lo:hi]] = True
            flat_base = (np.arange(stop - start, dtype=np.int64) * width)[:, None]
            for (classes, _), out in zip(self.lists, hits):
                out[start:stop] = np.take(block.reshape(-1), flat_base + classes[start:stop])
        return hits

    def _is_label(self, first_row: int, classes: np.ndarray) -> np.ndarray:
        """[n, w] bool: whether `classes` (rows starting at `first_row`) are true labels."""
        width = self.num_classes + 1
        rows = np.arange(first_row, first_row + len(classes), dtype=np.int64)[:, None]
        keys = rows * width + classes
        if self._label_keys.size == 0:
            return np.zeros(keys.shape, bool)
        at = np.minimum(np.searchsorted(self._label_keys, keys), self._label_keys.size - 1)
        return self._label_keys[at] == keys

    def _dense_labels(self, first_row: int, n: int) -> np.ndarray:
        """[n, C + 1] bool: the true labels of rows `first_row` .. `first_row + n - 1`."""
        width = self.num_classes + 1
        lo, hi = np.searchsorted(self._label_keys, [first_row * width, (first_row + n) * width])
        rows, cols = np.divmod(self._label_keys[lo:hi], width)
        dense = np.zeros((n, width), bool)
        dense[rows - first_row, cols] = True
        return dense

    def candidate_gaps(
        self, counts: dict[int, int], candidates: list[int], bar, keep: bool = False
    ) -> np.ndarray:
        """[len(candidates)] validation GAP of the ensemble `counts` plus each candidate once.

        With KEEP, each candidate's pooled entries stay until the next call, for `entries`.
        """
        pooled_scores: list[list[np.ndarray]] = [[] for _ in candidates]
        pooled_hits: list[list[np.ndarray]] = [[] for _ in candidates]
        pooled_rows = [[] for _ in candidates] if keep else None
        self._kept = None
        for start in range(0, self.num_videos, self.chunk_size):
            stop = min(start + self.chunk_size, self.num_videos)
            self._chunk(start, stop, counts, candidates, pooled_scores, pooled_hits, pooled_rows)
        gaps = np.empty(len(candidates))
        for i in range(len(candidates)):
            gaps[i] = pooled_average_precision(
                np.concatenate(pooled_scores[i]),
                np.concatenate(pooled_hits[i]),
                self.num_positives,
            )
            bar.update(1)
        if keep:
            self._kept = {
                m: parts
                for m, parts in zip(candidates, zip(pooled_scores, pooled_hits, pooled_rows))
            }
        return gaps

    def entries(self, candidate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The pooled top-k entries that the last `candidate_gaps(..., keep=True)` ranked for
        CANDIDATE: (video [M] int, scores [M] float32, hits [M] bool). Frees the kept entries."""
        scores, hits, rows = self._kept[candidate]
        self._kept = None
        video = np.repeat(np.arange(self.num_videos), np.concatenate(rows))
        return video, np.concatenate(scores), np.concatenate(hits)

    def _chunk(
        self, start, stop, counts, candidates, pooled_scores, pooled_hits, pooled_rows=None
    ) -> None:
        n, k, width = stop - start, self.top_k, self.num_classes + 1
        rows = np.arange(n)[:, None]
        flat_base = (np.arange(n, dtype=np.int64) * width)[:, None]

        # The running ensemble on this chunk, its top-k (the E side) and their slots.
        cells = self._cells[:n]
        ensemble, slot_of = cells.real, cells.imag
        ensemble.fill(-np.inf)
        slot_of.fill(-1)
        for j, count in counts.items():
            classes, scores = self.lists[j]
            sparse.accumulate(ensemble, rows, classes[start:stop], scores[start:stop], count)
        ensemble[:, self.num_classes] = -np.inf
        if counts:
            top_classes, top_values = top_k_per_row(
                ensemble, k, labels=self._dense_labels(start, n)
            )
            top_hits = self._is_label(start, top_classes)
            k_e = top_classes.shape[1]
            listed = top_values > -np.inf
            slots = np.broadcast_to(np.arange(k_e, dtype=np.float32), top_classes.shape)
            slot_of[np.nonzero(listed)[0], top_classes[listed]] = slots[listed]
        cells_flat = cells.reshape(-1)
        buffers: dict[int, tuple] = {}  # per list width: combined scores, hits, own columns

        for i, m in enumerate(candidates):
            classes, scores = self.lists[m]
            scores = scores[start:stop]
            hits = self.hits[m][start:stop]
            if not counts:
                keep = _top_k_mask(scores, k, hits)
                pooled_scores[i].append(scores[keep])
                pooled_hits[i].append(hits[keep])
                if pooled_rows is not None:  # entries kept per video, for `entries`
                    pooled_rows[i].append(np.count_nonzero(keep, axis=1))
                continue
            num_listed = classes.shape[1]
            if num_listed not in buffers:
                combined_hits = np.empty((n, k_e + num_listed), bool)
                combined_hits[:, :k_e] = top_hits
                buffers[num_listed] = (
                    np.empty((n, k_e + num_listed), np.float32),
                    combined_hits,
                    np.arange(k_e, k_e + num_listed)[None, :],
                )
            combined, combined_hits, own_column = buffers[num_listed]
            cell = np.take(cells_flat, flat_base + classes[start:stop])
            slot = cell.imag.astype(np.intp)
            in_top = slot >= 0
            # Each of m's classes lands in its own column with E(c) + s_m(c), unless it is among
            # E's top-k: then s_m(c) is added to that slot and its own column stays -inf.
            combined[:, :k_e] = top_values
            combined[:, k_e:] = np.where(in_top, np.float32(-np.inf), np.maximum(cell.real, 0))
            combined[rows, np.where(in_top, slot, own_column)] += scores
            combined_hits[:, k_e:] = hits
            keep = _top_k_mask(combined, k, combined_hits)
            pooled_scores[i].append(combined[keep])
            pooled_hits[i].append(combined_hits[keep])
            if pooled_rows is not None:
                pooled_rows[i].append(np.count_nonzero(keep, axis=1))


def _top_k_mask(values: np.ndarray, k: int, hits: np.ndarray) -> np.ndarray:
    """[n, w] bool marking each row's k largest finite values (exactly k unless fewer).

    Ties at the k-th value keep the non-hits first, the tie rule of `y8m.metrics`, as a
    per-video top-k list of the dense scores would.
    """
    n, w = values.shape
    finite = values > -np.inf
    if w <= k:
        return finite
    threshold = np.partition(values, w - k, axis=1)[:, w - k : w - k + 1]
    keep = values >= threshold
    ties = np.flatnonzero(keep.sum(axis=1) != k)
    if ties.size:
        index, _ = top_k_per_row(values[ties], k, labels=hits[ties])
        exact = np.zeros((ties.size, w), bool)
        np.put_along_axis(exact, index, True, axis=1)
        keep[ties] = exact
    return keep & finite
