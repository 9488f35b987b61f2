"""`y8m ensemble`: select and weight models on validation predictions, write a Kaggle submission."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Mapping

from ensembles.averaging import rank_average, weighted_average
from ensembles.greedy import GreedyEnsembler
from ensembles.inputs import check_same_models, index_files, load_models
from ensembles.recipe import (
    MB,
    METHODS,
    format_table,
    load_recipe,
    make_recipe,
    plot_history,
)
from y8m.data import specs
from y8m.errors import UsageError, choice, integer, number
from y8m.fileio import atomic_files, check_files, recover_files
from y8m.predictions import Predictions
from y8m.significance import DEFAULT_RESAMPLES

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
    segments: bool = False,
    segment_ratings=None,
    segment_max_pred: int = specs.SEGMENT_MAX_PRED,
    output_store: str | None = None,
    max_mb: float | None = None,
    bootstrap: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    min_gain: str | float | None = None,
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
        segments: 2019: ensemble `*.segments.parquet` stores by segment mAP (docs/ensembles.md).
        segment_ratings: with --segments, the validation ratings (CSV or DataFrame).
        segment_max_pred: with --segments, segments kept per class in the submission.
        output_store: also write the ensemble of --test as a prediction store (top --top_k
            classes per video): a teacher for `y8m train --distill_from`.
        max_mb: greedy selection under a size budget in MB (10**6 bytes): each model's size
            is the `model_bytes` its validation store records (`y8m predict --precision`),
            paid once; stores of one run at several precisions exclude each other.
        bootstrap: greedy: resamples of the validation videos for the 95% interval of each
            step's gain (paired: every step on the same resamples); 0 leaves them out. The
            intervals never change a pick or a GAP.
        seed: the resamples' seed.
        min_gain: greedy: "significant" stops before a step whose gain interval reaches 0;
            a number stops before a step whose gain is below it (the step is not taken).

    Returns:
        method, weights, validation_gap, best_single_model, best_single_gap, steps,
        output_file, recipe, plot, num_test_videos, output_store, total_mb, max_mb, stopped
        (the step --min_gain refused, or None).
    """
    if output_store and not test:
        raise UsageError("--output_store writes the ensemble of --test: pass --test=GLOB")
    if segments:
        if output_store:
            raise UsageError("--output_store is for video-level ensembles, not --segments")
        flags = dict(greedy=greedy, replace=not no_replacement, method=method, weights=weights)
        flags.update(ratings=segment_ratings, max_per_class=segment_max_pred, gzip=gzip)
        return _segment_ensemble(validation, test, output_file, output_dir, recipe, flags)
    release = _video_release(version)
    top_k = _positive_int(top_k, "top_k", maximum=release.num_classes)
    greedy = _positive_int(greedy, "greedy")
    replay = recipe is not None
    method, weight_map, top_k, test, copies = _choose_method(method, weights, recipe, top_k, test)
    if max_mb is not None:
        if method != "greedy" or replay:
            raise UsageError("--max_mb budgets greedy selection: drop it with --recipe or --method")
        max_mb = number("max_mb", max_mb, above=0)
    gains = _gain_flags(bootstrap, seed, min_gain, method == "greedy" and not replay)
    validation_files, test_files = _read_inputs(validation, test, method, replay)
    if method == "greedy" and not replay:
        fit = _fit_greedy(
            validation_files, greedy, not no_replacement, top_k, release, max_mb, gains
        )
    else:
        fit = _fixed_weights(weight_map, validation_files, test_files, method, top_k, release)
    combined = _combine_test(test_files, fit.weights, method, top_k, release)
    output_file = str(output_file)
    output_path = None
    if combined is not None:
        output_path = (
            output_file + ".gz" if gzip and not output_file.endswith(".gz") else output_file
        )
    if not replay:
        options = {"greedy": greedy, "replace": not no_replacement}
        if method == "greedy":
            options.update(gains)
        copies = {"recipe": _recipe_text(fit, method, top_k, release, validation, test, options)}
    recipe_path, plot_path = _write_set(
        fit, combined, copies, output_path, output_file, output_dir, release, top_k, gzip, replay
    )
    if output_store and combined is not None:
        output_store = _write_store(combined, output_store, release, fit.weights)
    num_test_videos = combined.num_videos if combined is not None else 0
    best_single = fit.best_single
    _print_summary(fit, method, replay, output_path, num_test_videos, recipe_path, plot_path, top_k)
    return {
        "method": method,
        "weights": fit.weights,
        "validation_gap": fit.validation_gap,
        "best_single_model": best_single,
        "best_single_gap": fit.single_gaps[best_single] if best_single else None,
        "steps": fit.history or [],
        "output_file": output_path,
        "recipe": recipe_path,
        "plot": plot_path,
        "num_test_videos": num_test_videos,
        "output_store": output_store or None,
        "total_mb": fit.total_mb,
        "max_mb": max_mb,
        "stopped": fit.stopped,
    }


