"""GreedyEnsembler: crafted selections, a dense reference, replacement, ties and errors."""

import numpy as np
import pytest

from ensembles import GreedyEnsembler
from tests.ensembles._helpers import dense_greedy, ids_for, random_models, sparse_from_dense
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
