"""`y8m ensemble`: select and weight models on validation predictions, write a Kaggle submission."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from ensembles.averaging import rank_average, weighted_average
from ensembles.greedy import GreedyEnsembler
from ensembles.recipe import (
    METHODS,
    format_table,
    load_recipe,
    make_recipe,
    plot_history,
    save_recipe,
)
from y8m.data import specs
from y8m.errors import UsageError
from y8m.fileio import expand_pattern
from y8m.predictions import METADATA_KEY, Predictions, load_predictions

__all__ = ["Commands", "ensemble"]


def ensemble(
    validation: str | None = None,
    test: str | None = None,
    greedy: int = 7,
    no_replacement: bool = False,
    method: str = "greedy",
    weights: str | dict | None = None,
    recipe: str | None = None,
    output_file: str = "submission.csv",
    top_k: int = specs.SUBMISSION_TOP_K,
    version: int = specs.DEFAULT_VERSION,
    output_dir: str | None = None,
    gzip: bool = False,
) -> dict:
    """Ensemble models' predictions: greedy GAP selection on validation, then a Kaggle submission.

    Args:
        validation: glob of validation prediction stores (with labels) to select and score on.
        test: glob of the same models' test predictions; the submission is made from these.
        greedy: greedy selection steps (models picked, repeats included).
        no_replacement: pick each model at most once (default: a model can gain weight).
        method: greedy, mean (plain average), weighted (needs --weights) or rank (rank average).
        weights: model weights for weighted/rank, as "name=0.6,other=0.4" or a JSON object.
        recipe: replay a .recipe.json written by an earlier run (same models and weights).
        output_file: the submission CSV (a .gz name is compressed).
        top_k: k of GAP@k, and label/score pairs per video in the submission.
        version: Kaggle format year, 2018 or 2017.
        output_dir: where the recipe JSON and the GAP plot go (default: beside output_file).
        gzip: compress the submission (adds .gz to output_file when missing).

    Returns:
        method, weights, validation_gap, best_single_model, best_single_gap, steps,
        output_file, recipe, plot, num_test_videos.
    """
    release = specs.release(version)
    if release.has_segments:
        raise UsageError(
            f"--version={version} is the segment task: ensembles write video-level submissions "
            "(--version=2018 or 2017)"
        )
    top_k, greedy = _positive_int(top_k, "top_k"), _positive_int(greedy, "greedy")
    replay = recipe is not None
    if replay:
        loaded = load_recipe(recipe)
        method, weight_map = loaded["method"], dict(loaded["weights"])
        top_k = int(loaded.get("top_k", top_k))
        test = test or loaded.get("test")
    else:
        if method not in METHODS:
            raise UsageError(f"unknown --method={method!r}: use one of {', '.join(METHODS)}")
        weight_map = _parse_weights(weights) if weights is not None else None
        if method == "weighted" and not weight_map:
            raise UsageError("--method=weighted needs --weights, e.g. --weights='a=0.7,b=0.3'")
        if weight_map and method in ("greedy", "mean"):
            raise UsageError(f"--weights goes with --method=weighted or rank, not {method}")
    if not validation and not test:
        raise UsageError("pass --validation=GLOB and/or --test=GLOB of prediction files")
    if method == "greedy" and not replay and not validation:
        raise UsageError("greedy selection needs --validation=GLOB (stores with labels)")

    validation_files = _index_files(validation, "validation") if validation else {}
    test_files = _index_files(test, "test") if test else {}
    if validation_files and test_files and not replay:
        _check_same_models(validation_files, test_files)

    def load(files: Mapping[str, str], names, what: str) -> dict[str, Predictions]:
        missing = [n for n in names if n not in files]
        if missing:
            raise UsageError(
                f"model {missing[0]!r} has no {what} predictions among "
                f"{', '.join(sorted(files)) or 'none'}: pass its {what} file too"
            )
        out = {n: load_predictions(files[n], num_classes=release.num_classes) for n in names}
        for name, p in out.items():
            _check_classes(p, name, release)
        return out

    history, best_step, single_gaps, validation_gap = None, None, None, None
    if method == "greedy" and not replay:
        est = GreedyEnsembler(
            n_iter=greedy, replace=not no_replacement, top_k=top_k, progress=True
        ).fit(load(validation_files, sorted(validation_files), "validation"))
        weight_map, history, best_step = est.weights_, est.history_, est.best_step_
        validation_gap, single_gaps = est.validation_gap_, est.single_gaps_
    else:
        if weight_map is None:
            names = sorted(validation_files or test_files)
            weight_map = dict.fromkeys(names, 1.0)
        weight_map = _normalise(weight_map)
        if validation_files:
            val = load(validation_files, list(weight_map), "validation")
            combined = _combine(val, weight_map, method, top_k)
            if combined.labels is not None:
                validation_gap = combined.gap(top_k)
                single_gaps = {n: p.gap(top_k) for n, p in val.items() if p.labels is not None}

    output_path = None
    num_test_videos = 0
    if test_files:
        combined = _combine(load(test_files, list(weight_map), "test"), weight_map, method, top_k)
        output_path = (
            output_file + ".gz" if gzip and not output_file.endswith(".gz") else output_file
        )
        _write_submission(output_path, combined, version=release.version, top_k=top_k, gzip=gzip)
        num_test_videos = combined.num_videos

    stem = os.path.basename(output_file)
    for suffix in (".gz", ".csv"):
        stem = stem[: -len(suffix)] if stem.endswith(suffix) else stem
    out_dir = output_dir or os.path.dirname(os.path.abspath(output_file))
    recipe_path = plot_path = None
    if not replay:
        recipe_path = save_recipe(
            os.path.join(out_dir, f"{stem}.recipe.json"),
            make_recipe(
                method=method,
                weights=weight_map,
                top_k=top_k,
                version=release.version,
                validation=validation,
                test=test,
                history=history,
                best_step=best_step,
                validation_gap=validation_gap,
                single_gaps=single_gaps,
                options={"greedy": greedy, "replace": not no_replacement},
            ),
        )
        if history:
            plot_path = plot_history(
                os.path.join(out_dir, f"{stem}.gap.png"), history, single_gaps, top_k
            )

    best_single = max(single_gaps, key=single_gaps.get) if single_gaps else None
    _print_summary(
        method,
        replay,
        history,
        best_step,
        weight_map,
        validation_gap,
        best_single,
        single_gaps,
        output_path,
        num_test_videos,
        recipe_path,
        plot_path,
        top_k,
    )
    return {
        "method": method,
        "weights": weight_map,
        "validation_gap": validation_gap,
        "best_single_model": best_single,
        "best_single_gap": single_gaps[best_single] if best_single else None,
        "steps": history or [],
        "output_file": output_path,
        "recipe": recipe_path,
        "plot": plot_path,
        "num_test_videos": num_test_videos,
    }


class Commands:
    """`y8m ensemble` as a method, for the CLI's command table."""

    ensemble = staticmethod(ensemble)


