"""GreedyEnsembler: crafted selections, a dense reference, replacement, ties and errors."""

import numpy as np
import pytest

from ensembles import GreedyEnsembler
from tests.ensembles._helpers import (
    dense_greedy,
    densify,
    ids_for,
    random_models,
    sparse_from_dense,
)
from y8m.errors import UsageError
from y8m.predictions import Predictions


def crafted_case():
    """Four models on 12 videos with one label each (class = video % 4, 6 classes).

    `strong` ranks the label first with confidence on videos 0-7 and is unsure and wrong on
    8-11; `complement` is confident and right exactly there and unsure elsewhere; `strong_copy`
    duplicates `strong` (adding it changes nothing); `weak` is unsure and wrong everywhere.
    Expected: strong (best single; its copy ties and loses on name), then complement.
    """
    num_videos, num_classes = 12, 6
    labels = np.zeros((num_videos, num_classes))
    labels[np.arange(num_videos), np.arange(num_videos) % 4] = 1
    rng = np.random.default_rng(0)

    def model(right):
        dense = rng.random((num_videos, num_classes)) * 0.1
        for v in range(num_videos):
            label, wrong = v % 4, v % 4 + 1
            if right[v]:
                dense[v, label] = 0.9 - 0.01 * v
            else:
                dense[v, wrong], dense[v, label] = 0.4 - 0.01 * v, 0.3 - 0.01 * v
        return dense

    strong = model([v < 8 for v in range(num_videos)])
    models = {
        "strong": sparse_from_dense("strong", strong, 3, labels),
        "strong_copy": sparse_from_dense("strong_copy", strong, 3, labels),
        "complement": sparse_from_dense(
            "complement", model([v >= 8 for v in range(num_videos)]), 3, labels
        ),
        "weak": sparse_from_dense("weak", model([False] * num_videos), 3, labels),
    }
    return models, labels


def test_crafted_case_picks_expected_models_in_order():
    models, labels = crafted_case()
    est = GreedyEnsembler(n_iter=3, replace=False).fit(models)
    assert est.selection_[:2] == ["strong", "complement"]
    assert est.single_gaps_["strong"] == pytest.approx(est.single_gaps_["strong_copy"])
    assert est.single_gaps_["strong"] > est.single_gaps_["complement"] > est.single_gaps_["weak"]
    assert est.history_[1]["gap"] > est.history_[0]["gap"]
    assert [h["step"] for h in est.history_] == [1, 2, 3]
    reference = dense_greedy(models, labels, 3, replace=False)
    assert est.selection_ == [name for name, _ in reference]
    np.testing.assert_allclose([h["gap"] for h in est.history_], [g for _, g in reference])


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("replace", [True, False])
@pytest.mark.parametrize("top_k", [3, 20])
def test_matches_dense_reference(seed, replace, top_k):
    models, labels = random_models(seed)
    est = GreedyEnsembler(n_iter=5, replace=replace, top_k=top_k, chunk_size=16).fit(models)
    reference = dense_greedy(models, labels, 5, replace=replace, top_k=top_k)
    assert est.selection_ == [name for name, _ in reference]
    np.testing.assert_allclose(
        [h["gap"] for h in est.history_], [g for _, g in reference], atol=1e-9
    )


def test_replacement_lets_a_model_gain_weight():
    models, labels = random_models(1, num_models=3)
    with_replacement = GreedyEnsembler(n_iter=6).fit(models)
    without = GreedyEnsembler(n_iter=6, replace=False).fit(models)
    assert len(set(with_replacement.selection_)) < len(with_replacement.selection_)
    assert without.selection_ == sorted(set(without.selection_), key=without.selection_.index)
    assert len(without.selection_) == 3  # stops when every model is used
    for est in (with_replacement, without):
        assert sum(est.weights_.values()) == pytest.approx(1.0)
        used = est.selection_[: est.best_step_]
        for name, weight in est.weights_.items():
            assert weight == pytest.approx(used.count(name) / est.best_step_)
        assert est.validation_gap_ == max(h["gap"] for h in est.history_)
        assert est.validation_gap_ >= max(est.single_gaps_.values())


