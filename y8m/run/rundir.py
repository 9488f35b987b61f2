"""The run directory's format, owned here alone: config.json, checkpoints, logs, history.csv,
model.keras and the float16 weights of an export (DESIGN.md "Run directory").
"""

from __future__ import annotations

import csv
import json
import os
import time

import numpy as np

from y8m.errors import UsageError
from y8m.fileio import atomic_open, atomic_path

CONFIG_FILE = "config.json"
MODEL_FILE = "model.keras"
CHECKPOINT_DIR = "checkpoints"
LOG_DIR = "logs"
HISTORY_FILE = "history.csv"
EVAL_FILE = "eval.json"
CURVE_FILE = "training_curve.png"
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
    with open(p) as f:
        return json.load(f)


def save_config(train_dir: str, config: dict) -> None:
    os.makedirs(train_dir, exist_ok=True)
    with atomic_open(path(train_dir, CONFIG_FILE), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True, default=str)


def archive(train_dir: str) -> str | None:
    """Moves an existing run aside (never deletes it) so a new one can start in TRAIN_DIR."""
    if not os.path.exists(train_dir) or not os.listdir(train_dir):
        return None
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


def load_model(train_dir: str):
    """The trained model of a run: latest checkpoint if any, else model.keras. Returns (model, config)."""
    import tensorflow as tf

    config = load_config(train_dir)
    ckpt_dir = path(train_dir, CHECKPOINT_DIR)
    latest = tf.train.latest_checkpoint(ckpt_dir) if os.path.isdir(ckpt_dir) else None
    if latest:
        model = build_model(config)
        tf.train.Checkpoint(model=model).restore(latest).expect_partial()
        return model, config
    half = path(train_dir, FLOAT16_WEIGHTS)
    if os.path.exists(half):  # a `y8m export --dtype=float16` archive, unpacked
        model = build_model(config)
        load_float16_weights(model, half)
        return model, config
    model_path = path(train_dir, MODEL_FILE)
    if os.path.exists(model_path):
        import keras

        return keras.models.load_model(model_path, compile=False), config
    raise UsageError(
        f"{train_dir!r} has a config but no checkpoint or {MODEL_FILE}: train it first"
    )


def save_model(model, train_dir: str) -> str:
    """Writes model.keras atomically; returns its path."""
    target = path(train_dir, MODEL_FILE)
    with atomic_path(target) as tmp:
        model.save(tmp)  # the temporary name keeps the .keras suffix keras requires
    return target


def latest_checkpoint(train_dir: str) -> str | None:
    """The newest checkpoint prefix of a run, or None."""
    import tensorflow as tf

    return tf.train.latest_checkpoint(path(train_dir, CHECKPOINT_DIR))


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


def append_history(train_dir: str, row: dict) -> None:
    """Adds one row to history.csv (appended line by line: a crash loses at most one row)."""
    p = path(train_dir, HISTORY_FILE)
    new = not os.path.exists(p)
    with open(p, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=HISTORY_FIELDS)
        if new:
            w.writeheader()
        w.writerow(row)


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
    """The reader a run's model takes: its sampling when training, all real frames in order otherwise."""
    from y8m.data import read_frames, read_videos

    data = config["data"]
    common = dict(
        version=data["version"],
        feature_names=data["feature_names"],
        feature_sizes=data["feature_sizes"],
        num_classes=config["num_classes"],
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
