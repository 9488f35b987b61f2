"""`y8m pack`: an ensemble recipe as one Keras model (`frame_models.packed.PackedEnsemble`),
its branches' weights at their chosen precisions, checked against the ensemble on validation
records before it is written (issue 17)."""

from __future__ import annotations

import json
import os

import numpy as np

from y8m.errors import UsageError, integer
from y8m.fileio import atomic_files, check_files, recover_files
from y8m.run import rundir

__all__ = ["load_packed", "pack", "sidecar_path"]

# Float32 and float16 branches compute exactly what their stores recorded: only float32
# summation order separates the packed scores from the ensemble's.
SCORE_TOLERANCE = 1e-5
# int8 branches are decoded in the graph as the stores' predictions decoded them, but the
# documented promise is looser: the GAP of the packed model within this of the ensemble's.
INT8_GAP_TOLERANCE = 1e-4
# Data settings the branches' readers must share: the packed model reads one batch for all.
_READER_KEYS = ("version", "feature_names", "feature_sizes", "frame_level", "max_frames")


def pack(
    recipe: str | None = None,
    output_file: str | None = None,
    validate_data_pattern: str | None = None,
    max_videos: int | None = None,
    progress: bool = True,
) -> dict:
    """Writes OUTPUT_FILE (.keras): the ensemble RECIPE describes as one model, and
    OUTPUT_FILE.json (the runs' data section, for `y8m predict --model_file`).

    Each chosen model's validation store (the recipe's validation glob) names its run
    (`train_dir`) and precision; the run's judged model becomes a branch with its weights
    stored at that precision. Before anything is written the packed model predicts the
    stores' validation records and its top-K is compared with the recipe's ensemble of the
    stores: the same classes and scores within 1e-5 when every branch is float32/float16; with
    int8 branches, the validation GAP within 1e-4. Otherwise `pack` refuses.

    Args:
        recipe: a .recipe.json written by `y8m ensemble` (greedy, weighted or mean).
        output_file: the packed model, NAME.keras.
        validate_data_pattern: the records of the check (default: the stores' data_pattern).
        max_videos: check on the first videos only (default: all).
        progress: show the prediction bar.

    Returns:
        output_file, sidecar, mb (the file), branch_mb (the weights' stored bytes), branches,
        max_score_diff, gap_packed, gap_ensemble, gap_diff, mismatched_videos, num_videos.
    """
    from ensembles.recipe import MB, load_recipe

    if not recipe:
        raise UsageError("missing --recipe: the .recipe.json `y8m ensemble` wrote")
    if not output_file or not str(output_file).endswith(".keras"):
        raise UsageError(f"--output_file must name a .keras file, got {output_file!r}")
    loaded = load_recipe(str(recipe))
    if loaded["method"] == "rank":
        raise UsageError("a rank-average recipe averages ranks, not probabilities: cannot pack it")
    limit = None if max_videos is None else integer("max_videos", max_videos, 1)
    stores = _stores(loaded)
    models, config = _load_runs(stores, progress)
    packed = _build(models, stores)
    pattern = validate_data_pattern or _common(stores, "data_pattern")
    parity = _parity(packed, config, stores, int(loaded["top_k"]), pattern, limit, progress)
    branches = [
        {k: s[k] for k in ("name", "run", "precision", "weight", "top_k")} | {"bytes": b}
        for s, b in zip(stores, packed.branch_bytes())
    ]
    sidecar = {
        "model": "packed_ensemble",
        "num_classes": int(config["num_classes"]),
        "data": config["data"],
        "recipe": os.path.abspath(str(recipe)),
        "branches": branches,
        "parity": parity,
    }
    _save(packed, str(output_file), sidecar)
    result = {
        "output_file": str(output_file),
        "sidecar": sidecar_path(str(output_file)),
        "mb": os.path.getsize(output_file) / MB,
        "branch_mb": sum(b["bytes"] for b in branches) / MB,
        "branches": branches,
        **parity,
    }
    print(
        f"wrote {output_file} ({result['mb']:.3f} MB; branch weights {result['branch_mb']:.3f} "
        f"MB): {len(branches)} branches, max score diff {parity['max_score_diff']:.2e}, "
        f"GAP {parity['gap_packed']:.6f} vs ensemble {parity['gap_ensemble']:.6f} "
        f"on {parity['num_videos']} videos"
    )
    return result


def sidecar_path(model_file: str) -> str:
    """The JSON beside a packed model: `ensemble.keras` -> `ensemble.keras.json`."""
    return f"{model_file}.json"