def test_ties_broken_by_name_and_deterministic():
    models, _ = random_models(2, num_models=2)
    twin = models["model_1"]
    tied = {
        "zeta": twin,
        "alpha": Predictions(
            twin.ids,
            twin.classes,
            twin.scores,
            twin.labels,
            {**twin.metadata, "model_name": "alpha"},
        ),
        "model_0": models["model_0"],
    }
    first = GreedyEnsembler(n_iter=4).fit(tied)
    assert first.selection_[0] == "alpha"
    second = GreedyEnsembler(n_iter=4).fit(dict(reversed(list(tied.items()))))
    assert second.history_ == first.history_


def test_rows_are_matched_by_id_and_padding_is_ignored():
    models, labels = random_models(3, num_models=3)
    shuffled = models["model_2"].take(np.random.default_rng(0).permutation(80))
    padded = models["model_1"]
    classes, scores = padded.classes.copy(), padded.scores.copy()
    classes[:10, -2:], scores[:10, -2:] = -1, 0.0
    padded = Predictions(padded.ids, classes, scores, padded.labels, padded.metadata)
    mixed = {"model_0": models["model_0"], "model_1": padded, "model_2": shuffled}
    est = GreedyEnsembler(n_iter=4).fit(mixed)
    reference = dense_greedy({**mixed, "model_2": models["model_2"]}, labels, 4)
    assert est.selection_ == [name for name, _ in reference]


def test_predict_applies_weights_and_requires_every_model():
    models, _ = random_models(4, num_models=3)
    est = GreedyEnsembler(n_iter=3).fit(models)
    out = est.predict(models)
    assert out.num_videos == 80 and out.metadata["method"] == "greedy"
    assert out.gap() == pytest.approx(est.validation_gap_, abs=1e-6)
    missing = next(iter(est.weights_))
    with pytest.raises(UsageError, match=repr(missing)):
        est.predict({n: p for n, p in models.items() if n != missing})


def test_usage_errors():
    models, _ = random_models(5, num_models=2)
    unlabelled = {
        n: Predictions(p.ids, p.classes, p.scores, None, p.metadata) for n, p in models.items()
    }
    with pytest.raises(UsageError, match="no labels"):
        GreedyEnsembler().fit(unlabelled)
    other = models["model_1"].take(np.arange(40))
    with pytest.raises(UsageError, match="cover different videos"):
        GreedyEnsembler().fit({"model_0": models["model_0"], "model_1": other})
    negative = models["model_1"]
    negative = Predictions(
        negative.ids, negative.classes, -negative.scores, negative.labels, negative.metadata
    )
    with pytest.raises(UsageError, match="negative"):
        GreedyEnsembler().fit({"model_0": models["model_0"], "model_1": negative})
    big_label = models["model_0"]
    big_label = Predictions(
        big_label.ids,
        big_label.classes,
        big_label.scores,
        [np.array([500])] + big_label.labels[1:],
        big_label.metadata,
    )
    with pytest.raises(UsageError, match="class 500"):
        GreedyEnsembler().fit({"model_0": big_label})
    with pytest.raises(UsageError, match="metric"):
        GreedyEnsembler(metric="map").fit(models)
    duplicated = Predictions(
        np.r_[ids_for(79), ["vid000"]],
        models["model_0"].classes,
        models["model_0"].scores,
        models["model_0"].labels,
    )
    with pytest.raises(UsageError, match="more than once"):
        GreedyEnsembler().fit({"a": duplicated, "b": models["model_1"]})


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("top_k", [3, 6])
def test_tied_scores_follow_the_metrics_tie_rule(seed, top_k):
    # Scores in steps of 1/8 (exact sums in float32 and float64) tie at every cut, inside a
    # model and in the summed ensemble; the sparse search must give the dense reference
    # (y8m.metrics' tie rule) exactly.
    rng = np.random.default_rng(seed)
    labels = (rng.random((60, 12)) < 0.2).astype(np.float32)
    models = {}
    for m in range(3):
        dense = np.round((rng.random((60, 12)) * 0.7 + 0.3 * labels * rng.random((60, 12))) * 8) / 8
        models[f"model_{m}"] = sparse_from_dense(f"model_{m}", dense, 6, labels)
    est = GreedyEnsembler(n_iter=4, top_k=top_k, chunk_size=7).fit(models)
    reference = dense_greedy(models, labels, 4, top_k=top_k)
    assert est.selection_ == [name for name, _ in reference]
    np.testing.assert_allclose(
        [h["gap"] for h in est.history_], [g for _, g in reference], atol=1e-9
    )


