"""Prediction stores of runs at several weight precisions, cached beside each run, for the
budgeted greedy ensemble (`ensembles.commands.ensemble(max_mb=...)`, issue 17).

RUN/precisions/validate.<precision>.parquet (and test.<precision>.parquet) hold the run's
top-K with its weights as stored at that precision; their model name is `<run>@<precision>`,
so `runs/*/precisions/validate.*.parquet` and `runs/*/precisions/test.*.parquet` pair up.
"""

from __future__ import annotations

import glob
import json
import os

from y8m.errors import UsageError
from y8m.run import rundir
from y8m.run.quantize import check_precision

__all__ = ["PRECISIONS_DIR", "precision_stores", "store_file"]

PRECISIONS_DIR = "precisions"


def store_file(run_dir: str, split: str, precision: str) -> str:
    """RUN/precisions/<split>.<precision>.parquet."""
    return os.path.join(run_dir, PRECISIONS_DIR, f"{split}.{precision}.parquet")


def precision_stores(
    run_dirs,
    precisions,
    validate_pattern: str,
    test_pattern: str | None = None,
    *,
    top_k: int = 100,
    progress: bool = True,
) -> list[dict]:
    """Predicts VALIDATE_PATTERN (and TEST_PATTERN) with every run at every precision, once.

    A store is reused when it is newer than the run's model and was made from the same
    records at the same precision and top_k (its metadata says); otherwise it is predicted
    again with `y8m predict --precision`.

    Args:
        run_dirs: run directories, or one glob / comma-separated string of them.
        precisions: "float32", "float16", "int8" (a list or a comma-separated string).
        validate_pattern: labelled validation TFRecords.
        test_pattern: test TFRecords (None: validation stores only).
        top_k: classes kept per video.
        progress: show the prediction bars.

    Returns:
        One dict per (run, precision), runs in order, precisions in the given order: `run`,
        `precision`, `model_name`, `model_bytes`, `validation` and `test` (store paths; test
        None without TEST_PATTERN).
    """
    runs = _runs(run_dirs)
    precisions = _precisions(precisions)
    if not validate_pattern:
        raise UsageError("precision stores need --validate_data_pattern (labelled records)")
    splits = {"validate": validate_pattern, "test": test_pattern}
    out = []
    for run in runs:
        for precision in precisions:
            entry = {"run": run, "precision": precision, "model_name": _name(run, precision)}
            for split, pattern in splits.items():
                key = "validation" if split == "validate" else "test"
                if pattern is None:
                    entry[key] = None
                    continue
                path, metadata = _store(run, split, pattern, precision, int(top_k), progress)
                entry[key] = path
                entry["model_bytes"] = int(metadata["model_bytes"])
            out.append(entry)
    return out


def _store(run, split, pattern, precision, top_k, progress) -> tuple[str, dict]:
    """(path, metadata) of the run's store for SPLIT at PRECISION, predicted unless cached."""
    from y8m.run.predict import predict

    path = store_file(run, split, precision)
    metadata = _cached(path, pattern, precision, top_k, _model_time(run))
    if metadata is not None:
        return path, metadata
    os.makedirs(os.path.dirname(path), exist_ok=True)
    predict(
        train_dir=run,
        input_data_pattern=pattern,
        output_file=path,
        top_k=top_k,
        split=split,
        model_name=_name(run, precision),
        precision=precision,
        progress=progress,
    )
    return path, _metadata(path)


def _cached(path, pattern, precision, top_k, model_time) -> dict | None:
    """PATH's metadata when it can stand for a new prediction, else None."""
    if not os.path.exists(path) or os.path.getmtime(path) < model_time:
        return None
    metadata = _metadata(path)
    same = (
        metadata.get("data_pattern") == pattern
        and metadata.get("precision") == precision
        and int(metadata.get("top_k", -1)) >= min(top_k, int(metadata.get("num_classes", top_k)))
        and "model_bytes" in metadata
    )
    return metadata if same else None


def _metadata(path: str) -> dict:
    import pyarrow.parquet as pq

    from y8m.predictions import METADATA_KEY

    try:
        raw = (pq.read_schema(path).metadata or {}).get(METADATA_KEY)
    except OSError:  # a damaged or foreign file: predict it again
        return {}
    return json.loads(raw) if raw else {}


def _model_time(run: str) -> float:
    """When the run's weights last changed: its model.keras, float16 weights or checkpoints."""
    files = [rundir.path(run, rundir.MODEL_FILE), rundir.path(run, rundir.FLOAT16_WEIGHTS)]
    for _, prefix in rundir.checkpoints(run):
        files.extend(glob.glob(prefix + ".*"))
    times = [os.path.getmtime(f) for f in files if os.path.exists(f)]
    if not times:
        raise UsageError(f"{run!r} has no model.keras or checkpoint: train it first")
    return max(times)


def _name(run: str, precision: str) -> str:
    return f"{os.path.basename(os.path.normpath(run))}@{precision}"


def _runs(run_dirs) -> list[str]:
    """Run directories from a list, a glob or a comma-separated string (sorted per glob)."""
    items = run_dirs.split(",") if isinstance(run_dirs, str) else list(run_dirs or [])
    runs = []
    for item in (str(i).strip() for i in items):
        if not item:
            continue
        if any(c in item for c in "*?["):
            runs.extend(d for d in sorted(glob.glob(item)) if os.path.isdir(d))
        elif os.path.isdir(item):
            runs.append(item)
        else:
            raise UsageError(f"no such run directory {item!r}")
    if not runs:
        raise UsageError(f"no run directories match {run_dirs!r}")
    names = [os.path.basename(os.path.normpath(r)) for r in runs]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise UsageError(f"two runs are named {duplicate!r}: stores are matched by run name")
    return runs


def _precisions(precisions) -> list[str]:
    items = precisions.split(",") if isinstance(precisions, str) else list(precisions or [])
    chosen = [check_precision(str(p).strip()) for p in items if str(p).strip()]
    if not chosen:
        raise UsageError("pass at least one precision: float32, float16 or int8")
    return list(dict.fromkeys(chosen))