def _gain_flags(bootstrap, seed, min_gain, greedy: bool) -> dict:
    """`bootstrap`, `seed` and `min_gain` checked at the edge (min_gain: None,
    "significant" or a float)."""
    bootstrap = integer("bootstrap", bootstrap, minimum=0)
    seed = integer("seed", seed, minimum=0)
    if min_gain is not None:
        if not greedy:
            raise UsageError("--min_gain stops greedy selection: drop it with --recipe or --method")
        if isinstance(min_gain, str) and min_gain.strip().lower() == "significant":
            min_gain = "significant"
            if not bootstrap:
                raise UsageError("--min_gain=significant needs --bootstrap of at least 1")
        else:
            try:
                min_gain = number("min_gain", min_gain)
            except UsageError:
                raise UsageError(
                    f"--min_gain must be 'significant' or a number, got {min_gain!r}"
                ) from None
    return {"bootstrap": bootstrap, "seed": seed, "min_gain": min_gain}


def _write_store(combined: Predictions, path: str, release: specs.Release, weights) -> str:
    """The ensemble's predictions as a prediction store (written atomically); its path."""
    from y8m.predictions import PredictionWriter

    split = str(combined.metadata.get("split") or "test")
    with PredictionWriter(
        path,
        model_name="ensemble",
        split=split,
        num_classes=release.num_classes,
        top_k=combined.top_k,
        extra_metadata={"ensemble_weights": {k: float(v) for k, v in weights.items()}},
    ) as writer:
        writer.add_topk(combined.ids, combined.classes, combined.scores, combined.labels)
    print(
        f"wrote {writer.path}: the ensemble's top {combined.top_k} for {combined.num_videos} videos"
    )
    return writer.path


@dataclasses.dataclass
class _Fit:
    """The chosen weights and, where validation had labels, what they scored."""

    weights: dict[str, float]
    history: list[dict] | None = None
    best_step: int | None = None
    validation_gap: float | None = None
    single_gaps: dict[str, float] | None = None
    sizes: dict[str, dict] | None = None  # model -> precision, bytes (stores that record them)
    max_mb: float | None = None
    stopped: dict | None = None  # the greedy step --min_gain refused

    @property
    def best_single(self) -> str | None:
        return max(self.single_gaps, key=self.single_gaps.get) if self.single_gaps else None

    @property
    def total_mb(self) -> float | None:
        """The MB of the chosen models, when every one's size is known."""
        if not self.sizes or any(n not in self.sizes for n in self.weights):
            return None
        return sum(self.sizes[n]["bytes"] for n in self.weights) / MB


def _video_release(version) -> specs.Release:
    release = specs.release(choice("version", integer("version", version), list(specs.RELEASES)))
    if release.has_segments:
        raise UsageError(
            f"--version={version} is the segment task: ensembles write video-level submissions "
            "(--version=2018 or 2017)"
        )
    return release


def _choose_method(method, weights, recipe, top_k: int, test):
    """(method, weights or None, top_k, test, copies) from the flags, or from the recipe to
    replay (its set checked against its manifest first; copies: its recipe and plot bytes)."""
    if recipe is not None:
        recipe = str(recipe)
        plot = check_recipe_set(recipe)
        loaded = load_recipe(recipe)
        # The replay's set gets the recipe (and plot) it replayed, as they are now.
        copies = {}
        for kind, path in (("recipe", recipe), ("gap", plot)):
            if path is not None:
                with open(path, "rb") as f:
                    copies[kind] = f.read()
        top_k = integer("top_k", loaded.get("top_k", top_k), minimum=1)
        test = test or loaded.get("test")
        return loaded["method"], dict(loaded["weights"]), top_k, test, copies
    if method not in METHODS:
        raise UsageError(f"unknown --method={method!r}: use one of {', '.join(METHODS)}")
    weight_map = _parse_weights(weights) if weights is not None else None
    if method == "weighted" and not weight_map:
        raise UsageError("--method=weighted needs --weights, e.g. --weights='a=0.7,b=0.3'")
    if weight_map and method in ("greedy", "mean"):
        raise UsageError(f"--weights goes with --method=weighted or rank, not {method}")
    return method, weight_map, top_k, test, None