def test_bootstrap_adds_gain_intervals_and_changes_no_pick_or_gap():
    models, _ = random_models(6, num_models=4, num_videos=200)
    plain = GreedyEnsembler(n_iter=5, bootstrap=0).fit(models)
    with_intervals = GreedyEnsembler(n_iter=5, bootstrap=300).fit(models)
    assert with_intervals.selection_ == plain.selection_
    assert with_intervals.weights_ == plain.weights_
    assert [h["gap"] for h in with_intervals.history_] == [h["gap"] for h in plain.history_]
    keys = ["step", "model", "weight", "gap", "bytes", "gain", "gain_low", "gain_high"]
    for est in (plain, with_intervals):
        assert all(list(h) == keys for h in est.history_) and est.stopped_ is None
        first, *later = est.history_
        assert first["gain"] is first["gain_low"] is first["gain_high"] is None
        for before, h in zip(est.history_, later):
            assert h["gain"] == pytest.approx(h["gap"] - before["gap"], abs=1e-15)
    assert all(h["gain_low"] is None for h in plain.history_)
    for h in with_intervals.history_[1:]:
        assert h["gain_low"] < h["gain_high"]
        assert h["gain_low"] - 0.01 <= h["gain"] <= h["gain_high"] + 0.01
    # The same seed gives the same intervals; another seed others.
    again = GreedyEnsembler(n_iter=5, bootstrap=300).fit(models)
    assert again.history_ == with_intervals.history_
    other = GreedyEnsembler(n_iter=5, bootstrap=300, seed=1).fit(models)
    assert other.history_[1]["gain_low"] != with_intervals.history_[1]["gain_low"]


def test_a_step_entries_are_its_videos_top_k_and_rank_to_its_gap():
    # The entries the bootstrap resamples: each video's top-k of the ensemble (checked against
    # the dense count-weighted sum), tagged with the right video, ranking to the step's GAP.
    from ensembles.greedy import _Search
    from y8m import metrics
    from y8m.significance import Ranking

    models, labels = random_models(7, num_models=3, num_videos=90)
    names = sorted(models)
    lists = [(p.classes.astype(np.int32), p.scores) for p in (models[n] for n in names)]
    label_lists = models[names[0]].labels
    search = _Search(lists, label_lists, labels.shape[1], 5, chunk_size=16)
    positives = [len(x) for x in label_lists]
    for counts in ({}, {0: 1}, {0: 2, 2: 1}):
        for candidate in range(3):
            (gap,) = search.candidate_gaps(counts, [candidate], _NoBar(), keep=True)
            video, scores, hits = search.entries(candidate)
            assert Ranking(video, scores, hits, positives).gap()[0] == pytest.approx(gap, abs=1e-12)
            total = np.zeros(labels.shape)
            listed = np.zeros(labels.shape, bool)
            for j, count in {**counts, candidate: counts.get(candidate, 0) + 1}.items():
                dense, ok = densify(models[names[j]], labels.shape[1])
                total, listed = total + count * dense, listed | ok
            _, expected = metrics.top_k_per_row(np.where(listed, total, -np.inf), 5, sort=True)
            assert np.array_equal(video, np.repeat(np.arange(90), 5))
            got = -np.sort(-scores.reshape(90, 5), axis=1)
            np.testing.assert_allclose(got, expected, rtol=1e-6)


