"""Ensemble inputs: prediction stores or Kaggle submission CSVs, indexed and loaded by model name.

`y8m.predictions.load_predictions` reads stores only; a Kaggle CSV is turned into the same
`Predictions` here, above the foundation, with the submission reader.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Mapping

import numpy as np

from submissions.formats import read_video_submission
from y8m.data import specs
from y8m.errors import UsageError
from y8m.fileio import expand_pattern
from y8m.predictions import METADATA_KEY, Predictions, load_predictions

__all__ = ["index_files", "load_input", "load_models", "model_name", "predictions_from_submission"]

CSV_SUFFIXES = (".csv", ".csv.gz")


def is_csv(path: str) -> bool:
    """True for a `.csv` / `.csv.gz` name (any case)."""
    return os.fspath(path).lower().endswith(CSV_SUFFIXES)


def load_input(path: str, *, num_classes: int | None = None) -> Predictions:
    """Loads a prediction store (`.parquet`) or a Kaggle 2017/2018 submission CSV (`.csv[.gz]`).

    Args:
        path: the file.
        num_classes: C recorded for a CSV (which does not carry it); ignored for stores.

    Returns:
        `Predictions` with rows in file order.

    Raises:
        UsageError: missing file, or a file that is neither a store nor a submission.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UsageError(f"no such prediction file {path!r}: check the path")
    if is_csv(path):
        return predictions_from_submission(path, num_classes=num_classes)
    return load_predictions(path, num_classes=num_classes)


def predictions_from_submission(path: str, *, num_classes: int | None = None) -> Predictions:
    """A Kaggle `VideoId,LabelConfidencePairs` CSV as `Predictions` (no labels).

    The model name is the file name without `.csv[.gz]`. A warning says that 20 classes per
    video ensemble worse than a store with a larger top_k.

    Args:
        path: the submission (plain or gzip).
        num_classes: C to record in the metadata (a CSV does not carry it).
    """
    ids, classes, scores = read_video_submission(path, top_k=None)
    warnings.warn(
        f"{path}: a Kaggle CSV keeps only {classes.shape[1]} classes per video; ensembles are "
        "better from prediction stores with more (y8m predict --top_k=100)",
        UserWarning,
        stacklevel=2,
    )
    metadata = {
        "format": "kaggle_csv",
        "model_name": _csv_stem(path),
        "split": "",
        "num_classes": int(num_classes) if num_classes else None,
        "top_k": int(classes.shape[1]),
        "data_pattern": "",
        "source": os.path.abspath(path),
    }
    return Predictions(ids, classes, np.where(classes >= 0, scores, 0.0), None, metadata)


def model_name(path: str) -> str:
    """The name a file is matched by: the store's model_name, or a CSV's file stem."""
    if is_csv(path):
        return _csv_stem(path)
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


def index_files(pattern: str, what: str) -> dict[str, str]:
    """model name -> file for every file matching `pattern`; a UsageError on duplicate names."""
    files: dict[str, str] = {}
    for path in expand_pattern(pattern, f"{what} prediction files"):
        name = model_name(path)
        if name in files:
            raise UsageError(
                f"{what} files {files[name]} and {path} are both model {name!r}: give each "
                "model one file per split"
            )
        files[name] = path
    return files


def check_same_models(validation: Mapping[str, str], test: Mapping[str, str]) -> None:
    """A UsageError naming the first model that has predictions on one split only."""
    for name in sorted(set(validation) ^ set(test)):
        side, other = ("validation", "test") if name in validation else ("test", "validation")
        raise UsageError(
            f"model {name!r} has {side} predictions ({(validation | test)[name]}) but no {other} "
            f"predictions: models are matched by name, give every model both"
        )


def load_models(
    files: Mapping[str, str], names: Iterable[str], what: str, release: specs.Release
) -> dict[str, Predictions]:
    """Loads the named models' files (see `index_files`) and checks their classes fit `release`."""
    names = list(names)
    missing = [n for n in names if n not in files]
    if missing:
        raise UsageError(
            f"model {missing[0]!r} has no {what} predictions among "
            f"{', '.join(sorted(files)) or 'none'}: pass its {what} file too"
        )
    out = {n: load_input(files[n], num_classes=release.num_classes) for n in names}
    for name, p in out.items():
        _check_classes(p, name, release)
    return out


def _check_classes(p: Predictions, name: str, release: specs.Release) -> None:
    largest = int(p.classes.max(initial=-1))
    if largest >= release.num_classes:
        raise UsageError(
            f"model {name!r} predicts class {largest}, beyond the {release.num_classes} classes "
            f"of the {release.version} release: pass the matching --version"
        )


def _csv_stem(path: str) -> str:
    """`a/test-netvlad.csv.gz` -> `test-netvlad`."""
    name = os.path.basename(path)
    for suffix in (".gz", ".csv"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name