def _read_inputs(validation, test, method: str, replay: bool):
    """model name -> file for each split given; checks both splits name the same models."""
    if not validation and not test:
        raise UsageError("pass --validation=GLOB and/or --test=GLOB of prediction files")
    if method == "greedy" and not replay and not validation:
        raise UsageError("greedy selection needs --validation=GLOB (stores with labels)")
    validation_files = index_files(validation, "validation") if validation else {}
    test_files = index_files(test, "test") if test else {}
    if validation_files and test_files and not replay:
        check_same_models(validation_files, test_files)
    return validation_files, test_files


def _fit_greedy(validation_files, greedy: int, replace: bool, top_k: int, release, max_mb, gains):
    """Greedy GAP selection on every validation model (within MAX_MB when given), with the
    GAINS settings (bootstrap, seed, min_gain)."""
    validation = load_models(validation_files, sorted(validation_files), "validation", release)
    sizes, groups = _sizes(validation, validation_files, max_mb)
    costs = {n: s["bytes"] for n, s in sizes.items()} if len(sizes) == len(validation) else None
    est = GreedyEnsembler(
        n_iter=greedy,
        replace=replace,
        top_k=top_k,
        progress=True,
        max_bytes=None if max_mb is None else max_mb * MB,
        **gains,
    )
    est.fit(validation, costs=costs, groups=groups)
    fit = _Fit(est.weights_, est.history_, est.best_step_, est.validation_gap_, est.single_gaps_)
    fit.sizes, fit.max_mb, fit.stopped = sizes, max_mb, est.stopped_
    return fit


def _sizes(validation: Mapping[str, Predictions], files: Mapping[str, str], max_mb):
    """(model -> {precision, bytes} for the stores that record `model_bytes`, model -> group).

    A store named `<run>@<precision>` that records that precision belongs to its run's group
    (one precision per run); any other store is its own group.
    """
    sizes, groups = {}, {}
    for name, p in validation.items():
        meta = p.metadata
        if meta.get("model_bytes") is not None:
            sizes[name] = {"precision": meta.get("precision"), "bytes": int(meta["model_bytes"])}
        elif max_mb is not None:
            raise UsageError(
                f"{files[name]} records no model_bytes: predict it again with this y8m "
                "(`y8m predict --precision`) to use --max_mb"
            )
        precision = meta.get("precision")
        if precision and name.endswith(f"@{precision}"):
            groups[name] = meta.get("train_dir") or meta.get("run") or name[: -len(precision) - 1]
    if max_mb is not None:
        smallest = min(sizes, key=lambda n: sizes[n]["bytes"])
        if sizes[smallest]["bytes"] > max_mb * MB:
            raise UsageError(
                f"--max_mb={max_mb:g} fits no model: the smallest, {smallest!r}, is "
                f"{sizes[smallest]['bytes'] / MB:.1f} MB"
            )
    return sizes, groups


def _fixed_weights(weight_map, validation_files, test_files, method, top_k, release) -> _Fit:
    """Given (or equal) weights, normalised, and their validation GAPs where there are labels."""
    if weight_map is None:
        weight_map = dict.fromkeys(sorted(validation_files or test_files), 1.0)
    fit = _Fit(_normalise(weight_map))
    if validation_files:
        val = load_models(validation_files, list(fit.weights), "validation", release)
        combined = _combine(val, fit.weights, method, top_k)
        if combined.labels is not None:
            fit.validation_gap = combined.gap(top_k)
            fit.single_gaps = {n: p.gap(top_k) for n, p in val.items() if p.labels is not None}
    return fit


def _combine_test(test_files, weights, method, top_k, release) -> Predictions | None:
    """The ensemble of the test predictions; None without test files."""
    if not test_files:
        return None
    test = load_models(test_files, list(weights), "test", release)
    return _combine(test, weights, method, top_k)