def _positive_int(value, flag: str) -> int:
    try:
        number = int(value)
        whole = float(value) == number
    except (TypeError, ValueError):
        raise UsageError(f"--{flag} must be a positive integer, got {value!r}") from None
    if number < 1 or not whole or isinstance(value, bool):
        raise UsageError(f"--{flag} must be a positive integer, got {value!r}")
    return number


def _parse_weights(weights) -> dict[str, float]:
    """`{"a": 0.6}`, a JSON object string or "a=0.6,b=0.4" -> dict."""
    if isinstance(weights, str):
        text = weights.strip()
        if text.startswith("{"):
            try:
                weights = json.loads(text)
            except json.JSONDecodeError as e:
                raise UsageError(f"--weights is not valid JSON ({e})") from None
        else:
            pairs = [p for p in text.split(",") if p.strip()]
            if not all("=" in p for p in pairs):
                raise UsageError(f"--weights must look like 'a=0.6,b=0.4', got {text!r}")
            weights = dict(p.split("=", 1) for p in pairs)
    if not isinstance(weights, Mapping) or not weights:
        raise UsageError(f"--weights must name models and weights, got {weights!r}")
    try:
        return {str(k).strip(): float(v) for k, v in weights.items()}
    except (TypeError, ValueError):
        raise UsageError(f"--weights values must be numbers, got {weights!r}") from None