class _NoBar:
    def update(self, n):
        pass


def complementary_case(num_videos=600, num_classes=20):
    """`strong` knows 70% of the videos, `complement` the other 30% (a real gain), `noise`
    scores at random (a useless model, a later candidate)."""
    rng = np.random.default_rng(0)
    labels = np.zeros((num_videos, num_classes))
    labels[np.arange(num_videos), rng.integers(0, num_classes, num_videos)] = 1
    known = rng.random(num_videos) < 0.7

    def model(right):  # confident and right on RIGHT, unsure (low scores) elsewhere
        dense = rng.random(labels.shape) * 0.2
        dense[right] += 0.7 * labels[right]
        return dense

    dense = {"strong": model(known), "complement": model(~known), "noise": rng.random(labels.shape)}
    return {n: sparse_from_dense(n, d, 5, labels) for n, d in dense.items()}


def test_min_gain_significant_stops_on_noise_but_takes_a_real_complement():
    models = complementary_case()
    full = GreedyEnsembler(n_iter=3, replace=False).fit(models)
    assert full.selection_ == ["strong", "complement", "noise"]
    assert full.history_[1]["gain_low"] > 0 and full.history_[2]["gain_low"] <= 0
    stopped = GreedyEnsembler(n_iter=3, replace=False, min_gain="significant").fit(models)
    assert stopped.selection_ == ["strong", "complement"]
    assert stopped.stopped_["model"] == "noise" and stopped.stopped_["step"] == 3
    assert stopped.stopped_["reason"] == "significantly negative (its 95% interval lies below 0)"
    assert stopped.stopped_["gain_low"] == full.history_[2]["gain_low"]
    assert stopped.weights_ == {"strong": 0.5, "complement": 0.5}
    # A number: a step whose gain is below it is not taken.
    gain = full.history_[1]["gain"]
    high_bar = GreedyEnsembler(n_iter=3, replace=False, min_gain=gain + 1e-9).fit(models)
    assert high_bar.selection_ == ["strong"] and "below min_gain" in high_bar.stopped_["reason"]
    low_bar = GreedyEnsembler(n_iter=3, replace=False, min_gain=-1.0, bootstrap=0).fit(models)
    assert low_bar.selection_ == full.selection_ and low_bar.stopped_ is None


def test_min_gain_significant_refuses_a_positive_gain_that_may_be_noise():
    # On these 400 videos step 3 gains +0.009 with a 95% interval of about [-0.009, +0.027]:
    # a plain threshold of 0 takes it, significance does not.
    models, _ = random_models(0, num_models=4, num_videos=400, num_classes=40, k=8)
    full = GreedyEnsembler(n_iter=3).fit(models)
    step = full.history_[2]
    assert step["gain"] > 0 and step["gain_low"] < 0 < step["gain_high"]
    assert GreedyEnsembler(n_iter=3, min_gain=0.0).fit(models).history_ == full.history_
    stopped = GreedyEnsembler(n_iter=3, min_gain="significant").fit(models)
    assert stopped.history_ == full.history_[:2] and stopped.stopped_["model"] == step["model"]
    assert stopped.stopped_["reason"] == "not significant (its 95% interval contains 0)"


def test_min_gain_and_bootstrap_errors():
    models, _ = random_models(8, num_models=2)
    with pytest.raises(UsageError, match="needs the gain intervals"):
        GreedyEnsembler(min_gain="significant", bootstrap=0).fit(models)
    with pytest.raises(UsageError, match="--min_gain must be 'significant' or a number"):
        GreedyEnsembler(min_gain="big").fit(models)
    with pytest.raises(UsageError, match="--bootstrap must be at least 0"):
        GreedyEnsembler(bootstrap=-1).fit(models)