def load_packed(model_file: str, config_from: str | None = None):
    """(model, config) of a .keras MODEL_FILE (a packed ensemble or any model), its config
    from CONFIG_FROM's run, else from the sidecar JSON `pack` wrote beside it."""
    import keras

    import frame_models  # noqa: F401  (registers the layers and PackedEnsemble)

    if not os.path.isfile(model_file):
        raise UsageError(f"--model_file {model_file} does not exist: pass a .keras file")
    manifest = _manifest(model_file)
    recover_files(manifest)
    if os.path.exists(manifest):
        check_files(manifest)
    config = rundir.load_config(config_from) if config_from else _read_sidecar(model_file)
    try:
        model = keras.saving.load_model(model_file, compile=False)
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise UsageError(
            f"cannot load {model_file} ({str(err).splitlines()[0][:120]}): pass a .keras model"
        ) from None
    return model, config


def _read_sidecar(model_file: str) -> dict:
    path = sidecar_path(model_file)
    if not os.path.exists(path):
        raise UsageError(
            f"{model_file} has no {os.path.basename(path)} beside it: pass --config_from=RUN "
            "(the run whose data it reads)"
        )
    try:
        with open(path) as f:
            config = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UsageError(f"{path} is damaged ({err}): pack the ensemble again") from None
    if not isinstance(config, dict) or "data" not in config or "num_classes" not in config:
        raise UsageError(f"{path} is not a packed model's sidecar (no data or num_classes)")
    return config


def _manifest(model_file: str) -> str:
    return f"{model_file}.manifest.json"


def _stores(recipe: dict) -> list[dict]:
    """One dict per chosen model (weight > 0): name, weight, store path, its metadata, run
    directory, precision and top-K."""
    from ensembles.inputs import index_files
    from y8m.predictions import load_predictions

    if not recipe.get("validation"):
        raise UsageError("the recipe names no validation stores: pack needs them to find the runs")
    files = index_files(recipe["validation"], "validation")
    total = sum(float(w) for w in recipe["weights"].values())
    out = []
    for name, weight in recipe["weights"].items():
        if float(weight) <= 0:
            continue
        if name not in files:
            raise UsageError(f"model {name!r} of the recipe has no store in {recipe['validation']}")
        stored = load_predictions(files[name])
        meta = stored.metadata
        if not meta.get("train_dir"):
            raise UsageError(f"{files[name]} records no train_dir: predict it with `y8m predict`")
        out.append({
            "name": name,
            "weight": float(weight) / total,
            "path": files[name],
            "predictions": stored,
            "run": meta["train_dir"],
            "precision": str(meta.get("precision") or "float32"),
            "top_k": int(meta.get("top_k") or stored.top_k),
            "data_pattern": meta.get("data_pattern"),
        })  # fmt: skip
    return out


def _common(stores: list[dict], key: str):
    values = {s["name"]: s[key] for s in stores}
    if len(set(map(str, values.values()))) != 1 or None in values.values():
        raise UsageError(
            f"the stores record different {key}s ({values}): pass --validate_data_pattern"
        )
    return next(iter(values.values()))


def _load_runs(stores: list[dict], progress: bool):
    """(judged model per store, the first run's config); the runs must read alike."""
    from y8m.run.loading import load_model

    models, configs = [], []
    for store in stores:
        model, config = load_model(store["run"], progress=progress)
        models.append(model)
        configs.append(config)
    first = configs[0]
    for store, config in zip(stores[1:], configs[1:]):
        for key in _READER_KEYS:
            if first["data"].get(key) != config["data"].get(key):
                level = " (frame-level and video-level)" if key == "frame_level" else ""
                raise UsageError(
                    f"runs {stores[0]['run']} and {store['run']} differ in data {key}{level}: "
                    "pack runs that read the same records alike"
                )
        if int(config["num_classes"]) != int(first["num_classes"]):
            raise UsageError(f"runs {stores[0]['run']} and {store['run']} differ in num_classes")
    return models, first


def _build(models, stores):
    from frame_models.packed import PackedEnsemble

    try:
        return PackedEnsemble.from_models(
            models,
            [s["precision"] for s in stores],
            [s["weight"] for s in stores],
            [s["top_k"] for s in stores],
            [s["name"] for s in stores],
        )
    except ValueError as err:
        raise UsageError(str(err).splitlines()[0]) from None