def _normalise(weights: Mapping[str, float]) -> dict[str, float]:
    total = sum(weights.values())
    if any(w < 0 for w in weights.values()) or total <= 0:
        raise UsageError(f"weights must be >= 0 with a positive sum, got {dict(weights)}")
    return {n: w / total for n, w in weights.items() if w > 0}


def _model_name(path: str) -> str:
    """The name a file is matched by: the store's model_name, or a CSV's file stem."""
    name = os.path.basename(path)
    if name.lower().endswith((".csv", ".csv.gz")):
        for suffix in (".gz", ".csv"):
            name = name[: -len(suffix)] if name.lower().endswith(suffix) else name
        return name
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        raw = (pq.read_schema(path).metadata or {}).get(METADATA_KEY)
    except (pa.ArrowInvalid, OSError):
        raw = None
    if raw is None:
        raise UsageError(
            f"{path} is neither a y8m prediction store nor a Kaggle CSV: pass files from "
            "`y8m predict` (.parquet) or submissions (.csv)"
        )
    return str(json.loads(raw).get("model_name") or os.path.splitext(os.path.basename(path))[0])


def _index_files(pattern: str, what: str) -> dict[str, str]:
    """model name -> file for every file matching `pattern`; a UsageError on duplicate names."""
    files: dict[str, str] = {}
    for path in expand_pattern(pattern, f"{what} prediction files"):
        name = _model_name(path)
        if name in files:
            raise UsageError(
                f"{what} files {files[name]} and {path} are both model {name!r}: give each "
                "model one file per split"
            )
        files[name] = path
    return files


def _check_same_models(validation: Mapping[str, str], test: Mapping[str, str]) -> None:
    for name in sorted(set(validation) ^ set(test)):
        side, other = ("validation", "test") if name in validation else ("test", "validation")
        raise UsageError(
            f"model {name!r} has {side} predictions ({(validation | test)[name]}) but no {other} "
            f"predictions: models are matched by name, give every model both"
        )


def _check_classes(p: Predictions, name: str, release: specs.Release) -> None:
    largest = int(p.classes.max(initial=-1))
    if largest >= release.num_classes:
        raise UsageError(
            f"model {name!r} predicts class {largest}, beyond the {release.num_classes} classes "
            f"of the {release.version} release: pass the matching --version"
        )


def _combine(
    predictions: dict[str, Predictions], weights: dict[str, float], method: str, top_k: int
) -> Predictions:
    # Keep the inputs' K, and at least GAP's k: the union of lists can fill more than one K.
    keep = max([top_k, *(p.top_k for p in predictions.values())])
    if method == "rank":
        return rank_average(predictions, weights, keep)
    return weighted_average(predictions, weights, keep, method=method)


def _write_submission(path: str, p: Predictions, *, version: int, top_k: int, gzip: bool) -> int:
    from submissions.formats import write_video_submission

    return write_video_submission(
        path, p.ids, p.classes, p.scores, version=version, top_k=top_k, gzip=gzip or None
    )


def _print_summary(
    method,
    replay,
    history,
    best_step,
    weights,
    validation_gap,
    best_single,
    single_gaps,
    output_path,
    num_test_videos,
    recipe_path,
    plot_path,
    top_k,
):
    if history:
        print(format_table(history, best_step))
        if best_step != len(history):
            print(f"(* the ensemble uses the first {best_step} steps: the best validation GAP)")
    title = "replayed recipe" if replay else method
    print(f"{title}: " + ", ".join(f"{n} {w:.3f}" for n, w in weights.items()))
    if validation_gap is not None:
        line = f"validation GAP@{top_k}: {validation_gap:.5f}"
        if best_single:
            line += f" (best single model {best_single}: {single_gaps[best_single]:.5f})"
        print(line)
    if output_path:
        print(f"submission: {output_path} ({num_test_videos} videos)")
    for label, path in (("recipe", recipe_path), ("plot", plot_path)):
        if path:
            print(f"{label}: {path}")
