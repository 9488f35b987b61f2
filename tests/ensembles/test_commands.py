"""`y8m ensemble` end to end on small prediction stores in tmp_path."""

import json
import re

import numpy as np
import pytest

from ensembles.commands import ensemble
from ensembles.inputs import load_input
from tests.ensembles._helpers import random_models
from y8m.errors import UsageError
from y8m.predictions import PredictionWriter


def write_stores(directory, models, split, with_labels=True):
    directory.mkdir(exist_ok=True)
    for name, p in models.items():
        with PredictionWriter(
            directory / f"{name}_{split}",
            model_name=name,
            split=split,
            num_classes=3862,
            top_k=p.top_k,
        ) as writer:
            writer.add_topk(p.ids, p.classes, p.scores, p.labels if with_labels else None)
    return str(directory / f"*_{split}.parquet")


@pytest.fixture()
def stores(tmp_path):
    validation, _ = random_models(0, num_models=3, num_videos=60, num_classes=40, k=8)
    test, _ = random_models(1, num_models=3, num_videos=50, num_classes=40, k=8)
    return (
        write_stores(tmp_path / "val", validation, "validate"),
        write_stores(tmp_path / "test", test, "test", with_labels=False),
    )


def test_greedy_writes_submission_recipe_and_plot(tmp_path, stores, capsys):
    validation, test = stores
    output = tmp_path / "out" / "submission.csv"
    result = ensemble(validation=validation, test=test, greedy=4, output_file=str(output))
    printed = capsys.readouterr().out
    assert "step" in printed and "validation GAP@20" in printed
    assert result["validation_gap"] >= result["best_single_gap"]
    assert result["num_test_videos"] == 50 and len(result["steps"]) == 4
    lines = output.read_text().splitlines()
    assert lines[0] == "VideoId,LabelConfidencePairs" and len(lines) == 51
    pairs = [len(line.split(",")[1].split()) // 2 for line in lines[1:]]
    assert min(pairs) >= 8 and max(pairs) <= 20  # the union of lists, cut to top_k=20
    recipe = json.loads((tmp_path / "out" / "submission.recipe.json").read_text())
    assert recipe["method"] == "greedy" and recipe["weights"] == result["weights"]
    assert recipe["validation"] == validation and recipe["test"] == test
    assert [h["gap"] for h in recipe["history"]] == [h["gap"] for h in result["steps"]]
    png = (tmp_path / "out" / "submission.gap.png").read_bytes()
    assert png.startswith(b"\x89PNG")

    # Replaying the recipe gives the same submission byte for byte.
    replay = tmp_path / "replay.csv"
    again = ensemble(
        recipe=str(tmp_path / "out" / "submission.recipe.json"), output_file=str(replay)
    )
    assert again["weights"] == result["weights"]
    assert replay.read_bytes() == output.read_bytes()


def test_no_replacement_gzip_and_other_methods(tmp_path, stores):
    validation, test = stores
    result = ensemble(
        validation=validation,
        test=test,
        greedy=5,
        no_replacement=True,
        output_file=str(tmp_path / "a.csv"),
        gzip=True,
    )
    assert result["output_file"].endswith("a.csv.gz") and len(result["steps"]) == 3
    assert len({s["model"] for s in result["steps"]}) == 3
    mean = ensemble(
        validation=validation, test=test, method="mean", output_file=str(tmp_path / "mean.csv")
    )
    assert mean["weights"] == pytest.approx(dict.fromkeys(mean["weights"], 1 / 3))
    weighted = ensemble(
        validation=validation,
        test=test,
        method="weighted",
        weights="model_2=3,model_0=1",
        output_file=str(tmp_path / "w.csv"),
    )
    assert weighted["weights"] == pytest.approx({"model_2": 0.75, "model_0": 0.25})
    ranked = ensemble(test=test, method="rank", output_file=str(tmp_path / "r.csv"))
    assert ranked["validation_gap"] is None and ranked["num_test_videos"] == 50


def test_kaggle_csvs_as_test_inputs(tmp_path, stores):
    validation, _ = stores
    test_dir = tmp_path / "csv"
    test_dir.mkdir()
    for name in ("model_0", "model_1", "model_2"):
        (test_dir / f"{name}.csv").write_text(
            "VideoId,LabelConfidencePairs\nx1,3 0.9 4 0.2\nx2,5 0.5\n"
        )
    with pytest.warns(UserWarning, match="Kaggle CSV"):
        result = ensemble(
            validation=validation,
            test=str(test_dir / "*.csv"),
            greedy=2,
            output_file=str(tmp_path / "s.csv"),
        )
    assert result["num_test_videos"] == 2


def test_missing_model_on_one_side_is_a_clear_error(tmp_path, stores):
    validation, test = stores
    only_two = str(tmp_path / "test" / "model_[01]_test.parquet")
    with pytest.raises(UsageError, match="'model_2' has validation predictions .* no test"):
        ensemble(validation=validation, test=only_two, output_file=str(tmp_path / "x.csv"))
    with pytest.raises(UsageError, match="no validation prediction files match"):
        ensemble(validation=str(tmp_path / "nothing*.parquet"), test=test)


def test_usage_errors(tmp_path, stores):
    validation, test = stores
    out = str(tmp_path / "x.csv")
    with pytest.raises(UsageError, match="needs --validation"):
        ensemble(test=test, output_file=out)
    with pytest.raises(UsageError, match="no labels"):
        ensemble(validation=test, output_file=out)
    with pytest.raises(UsageError, match="unknown --method"):
        ensemble(validation=validation, method="best", output_file=out)
    with pytest.raises(UsageError, match="needs --weights"):
        ensemble(validation=validation, method="weighted", output_file=out)
    with pytest.raises(UsageError, match="segment task"):
        ensemble(validation=validation, version=2019, output_file=out)
    with pytest.raises(UsageError, match="positive integer"):
        ensemble(validation=validation, greedy=0, output_file=out)
    with pytest.raises(UsageError, match="not a y8m ensemble recipe"):
        (tmp_path / "bad.json").write_text("{}")
        ensemble(recipe=str(tmp_path / "bad.json"), test=test, output_file=out)


def test_selection_without_test_then_apply_with_recipe(tmp_path, stores):
    validation, test = stores
    selected = ensemble(validation=validation, greedy=3, output_file=str(tmp_path / "sel.csv"))
    assert selected["output_file"] is None and selected["recipe"]
    applied = ensemble(
        recipe=selected["recipe"],
        test=test,
        validation=validation,
        output_file=str(tmp_path / "sel.csv"),
    )
    assert applied["validation_gap"] == pytest.approx(selected["validation_gap"], abs=1e-6)
    with pytest.warns(UserWarning, match="Kaggle CSV"):
        written = load_input(str(tmp_path / "sel.csv"))
    assert written.num_videos == 50 and np.all(written.classes[:, 0] >= 0)


def test_the_submission_recipe_and_plot_are_one_set(tmp_path, stores):
    from y8m.fileio import check_files

    validation, test = stores
    output = tmp_path / "submission.csv"
    ensemble(validation=validation, test=test, greedy=2, output_file=str(output))
    manifest = tmp_path / "submission.manifest.json"
    listed = check_files(str(manifest))
    assert sorted(listed) == ["submission.csv", "submission.gap.png", "submission.recipe.json"]
    # A recipe whose submission was replaced behind its back is not replayed.
    output.write_text("VideoId,LabelConfidencePairs\nx,1 0.5\n")
    with pytest.raises(UsageError, match="is not the file .*manifest.json lists"):
        ensemble(recipe=str(tmp_path / "submission.recipe.json"), output_file=str(tmp_path / "r"))


def test_a_kill_between_renames_never_pairs_new_submission_with_old_recipe(
    tmp_path, stores, monkeypatch
):
    import os

    from y8m.fileio import check_files

    validation, test = stores
    output = tmp_path / "submission.csv"
    recipe = tmp_path / "submission.recipe.json"
    first = ensemble(validation=validation, test=test, greedy=1, output_file=str(output))
    old_recipe = recipe.read_bytes()

    # The second run is killed on its second rename onto the set: the new CSV is in place,
    # the recipe is still the first run's.
    finals = {str(output), str(recipe), str(tmp_path / "submission.gap.png")}
    real_replace, renames = os.replace, []

    def replace(src, dst):
        if os.fspath(dst) in finals:
            renames.append(dst)
            if len(renames) == 2:
                raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        ensemble(validation=validation, test=test, method="mean", output_file=str(output))
    monkeypatch.undo()
    assert recipe.read_bytes() == old_recipe  # the state the kill left ...
    half_new = output.read_bytes()

    # ... is never read as a set: the next reader finishes the commit first.
    replayed = ensemble(recipe=str(recipe), output_file=str(tmp_path / "again.csv"))
    assert json.loads(recipe.read_text())["method"] == "mean"
    assert replayed["weights"] != first["weights"]
    assert (tmp_path / "again.csv").read_bytes() == half_new == output.read_bytes()
    listed = check_files(str(tmp_path / "submission.manifest.json"))
    # The mean run has no plot: the first run's (left by the kill) is no longer in the set.
    assert sorted(listed) == ["submission.csv", "submission.recipe.json"]
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp")]


def test_a_replay_writes_its_recipe_and_plot_beside_its_submission(tmp_path, stores):
    from y8m.fileio import check_files

    validation, test = stores
    ensemble(validation=validation, test=test, greedy=2, output_file=str(tmp_path / "a.csv"))
    ensemble(recipe=str(tmp_path / "a.recipe.json"), output_file=str(tmp_path / "a.csv"))
    assert sorted(check_files(str(tmp_path / "a.manifest.json"))) == [
        "a.csv",
        "a.gap.png",
        "a.recipe.json",
    ]
    ensemble(recipe=str(tmp_path / "a.recipe.json"), output_file=str(tmp_path / "b.csv"))
    assert (tmp_path / "b.recipe.json").read_bytes() == (tmp_path / "a.recipe.json").read_bytes()
    assert sorted(check_files(str(tmp_path / "b.manifest.json")))[0] == "b.csv"


@pytest.mark.parametrize(
    "flags, message",
    [
        ({"greedy": 0}, "--greedy must be a positive integer, got 0"),
        ({"greedy": "abc"}, "--greedy must be an integer, got 'abc'"),
        ({"greedy": 2.5}, "--greedy must be an integer"),
        ({"top_k": 0}, "--top_k must be a positive integer, got 0"),
        ({"top_k": 10**9}, "--top_k must be at most 3862"),
        ({"version": "abc"}, "--version must be an integer"),
        ({"version": 2016}, "--version must be one of 2017, 2018, 2019"),
        ({"method": "weighted", "weights": "model_0=nan"}, "--weights must be a number"),
        ({"method": "weighted", "weights": "model_0=-1"}, "--weights must be at least 0"),
    ],
)
def test_numeric_flags_are_checked_at_the_edge(tmp_path, stores, flags, message):
    validation, test = stores
    with pytest.raises(UsageError, match="^" + re.escape(message)):
        ensemble(validation=validation, test=test, output_file=str(tmp_path / "x.csv"), **flags)
    assert not (tmp_path / "x.csv").exists()


def test_numeric_flag_through_the_cli_is_one_error_line(tmp_path, stores, capsys):
    from y8m.cli import main

    validation, _ = stores
    with pytest.raises(SystemExit) as exit_info:
        main(["ensemble", f"--validation={validation}", "--greedy=abc"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: --greedy must be an integer")


def test_output_store_holds_the_submitted_ensemble(tmp_path, stores):
    from y8m.predictions import load_predictions

    validation, test = stores
    output = tmp_path / "out" / "submission.csv"
    result = ensemble(
        validation=validation,
        test=test,
        greedy=3,
        output_file=str(output),
        output_store=str(tmp_path / "out" / "teacher"),
    )
    assert result["output_store"] == str(tmp_path / "out" / "teacher.parquet")
    store = load_predictions(result["output_store"])
    assert store.model_name == "ensemble" and store.num_videos == 50
    assert store.metadata["ensemble_weights"] == result["weights"]
    submitted = load_input(str(output))
    order = np.argsort(store.ids)
    assert list(store.ids[order]) == sorted(submitted.ids)
    # The submission is the store's top 20, same classes per video.
    by_id = dict(zip(submitted.ids, submitted.classes))
    for video, classes in zip(store.ids, store.classes):
        kept = [c for c in by_id[video] if c >= 0]
        assert list(classes[: len(kept)]) == kept


def test_output_store_needs_test_predictions(tmp_path, stores):
    validation, _ = stores
    with pytest.raises(UsageError, match="--output_store writes the ensemble of --test"):
        ensemble(validation=validation, output_store=str(tmp_path / "t"))


def test_gain_intervals_in_the_table_recipe_and_plot(tmp_path, stores, capsys):
    validation, _ = stores
    result = ensemble(validation=validation, greedy=3, output_file=str(tmp_path / "s.csv"))
    printed = capsys.readouterr().out
    assert "gain [95% interval]" in printed
    assert re.search(r"\n   2  model_\d .* [+-]0\.\d{4} \[[+-]0\.\d{4}, [+-]0\.\d{4}\]", printed)
    recipe = json.loads((tmp_path / "s.recipe.json").read_text())
    assert recipe["history"] == result["steps"] and recipe["stopped"] is None
    assert recipe["history"][0]["gain"] is None and recipe["history"][1]["gain_low"] is not None
    assert recipe["options"] == {
        "greedy": 3, "replace": True, "bootstrap": 1000, "seed": 0, "min_gain": None,
    }  # fmt: skip
    assert (tmp_path / "s.gap.png").read_bytes().startswith(b"\x89PNG")
    # Without resamples the gains stay, the intervals go, the picks and GAPs are the same.
    plain = ensemble(
        validation=validation, greedy=3, bootstrap=0, output_file=str(tmp_path / "p.csv")
    )
    assert [h["model"] for h in plain["steps"]] == [h["model"] for h in result["steps"]]
    assert [h["gap"] for h in plain["steps"]] == [h["gap"] for h in result["steps"]]
    assert all(h["gain_low"] is None for h in plain["steps"])
    assert "gain [95% interval]" not in capsys.readouterr().out


def test_min_gain_significant_stops_and_says_so(tmp_path, capsys):
    from tests.ensembles.test_greedy import complementary_case

    validation = write_stores(tmp_path / "val", complementary_case(), "validate")
    result = ensemble(
        validation=validation, greedy=3, no_replacement=True, min_gain="significant",
        output_file=str(tmp_path / "s.csv"),
    )  # fmt: skip
    assert [h["model"] for h in result["steps"]] == ["strong", "complement"]
    assert result["stopped"]["model"] == "noise" and result["stopped"]["step"] == 3
    printed = capsys.readouterr().out
    assert re.search(
        r"\n   3  noise +- +0\.\d{4}  -0\.\d{4} \[.*\]  not taken: significantly ", printed
    )
    assert "selection stopped before step 3" in printed
    recipe = json.loads((tmp_path / "s.recipe.json").read_text())
    assert recipe["stopped"]["model"] == "noise" and recipe["options"]["min_gain"] == "significant"
    assert len(recipe["history"]) == 2


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"min_gain": "big"}, "--min_gain must be 'significant' or a number, got 'big'"),
        ({"min_gain": "significant", "bootstrap": 0}, "--min_gain=significant needs --bootstrap"),
        ({"bootstrap": -5}, "--bootstrap must be at least 0"),
        ({"min_gain": 0.001, "method": "mean"}, "--min_gain stops greedy selection"),
    ],
)
def test_gain_flags_are_checked_at_the_edge(tmp_path, stores, flags, message):
    validation, test = stores
    with pytest.raises(UsageError, match="^" + re.escape(message)):
        ensemble(validation=validation, test=test, output_file=str(tmp_path / "x.csv"), **flags)


def test_min_gain_through_the_cli(tmp_path, stores, capsys):
    from y8m.cli import main

    validation, _ = stores
    output = str(tmp_path / "cli.csv")
    main(["ensemble", f"--validation={validation}", "--greedy=3", "--min_gain=significant",
          "--bootstrap=200", f"--output_file={output}"])  # fmt: skip
    recipe = json.loads((tmp_path / "cli.recipe.json").read_text())
    assert recipe["options"]["min_gain"] == "significant" and recipe["options"]["bootstrap"] == 200
    assert "gain [95% interval]" in capsys.readouterr().out
