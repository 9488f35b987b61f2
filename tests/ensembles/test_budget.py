"""Greedy selection under a byte budget: the budget holds, groups exclude, and the command's
recipe records sizes (issue 17, part 1)."""

import json

import numpy as np
import pytest

from ensembles import GreedyEnsembler
from ensembles.commands import ensemble
from tests.ensembles._helpers import random_models
from y8m.errors import UsageError
from y8m.predictions import Predictions, PredictionWriter

PRECISION_BYTES = {"float32": 4, "float16": 2, "int8": 1}  # per parameter, roughly


def precision_variants(seed, num_runs=3, params=(300_000, 200_000, 500_000), **kwargs):
    """`run<r>@<precision>` models: the run's scores with more noise at lower precision; costs
    as bytes per parameter; groups by run."""
    base, _ = random_models(seed, num_models=num_runs, **kwargs)
    rng = np.random.default_rng(seed + 100)
    models, costs, groups = {}, {}, {}
    for r, p in enumerate(base.values()):
        for precision, per_param in PRECISION_BYTES.items():
            name = f"run{r}@{precision}"
            noise = {"float32": 0.0, "float16": 1e-4, "int8": 2e-2}[precision]
            scores = np.clip(p.scores + noise * rng.standard_normal(p.scores.shape), 0, 1)
            order = np.argsort(-scores, axis=1, kind="stable")
            meta = dict(p.metadata, model_name=name)
            models[name] = Predictions(
                p.ids,
                np.take_along_axis(p.classes, order, 1),
                np.take_along_axis(scores, order, 1).astype(np.float32),
                p.labels,
                meta,
            )
            costs[name] = per_param * params[r % len(params)]
            groups[name] = f"run{r}"
    return models, costs, groups


def check_budget(est, costs, max_bytes, groups=None):
    """Every step's bytes are the distinct picks' costs so far, within the budget."""
    picked = []
    for h in est.history_:
        if h["model"] not in picked:
            picked.append(h["model"])
        assert h["bytes"] == pytest.approx(sum(costs[n] for n in picked))
        assert h["bytes"] <= max_bytes
    assert (
        est.bytes_ == pytest.approx(sum(costs[n] for n in est.weights_)) and est.bytes_ <= max_bytes
    )
    if groups:
        chosen = [groups[n] for n in picked]
        assert len(chosen) == len(set(chosen)), picked


@pytest.mark.parametrize("seed", range(20))
def test_budget_is_never_exceeded(seed):
    rng = np.random.default_rng(seed)
    models, _ = random_models(seed, num_models=5, num_videos=40, num_classes=20, k=5)
    costs = {n: float(rng.integers(1, 100)) for n in models}
    max_bytes = float(rng.uniform(min(costs.values()), sum(costs.values())))
    replace = bool(seed % 2)
    est = GreedyEnsembler(n_iter=6, replace=replace, top_k=5, max_bytes=max_bytes)
    est.fit(models, costs=costs)
    check_budget(est, costs, max_bytes)
    # It stops only when nothing fits: every model left out would break the budget.
    if len(est.history_) < 6:
        spent = est.history_[-1]["bytes"]
        left = [n for n in models if n not in est.selection_]
        assert not replace and all(spent + costs[n] > max_bytes for n in left)


def test_budgeted_pick_differs_when_the_unconstrained_best_does_not_fit():
    models, _ = random_models(3, num_models=4)
    free = GreedyEnsembler(n_iter=3).fit(models)
    best = free.selection_[0]
    assert best == max(free.single_gaps_, key=free.single_gaps_.get) == "model_3"
    costs = {n: 10.0 if n == best else 3.0 for n in models}
    est = GreedyEnsembler(n_iter=3, max_bytes=9.0).fit(models, costs=costs)
    assert best not in est.selection_ and est.selection_ != free.selection_
    fitting = {n: g for n, g in est.single_gaps_.items() if costs[n] <= 9.0}
    assert est.selection_[0] == max(fitting, key=fitting.get)
    assert est.single_gaps_ == pytest.approx(free.single_gaps_)  # every model is still scored
    assert est.validation_gap_ < free.validation_gap_
    check_budget(est, costs, 9.0)


def test_groups_take_one_precision_per_run_and_selection_stops_when_nothing_fits():
    models, costs, groups = precision_variants(0)
    free = GreedyEnsembler(n_iter=6, replace=False).fit(models)
    assert len({groups[n] for n in free.selection_}) < len(free.selection_)  # both precisions
    est = GreedyEnsembler(n_iter=6, replace=False).fit(models, groups=groups)
    assert len(est.history_) == 3  # one model per run, then no candidate is left
    assert sorted(groups[n] for n in est.selection_) == ["run0", "run1", "run2"]
    assert all(h["bytes"] is None for h in est.history_) and est.bytes_ is None

    # Below the best single model's float32 size (run2, 2 MB) the run comes at float16.
    assert free.selection_[0] == "run2@float32" and costs["run2@float32"] == 2_000_000
    max_bytes = 1_500_000.0
    budgeted = GreedyEnsembler(n_iter=6, max_bytes=max_bytes).fit(
        models, costs=costs, groups=groups
    )
    check_budget(budgeted, costs, max_bytes, groups)
    assert budgeted.selection_[0] == "run2@float16" and "run2@float32" not in budgeted.selection_


def test_a_repeat_pick_costs_nothing():
    models, _ = random_models(1, num_models=2)
    costs = dict.fromkeys(models, 5.0)
    est = GreedyEnsembler(n_iter=6, max_bytes=5.0).fit(models, costs=costs)
    assert len(est.history_) == 6 and set(est.selection_) == {est.selection_[0]}
    assert [h["bytes"] for h in est.history_] == [5.0] * 6