def _recipe_text(fit: _Fit, method, top_k, release, validation, test, options) -> bytes:
    recipe = make_recipe(
        method=method,
        weights=fit.weights,
        top_k=top_k,
        version=release.version,
        validation=validation,
        test=test,
        history=fit.history,
        best_step=fit.best_step,
        validation_gap=fit.validation_gap,
        single_gaps=fit.single_gaps,
        options=options,
        sizes=fit.sizes,
        max_mb=fit.max_mb,
        stopped=fit.stopped,
    )
    return (json.dumps(recipe, indent=2, sort_keys=False) + "\n").encode("utf-8")


def set_paths(output_file: str, output_dir: str | None = None) -> dict[str, str]:
    """The files of one ensemble's set, named after output_file: `recipe`, `plot` and the
    `manifest` that lists them, in output_dir or beside output_file."""
    stem = os.path.basename(output_file)
    for suffix in (".gz", ".csv"):
        stem = stem[: -len(suffix)] if stem.endswith(suffix) else stem
    out_dir = output_dir or os.path.dirname(os.path.abspath(output_file))
    return {
        kind: os.path.join(out_dir, f"{stem}.{kind}.{ext}")
        for kind, ext in (("recipe", "json"), ("gap", "png"), ("manifest", "json"))
    }


def check_recipe_set(recipe: str) -> str | None:
    """Checks a recipe against the manifest of its set (when it has one) before a replay:
    a recipe beside a submission of another run, or one a kill left half replaced, is refused
    (an interrupted commit is finished first). Returns the set's GAP plot, if it has one."""
    name = os.path.basename(recipe)
    if not name.endswith(".recipe.json"):
        return None
    stem = name[: -len(".recipe.json")]
    directory = os.path.dirname(os.path.abspath(recipe))
    manifest = os.path.join(directory, f"{stem}.manifest.json")
    if not (os.path.exists(manifest) or os.path.exists(manifest + ".pending")):
        return None  # written by hand or by an older y8m: nothing to check against
    entries = check_files(manifest)
    if name not in entries:
        raise UsageError(
            f"{recipe} is not in the set {manifest} lists (left from another run): "
            "run the ensemble again"
        )
    return os.path.join(directory, f"{stem}.gap.png") if f"{stem}.gap.png" in entries else None


def _write_set(
    fit: _Fit, combined, copies, output_path, output_file, output_dir, release, top_k, gzip, replay
):  # fmt: skip
    """Writes the submission, the recipe and the GAP plot as one unit (`atomic_files`), with
    a manifest beside the recipe; returns (recipe path, plot path or None).

    A replay writes the recipe (and plot) it replayed beside its submission, and nothing when
    it has no test predictions. Files of the previous set under the same name that this set
    has not (an old plot) are removed once it is written.
    """
    if replay and output_path is None:
        return None, None
    paths = set_paths(output_file, output_dir)
    recipe_path, manifest = paths["recipe"], paths["manifest"]
    plot_path = paths["gap"] if fit.history or "gap" in copies else None
    members = [p for p in (output_path, recipe_path, plot_path) if p]
    previous = _members(manifest)
    with atomic_files(members, manifest) as tmp:
        if output_path is not None:
            _write_submission(
                tmp[output_path], combined, version=release.version, top_k=top_k, gzip=gzip
            )
        with open(tmp[recipe_path], "wb") as f:
            f.write(copies["recipe"])
        if "gap" in copies:
            with open(tmp[plot_path], "wb") as f:
                f.write(copies["gap"])
        elif plot_path is not None:
            plot_history(
                tmp[plot_path], fit.history, fit.single_gaps, top_k, fit.max_mb, fit.stopped
            )
    kept = {os.path.abspath(p) for p in members}
    for stale in previous - kept:
        with contextlib.suppress(OSError):
            os.remove(stale)
    return recipe_path, plot_path


