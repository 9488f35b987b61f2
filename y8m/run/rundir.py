"""The run directory's format, owned here alone: config.json, checkpoints, logs, history.csv,
model.keras and the float16 weights of an export (DESIGN.md "Run directory").
"""

from __future__ import annotations

import csv
import json
import os
import re
import time

import numpy as np

from y8m.errors import UsageError
from y8m.fileio import atomic_files, atomic_open, check_files

CONFIG_FILE = "config.json"
MODEL_FILE = "model.keras"
CHECKPOINT_DIR = "checkpoints"
LOG_DIR = "logs"
HISTORY_FILE = "history.csv"
EVAL_FILE = "eval.json"
CURVE_FILE = "training_curve.png"
MODEL_INFO_FILE = "model.json"  # what model.keras holds: its step, EMA, batch-norm statistics
MODEL_MANIFEST = "model.manifest.json"  # model.keras, model.json and the curve, as one set
FLOAT16_WEIGHTS = "weights.float16.npz"
HISTORY_FIELDS = ("step", "loss", "learning_rate", "examples_per_s", "validation_gap")


def path(train_dir: str, name: str) -> str:
    return os.path.join(train_dir, name)


def load_config(train_dir: str) -> dict:
    """The config a run was trained with; a UsageError if TRAIN_DIR holds no run."""
    p = path(train_dir, CONFIG_FILE)
    if not os.path.exists(p):
        raise UsageError(
            f"no trained model in {train_dir!r} (missing {CONFIG_FILE}): run `y8m train` first"
        )
    try:
        with open(p) as f:
            config = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UsageError(f"{p} is damaged ({err}): restore it or train again") from None
    if not isinstance(config, dict) or "model" not in config:
        raise UsageError(f"{p} is not a y8m run config: restore it or train again")
    return config


def save_config(train_dir: str, config: dict) -> None:
    os.makedirs(train_dir, exist_ok=True)
    with atomic_open(path(train_dir, CONFIG_FILE), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True, default=str)


def archive(train_dir: str) -> str | None:
    """Moves an existing run aside (never deletes it) so a new one can start in TRAIN_DIR.

    Only a run directory (one with config.json) is moved: `--train_dir=.` or a data folder is
    refused rather than moved away.
    """
    if not os.path.exists(train_dir) or not os.listdir(train_dir):
        return None
    if os.path.abspath(train_dir) in (os.path.abspath(os.getcwd()), os.path.abspath(os.sep)):
        raise UsageError(f"--start_new_model would move {train_dir!r} itself: pass a run folder")
    if not os.path.exists(path(train_dir, CONFIG_FILE)):
        raise UsageError(
            f"--start_new_model: {train_dir!r} is not a run (no {CONFIG_FILE}) and is not empty; "
            "pass a new or run folder as --train_dir"
        )
    target = f"{train_dir.rstrip(os.sep)}.old-{time.strftime('%Y%m%d-%H%M%S')}"
    os.replace(train_dir, target)
    return target


def input_mode(model: str, overrides: dict) -> dict:
    """How the reader feeds MODEL in training (`frame_models.input_mode`), errors as UsageError."""
    import frame_models

    try:
        return frame_models.input_mode(model, **_hparams(overrides))
    except ValueError as err:
        raise UsageError(str(err)) from None


def build_model(config: dict):
    """Rebuilds the keras model a config describes (untrained weights)."""
    import frame_models

    data = config["data"]
    features = list(zip(data["feature_names"], (int(s) for s in data["feature_sizes"])))
    try:
        # Runs written before unknown hyper-parameters became errors may record some the
        # model never took (they were dropped then): rebuild with the ones it takes.
        takes = set(frame_models.valid_hparams(config["model"]))
        hparams = {k: v for k, v in _hparams(config.get("overrides", {})).items() if k in takes}
        return frame_models.build(config["model"], int(config["num_classes"]), features, **hparams)
    except ValueError as err:
        raise UsageError(str(err)) from None


def _hparams(overrides: dict) -> dict:
    # Runs written before config["data"] held the feature lists kept them among the overrides.
    return {k: v for k, v in overrides.items() if k not in ("feature_names", "feature_sizes")}