def test_budget_errors():
    models, _ = random_models(0, num_models=2)
    costs = {"model_0": 7.0, "model_1": 9.0}
    with pytest.raises(UsageError, match="smallest, 'model_0', is 7 bytes"):
        GreedyEnsembler(max_bytes=6.0).fit(models, costs=costs)
    with pytest.raises(UsageError, match="needs each model's size"):
        GreedyEnsembler(max_bytes=6.0).fit(models)
    with pytest.raises(UsageError, match="'model_1' has no size"):
        GreedyEnsembler(max_bytes=60.0).fit(models, costs={"model_0": 1.0})
    with pytest.raises(UsageError, match="must be a finite number"):
        GreedyEnsembler().fit(models, costs={"model_0": -1.0, "model_1": 1.0})


def write_precision_stores(directory, models, costs, split, with_labels=True):
    directory.mkdir(exist_ok=True)
    for name, p in models.items():
        run, precision = name.split("@")
        metadata = {"run": run, "train_dir": f"/runs/{run}", "precision": precision}
        if costs is not None:
            metadata["model_bytes"] = int(costs[name])
        with PredictionWriter(
            directory / f"{split}.{name}.parquet",
            model_name=name,
            split=split,
            num_classes=3862,
            top_k=p.top_k,
            extra_metadata=metadata,
        ) as writer:
            writer.add_topk(p.ids, p.classes, p.scores, p.labels if with_labels else None)
    return str(directory / f"{split}.*.parquet")


def test_command_budget_recipe_records_precisions_and_bytes(tmp_path, capsys):
    models, costs, groups = precision_variants(2, num_videos=60, num_classes=40, k=8)
    validation = write_precision_stores(tmp_path / "val", models, costs, "validate")
    test = write_precision_stores(tmp_path / "test", models, costs, "test", with_labels=False)
    output = tmp_path / "out" / "budget.csv"
    result = ensemble(
        validation=validation, test=test, greedy=5, output_file=str(output), max_mb=1.5
    )
    printed = capsys.readouterr().out
    assert "MB" in printed and "size:" in printed and "(budget 1.5 MB)" in printed
    assert result["max_mb"] == 1.5 and result["total_mb"] <= 1.5
    assert all(h["bytes"] <= 1.5e6 for h in result["steps"])
    assert len({groups[h["model"]] for h in result["steps"]}) == len(
        {h["model"] for h in result["steps"]}
    )
    recipe = json.loads((tmp_path / "out" / "budget.recipe.json").read_text())
    assert set(recipe["model_sizes"]) == set(recipe["weights"])
    for name, size in recipe["model_sizes"].items():
        assert size == {"precision": name.split("@")[1], "bytes": costs[name]}
    assert recipe["total_mb"] == pytest.approx(sum(costs[n] for n in recipe["weights"]) / 1e6)
    assert recipe["max_mb"] == 1.5 and recipe["history"][0]["bytes"] > 0
    assert (tmp_path / "out" / "budget.gap.png").read_bytes().startswith(b"\x89PNG")

    # Without a budget the sizes are still recorded, and the choice may exceed 1.5 MB.
    free = ensemble(validation=validation, test=test, greedy=5, output_file=str(tmp_path / "f"))
    assert free["max_mb"] is None and free["total_mb"] is not None


def test_command_budget_errors(tmp_path):
    models, costs, _ = precision_variants(2, num_videos=30, num_classes=40, k=8)
    unsized = write_precision_stores(tmp_path / "unsized", models, None, "validate")
    with pytest.raises(UsageError) as err:
        ensemble(validation=unsized, max_mb=10, output_file=str(tmp_path / "a.csv"))
    message = str(err.value)
    assert "records no model_bytes" in message and "validate.run0@float16.parquet" in message
    assert "\n" not in message
    sized = write_precision_stores(tmp_path / "sized", models, costs, "validate")
    with pytest.raises(UsageError, match=r"--max_mb=0.1 fits no model: the smallest, .* 0.2 MB"):
        ensemble(validation=sized, max_mb=0.1, output_file=str(tmp_path / "b.csv"))
    with pytest.raises(UsageError, match="--max_mb budgets greedy selection"):
        ensemble(validation=sized, method="mean", max_mb=10, output_file=str(tmp_path / "c.csv"))
    # Without --max_mb a store that records no size is fine: no costs, no MB column.
    result = ensemble(validation=unsized, greedy=2, output_file=str(tmp_path / "d.csv"))
    assert result["total_mb"] is None and all(h["bytes"] is None for h in result["steps"])


def test_under_a_budget_equal_gaps_go_to_the_cheaper_precision():
    base, _ = random_models(7, num_models=2, num_videos=80, num_classes=30, k=6)
    a, b = base.values()
    models = {"a@float16": a, "a@int8": a, "b@int8": b}  # a's two precisions score the same
    costs = {"a@float16": 2.0, "a@int8": 1.0, "b@int8": 1.0}
    groups = {"a@float16": "a", "a@int8": "a", "b@int8": "b"}
    fit = GreedyEnsembler(n_iter=2, max_bytes=10).fit(models, costs=costs, groups=groups)
    single = fit.single_gaps_
    if single["a@float16"] >= single["b@int8"]:
        assert fit.selection_[0] == "a@int8"  # not the first name in order, the cheaper one
    # Without a budget the rule is the plain one: the first name among equal GAPs.
    plain = GreedyEnsembler(n_iter=1).fit({"a@float16": a, "a@int8": a})
    assert plain.selection_ == ["a@float16"]
    budgeted = GreedyEnsembler(n_iter=1, max_bytes=10).fit(
        {"a@float16": a, "a@int8": a}, costs=costs, groups=groups
    )
    assert budgeted.selection_ == ["a@int8"]