def _members(manifest: str) -> set[str]:
    """Absolute paths of the files MANIFEST lists; empty without one."""
    try:
        recover_files(manifest)
        with open(manifest) as f:
            names = json.load(f)["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return set()
    base = os.path.dirname(os.path.abspath(manifest))
    return {os.path.abspath(os.path.join(base, n)) for n in names}


def _segment_ensemble(validation, test, output_file, output_dir, recipe, flags) -> dict:
    """`--segments`: the segment-mAP ensemble, its `Class,Segments` CSV and recipe as one set."""
    from ensembles.segments import recipe_text, segment_ensemble
    from submissions.formats import write_segment_submission

    if recipe is not None:
        raise UsageError("--recipe does not replay --segments ensembles: pass --weights instead")
    max_per_class = _positive_int(flags.pop("max_per_class"), "segment_max_pred")
    greedy, gzip = _positive_int(flags.pop("greedy"), "greedy"), flags.pop("gzip")
    if flags["weights"] is not None:
        flags["weights"] = _parse_weights(flags["weights"])
    result = segment_ensemble(validation, test, greedy=greedy, max_per_class=max_per_class, **flags)
    output_file = str(output_file)
    output_path = None
    if result["submission"] is not None:
        output_path = (
            output_file + ".gz" if gzip and not output_file.endswith(".gz") else output_file
        )
    paths = set_paths(output_file, output_dir)
    options = {"greedy": greedy, "replace": flags["replace"]}
    text = recipe_text(result, flags["method"], max_per_class, validation, test, options)
    members = [p for p in (output_path, paths["recipe"]) if p]
    with atomic_files(members, paths["manifest"]) as tmp:
        if output_path is not None:
            write_segment_submission(
                tmp[output_path], result["submission"], gzip=output_path.endswith(".gz"),
                max_per_class=max_per_class,
            )  # fmt: skip
        with open(tmp[paths["recipe"]], "wb") as f:
            f.write(text)
    for h in result["history"]:
        mark = " *" if h["step"] == result["best_step"] else ""
        print(f"{h['step']:>4}  {h['model']}  weight {h['weight']:.3f}  mAP {h['map']:.4f}{mark}")
    print(f"{flags['method']}: " + ", ".join(f"{n} {w:.3f}" for n, w in result["weights"].items()))
    if result["validation_map"] is not None:
        print(f"validation segment mAP: {result['validation_map']:.5f}")
    if output_path:
        print(f"submission: {output_path} ({result['num_classes']} classes)")
    print(f"recipe: {paths['recipe']}")
    result.update(output_file=output_path, recipe=paths["recipe"], method=flags["method"])
    result.pop("submission")
    return result


class Commands:
    """`y8m ensemble` as a method, for the CLI's command table."""

    ensemble = staticmethod(ensemble)


def _positive_int(value, flag: str, maximum: int | None = None) -> int:
    number = integer(flag, value)
    if number < 1:
        raise UsageError(f"--{flag} must be a positive integer, got {value!r}")
    return integer(flag, number, maximum=maximum)


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
    parsed = {}
    for name, value in weights.items():
        try:
            parsed[str(name).strip()] = number("weights", value, minimum=0)
        except UsageError as err:
            raise UsageError(f"{err} for model {str(name).strip()!r}") from None
    return parsed


def _normalise(weights: Mapping[str, float]) -> dict[str, float]:
    total = sum(weights.values())
    if any(w < 0 for w in weights.values()) or total <= 0:
        raise UsageError(f"weights must be >= 0 with a positive sum, got {dict(weights)}")
    return {n: w / total for n, w in weights.items() if w > 0}


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
    fit: _Fit, method, replay, output_path, num_test_videos, recipe_path, plot_path, top_k
):
    if fit.history:
        print(format_table(fit.history, fit.best_step, fit.stopped))
        if fit.stopped:
            print(f"(selection stopped before step {fit.stopped['step']}: --min_gain)")
        if fit.best_step != len(fit.history):
            print(f"(* the ensemble uses the first {fit.best_step} steps: the best validation GAP)")
    title = "replayed recipe" if replay else method
    print(f"{title}: " + ", ".join(f"{n} {w:.3f}" for n, w in fit.weights.items()))
    if fit.validation_gap is not None:
        line = f"validation GAP@{top_k}: {fit.validation_gap:.5f}"
        best_single = fit.best_single
        if best_single:
            line += f" (best single model {best_single}: {fit.single_gaps[best_single]:.5f})"
        print(line)
    if fit.total_mb is not None:
        budget = f" (budget {fit.max_mb:g} MB)" if fit.max_mb is not None else ""
        print(f"size: {fit.total_mb:.1f} MB{budget}")
    if output_path:
        print(f"submission: {output_path} ({num_test_videos} videos)")
    for label, path in (("recipe", recipe_path), ("plot", plot_path)):
        if path:
            print(f"{label}: {path}")