def save_model(model, train_dir: str, info: dict, curve=None) -> str:
    """Writes model.keras, model.json (`info`: step, ema_decay, precise_bn_batches) and, when
    given, the training curve (`curve(png_path)` draws it) as one set; returns the model's path.

    A kill never leaves a new model beside the previous run's record or curve: readers check
    model.manifest.json (`y8m.fileio.check_files`).
    """
    target = path(train_dir, MODEL_FILE)
    files = [target, path(train_dir, MODEL_INFO_FILE)] + (
        [path(train_dir, CURVE_FILE)] if curve else []
    )
    with atomic_files(files, path(train_dir, MODEL_MANIFEST)) as temporaries:
        model.save(temporaries[target])  # the temporary name keeps the .keras suffix
        with open(temporaries[files[1]], "w") as f:
            json.dump(info, f, indent=2, sort_keys=True)
        if curve:
            curve(temporaries[files[2]])
    return target


def check_model(train_dir: str) -> None:
    """A UsageError if model.keras is not the one its manifest lists (runs written before the
    manifest existed are taken as they are)."""
    manifest = path(train_dir, MODEL_MANIFEST)
    if os.path.exists(manifest) or os.path.exists(manifest + ".pending"):
        check_files(manifest)


def model_info(train_dir: str) -> dict:
    """model.json, or {} for runs written before it existed."""
    p = path(train_dir, MODEL_INFO_FILE)
    if not os.path.exists(p):
        return {}
    with open(p) as f:
        return json.load(f)


def checkpoints(train_dir: str) -> list[tuple[int, str]]:
    """(step, prefix) of every checkpoint the run keeps, oldest first, damaged ones included
    (a prefix whose files are missing or truncated is found when it is restored)."""
    folder = path(train_dir, CHECKPOINT_DIR)
    if not os.path.isdir(folder):
        return []
    prefixes = set()
    for name in os.listdir(folder):
        match = re.fullmatch(r"(ckpt-(\d+))\.(index|data-\d+-of-\d+)", name)
        if match:
            prefixes.add((int(match.group(2)), os.path.join(folder, match.group(1))))
    return sorted(prefixes)


def latest_checkpoint(train_dir: str) -> str | None:
    """The newest checkpoint prefix of a run with an index file, or None."""
    intact = [p for _, p in checkpoints(train_dir) if os.path.exists(p + ".index")]
    return intact[-1] if intact else None


def restore_newest_intact(checkpoint, train_dir: str, prefixes: list[str] | None = None):
    """Restores the newest of PREFIXES (default: every checkpoint of the run) that reads back
    whole into `checkpoint` (a `tf.train.Checkpoint`); a damaged one (missing index, truncated
    data) is skipped with a one-line warning naming it and the one used instead.

    Returns the restored prefix, or None when the run has no checkpoint.
    """
    import sys

    import tensorflow as tf

    candidates = list(reversed(prefixes or [p for _, p in checkpoints(train_dir)]))
    damaged = []
    for prefix in candidates:
        try:
            if not os.path.exists(prefix + ".index"):
                raise ValueError("its .index file is missing")
            checkpoint.restore(prefix).assert_existing_objects_matched()
        except checkpoint_errors(tf) as err:
            reason = (
                str(err).strip().splitlines()[0][:120] if str(err).strip() else type(err).__name__
            )
            damaged.append((prefix, reason))
            continue
        for bad, reason in damaged:
            print(
                f"warning: checkpoint {bad} is damaged ({reason}); using {prefix}", file=sys.stderr
            )
        return prefix
    if damaged:
        raise UsageError(
            f"every checkpoint of {train_dir!r} is damaged (newest: {damaged[0][0]}: {damaged[0][1]})"
        )
    return None


def checkpoint_errors(tf) -> tuple:
    """What reading a damaged checkpoint raises (a truncated .data file: IndexError)."""
    return (tf.errors.OpError, ValueError, AssertionError, IndexError, OSError)


def best_step(train_dir: str) -> int:
    """The step with the highest validation GAP in history.csv."""
    import pandas as pd

    p = path(train_dir, HISTORY_FILE)
    h = pd.read_csv(p).dropna(subset=["validation_gap"]) if os.path.exists(p) else None
    if h is None or not len(h):
        raise UsageError(
            f"{train_dir!r} has no validation GAP in {HISTORY_FILE}: train with "
            "--validate_data_pattern to use --checkpoint=best"
        )
    return int(h.loc[h["validation_gap"].idxmax(), "step"])


def float16_weights(model) -> list[np.ndarray]:
    """The model's weights with every floating array rounded to half precision."""
    arrays = [np.asarray(w) for w in model.get_weights()]
    return [a.astype(np.float16) if a.dtype.kind == "f" else a for a in arrays]