def _parity(packed, config, stores, top_k, pattern, limit, progress) -> dict:
    """The packed model against the stores' ensemble on PATTERN; a UsageError if they differ.

    Returns:
        max_score_diff, gap_packed, gap_ensemble, gap_diff, mismatched_videos, num_videos.
    """
    from ensembles.averaging import weighted_average
    from y8m.predictions import Predictions

    ensemble = weighted_average(
        {s["name"]: s["predictions"] for s in stores},
        {s["name"]: s["weight"] for s in stores},
        top_k,
    )
    ids, classes, scores, rows, diff, mismatched = _predict_packed(
        packed, config, pattern, ensemble, top_k, limit, progress
    )
    if not ids:
        raise UsageError(f"no validation videos of {pattern} are in the stores: check the pattern")
    subset = ensemble.take(np.asarray(rows))
    if subset.labels is None:
        raise UsageError("the validation stores hold no labels: predict labelled records")
    mine = Predictions(np.asarray(ids), np.concatenate(classes), np.concatenate(scores),
                       subset.labels, {"top_k": top_k})  # fmt: skip
    gap_packed, gap_ensemble = mine.gap(top_k), subset.gap(top_k)
    figures = {
        "max_score_diff": float(diff),
        "gap_packed": float(gap_packed),
        "gap_ensemble": float(gap_ensemble),
        "gap_diff": float(gap_packed - gap_ensemble),
        "mismatched_videos": int(mismatched),
        "num_videos": len(ids),
    }
    if any(s["precision"] == "int8" for s in stores):
        ok = abs(figures["gap_diff"]) <= INT8_GAP_TOLERANCE
        promise = f"GAP within {INT8_GAP_TOLERANCE:g} (int8 branches)"
    else:
        ok = mismatched == 0 and diff <= SCORE_TOLERANCE
        promise = f"the same top-{top_k} with scores within {SCORE_TOLERANCE:g}"
    if not ok:
        raise UsageError(
            f"the packed model differs from the ensemble (max score diff {diff:.2e}, GAP "
            f"{gap_packed:.6f} vs {gap_ensemble:.6f}, {mismatched} videos' top-{top_k} differ; "
            f"promised: {promise}): are the stores predictions of these runs' current weights?"
        )
    return figures


def _predict_packed(packed, config, pattern, ensemble, top_k, limit, progress):
    """Streams the packed model over PATTERN, comparing each video with ENSEMBLE's row.

    Returns (ids, [classes (B, K)], [scores (B, K)], ensemble rows, the largest score
    difference on the ensemble's listed classes, videos whose top-K class sets differ beyond
    ties at the cut)."""
    from tqdm import tqdm

    from y8m.data.readers import iterate
    from y8m.metrics import top_k_per_row
    from y8m.run.inference import compiled_predict

    row_of = {v: i for i, v in enumerate(ensemble.ids)}
    predict = compiled_predict(packed)
    ds = rundir.dataset_for(config, pattern, training=False, batch_size=256)
    ids, classes, scores, rows, diff, mismatched = [], [], [], [], 0.0, 0
    bar = tqdm(unit="video", desc="pack parity", disable=not progress, dynamic_ncols=True)
    for batch in iterate(ds, pattern):
        found = [(b, row_of[x.decode()]) for b, x in enumerate(batch["id"]) if x.decode() in row_of]
        if limit is not None:
            found = found[: max(limit - len(ids), 0)]
        if not found:
            continue
        where, index = (np.asarray(c) for c in zip(*found))
        dense = np.asarray(predict(rundir.model_inputs(batch, config)), np.float32)[where]
        c, s = top_k_per_row(dense, top_k, sort=True)
        c = np.where(s > 0, c, -1)  # a class no branch listed is not a prediction
        diff = max(diff, _score_diff(dense, ensemble.classes[index], ensemble.scores[index]))
        mismatched += _mismatches(dense, c, s, ensemble.classes[index])
        ids.extend(ensemble.ids[index])
        classes.append(c)
        scores.append(s)
        rows.extend(index)
        bar.update(len(index))
        if limit is not None and len(ids) >= limit:
            break
    bar.close()
    return ids, classes, scores, rows, diff, mismatched


def _score_diff(dense, classes, scores) -> float:
    """The largest |packed - ensemble| score over the ensemble's listed classes."""
    listed = classes >= 0
    packed = np.take_along_axis(dense, np.maximum(classes, 0), axis=1)
    return float(np.max(np.abs(packed - scores)[listed], initial=0.0))


def _mismatches(dense, classes, scores, reference) -> int:
    """Videos whose top-K class set differs from REFERENCE's, other than by classes tied
    (within SCORE_TOLERANCE) with the K-th score."""
    same = np.all(np.sort(classes, axis=1) == np.sort(reference, axis=1), axis=1)
    count = 0
    for b in np.flatnonzero(~same):
        changed = np.setxor1d(classes[b], reference[b])
        changed = changed[changed >= 0]
        kth = scores[b][classes[b] >= 0].min(initial=0.0)
        if np.any(np.abs(dense[b, changed] - kth) > SCORE_TOLERANCE):
            count += 1
    return count


def _save(packed, output_file: str, sidecar: dict) -> None:
    """The model and its sidecar JSON as one set (`y8m.fileio.atomic_files`)."""
    folder = os.path.dirname(os.path.abspath(output_file))
    os.makedirs(folder, exist_ok=True)
    side = sidecar_path(output_file)
    with atomic_files([output_file, side], _manifest(output_file)) as temporaries:
        packed.save(temporaries[output_file])
        with open(temporaries[side], "w") as f:
            json.dump(sidecar, f, indent=2, sort_keys=True)