def save_float16_weights(halves: list[np.ndarray], file) -> None:
    np.savez(file, *halves)


def load_float16_weights(model, file: str) -> None:
    """Restores float16-exported weights into a freshly built model (as float32)."""
    with np.load(file) as data:  # allow_pickle stays False: only plain arrays load
        arrays = [data[f"arr_{i}"] for i in range(len(data.files))]
    current = model.get_weights()
    if len(arrays) != len(current):
        raise UsageError(f"{file} holds {len(arrays)} weights, the model has {len(current)}")
    model.set_weights([a.astype(c.dtype) for a, c in zip(arrays, current)])


def truncate_history(train_dir: str, step: int) -> None:
    """Drops history rows past `step` (those of steps a resumed run will train again)."""
    p = path(train_dir, HISTORY_FILE)
    if not os.path.exists(p):
        return
    with open(p, newline="") as f:
        rows = list(csv.DictReader(f))
    kept = [r for r in rows if r.get("step") and int(float(r["step"])) <= step]
    if len(kept) == len(rows):
        return
    with atomic_open(p, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=HISTORY_FIELDS)
        w.writeheader()
        w.writerows(kept)


def append_history(train_dir: str, row: dict) -> None:
    """Adds one row to history.csv (appended line by line: a crash loses at most one row)."""
    p = path(train_dir, HISTORY_FILE)
    new = not os.path.exists(p)
    with open(p, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=HISTORY_FIELDS)
        if new:
            w.writeheader()
        w.writerow(row)


def training_pair(batch: dict, config: dict) -> tuple:
    """(inputs, labels) for the step, or (inputs, labels, label_weights) with --segment_labels,
    or (inputs, labels, teacher) with --distill_from."""
    inputs = model_inputs(batch, config)
    if config["train"].get("distill"):
        return inputs, batch["labels"], batch["teacher"]
    if config["data"].get("segment_labels"):
        return inputs, batch["labels"], batch["label_weights"]
    return inputs, batch["labels"]


def model_inputs(batch: dict, config: dict) -> dict:
    """The part of a reader batch the model takes (features and num_frames)."""
    data = config["data"]
    keys = list(data["feature_names"]) + (["num_frames"] if data["frame_level"] else [])
    return {k: batch[k] for k in keys}


def dataset_for(
    config: dict,
    pattern: str,
    *,
    training: bool,
    batch_size: int,
    seed: int | None = None,
    skip_corrupt: bool = False,
    report=None,
    shard=None,
    repeat: bool | None = None,
):
    """The reader a run's model takes: its sampling (or, with --segment_labels, the rated
    segments and their label weights) when training, all real frames in order otherwise."""
    from y8m.data import read_frames, read_videos

    data = config["data"]
    common = dict(
        **_record_options(config),
        batch_size=batch_size,
        shuffle=training,
        repeat=training if repeat is None else repeat,
        seed=seed,
        skip_corrupt=skip_corrupt,
        report=report,
        shard=shard,
    )
    if not data["frame_level"]:
        return read_videos(pattern, **common)
    if data.get("segment_labels") and training:  # one 5-frame example per rated segment
        from y8m.data import read_segment_examples

        return read_segment_examples(pattern, **common)
    if training:
        mode = data["sample"]
        return read_frames(
            pattern,
            sample=mode,
            num_samples=data.get("num_samples") or 300,
            max_frames=data.get("max_frames", 300),
            **common,
        )
    return read_frames(pattern, sample="ordered", max_frames=data.get("max_frames", 300), **common)


def evaluation_parser(config: dict):
    """The batched parse `dataset_for(training=False)` applies to a run's records, labels left
    out (the serving export parses requests with it): string [B] -> the reader's tensors."""
    from y8m.data.readers import frame_parser, video_parser

    data = config["data"]
    if not data["frame_level"]:
        return video_parser(**_record_options(config), labels=False)
    return frame_parser(
        sample="ordered", max_frames=data.get("max_frames", 300), labels=False,
        **_record_options(config),
    )  # fmt: skip


def _record_options(config: dict) -> dict:
    """What every reader of a run's records is told: release, features and classes."""
    data = config["data"]
    return dict(
        version=data["version"],
        feature_names=data["feature_names"],
        feature_sizes=data["feature_sizes"],
        num_classes=config["num_classes"],
    )
