"""The run config of `y8m train`: flags and records -> the dict saved as config.json."""

from __future__ import annotations

import math
import os

from y8m.data import specs
from y8m.errors import UsageError
from y8m.run import rundir

# Flags that define the model or its data: a resumed run must not change them silently.
IDENTITY_KEYS = ("model", "num_classes", "overrides", "data")
# Feature lists live in config["data"]; runs written before that kept them in "overrides" too.
_FEATURE_KEYS = ("feature_names", "feature_sizes")


def run_config(flags: dict, model_overrides: dict, files: list[str]) -> dict:
    """config.json for a run: model, num_classes, overrides, data and train sections.

    Args:
        flags: the arguments of `y8m.run.train.train`.
        model_overrides: model hyper-parameters given on the command line.
        files: the training files (the first one tells the release and the level).
    """
    from y8m.data.readers import detect_layout

    model = flags["model"]
    layout = detect_layout(files[0])
    release = specs.release(flags["version"] or layout["version"])
    overrides = {k: v for k, v in model_overrides.items() if v is not None}
    mode = rundir.input_mode(model, overrides)
    if flags["frame_features"] is not None and bool(flags["frame_features"]) != mode["frame_level"]:
        raise UsageError(
            f"--frame_features={flags['frame_features']} does not match model {model!r}"
        )
    if layout["frame_level"] is not None and layout["frame_level"] != mode["frame_level"]:
        need = "frame-level" if mode["frame_level"] else "video-level"
        raise UsageError(f"model {model!r} needs {need} records but {files[0]} is not {need}")
    features = specs.parse_feature_list(
        flags["feature_names"], flags["feature_sizes"], frame_level=mode["frame_level"]
    )
    return {
        "model": model,
        "num_classes": int(flags["num_classes"] or release.num_classes),
        "overrides": overrides,
        "data": {
            "version": release.version,
            "frame_level": mode["frame_level"],
            "feature_names": [f.name for f in features],
            "feature_sizes": [f.size for f in features],
            "sample": mode.get("sample") or "ordered",
            "num_samples": mode.get("num_samples")
            or (specs.MAX_FRAMES if mode.get("sample") == "random" else None),
            "max_frames": int(flags["max_frames"]),
        },
        "train": {
            "train_data_pattern": flags["train_data_pattern"],
            "batch_size": int(flags["batch_size"]),
            "base_learning_rate": float(flags["base_learning_rate"]),
            "learning_rate_decay": float(flags["learning_rate_decay"]),
            "learning_rate_decay_examples": int(flags["learning_rate_decay_examples"]),
            "clip_gradient_norm": float(flags["clip_gradient_norm"]),
            "seed": int(flags["seed"]),
            "jit_compile": bool(flags["jit_compile"]),
            "mixed_precision": bool(flags["mixed_precision"]),
            "keep_checkpoints": _at_least(flags, "keep_checkpoints", 1),
            "precise_bn_batches": _at_least(flags, "precise_bn_batches", 0),
            "ema_decay": _ema(flags["ema_decay"]),
        },
    }


def _at_least(flags: dict, name: str, low: int) -> int:
    try:
        value = int(flags[name])
    except (TypeError, ValueError):
        value = low - 1
    if value < low:
        raise UsageError(f"--{name} must be an integer >= {low}, got {flags[name]!r}")
    return value


def _ema(value) -> float:
    try:
        decay = float(value)
    except (TypeError, ValueError):
        decay = -1.0
    if not 0.0 <= decay < 1.0:
        raise UsageError(f"--ema_decay must be in [0, 1) (e.g. 0.999; 0 disables), got {value!r}")
    return decay


def check_resumable(train_dir: str, config: dict) -> None:
    """A UsageError if TRAIN_DIR holds a run of another model or data."""
    if not os.path.exists(rundir.path(train_dir, rundir.CONFIG_FILE)):
        return
    old = rundir.load_config(train_dir)
    # The EMA lives in the optimizer's state: a resumed run cannot add or drop it.
    before_ema = float(old.get("train", {}).get("ema_decay", 0.0))
    if (before_ema > 0) != (config["train"]["ema_decay"] > 0):
        raise UsageError(
            f"{train_dir!r} was trained with --ema_decay={before_ema}: resume with the same "
            "or pass --start_new_model"
        )
    for key in IDENTITY_KEYS:
        before, now = old.get(key), config.get(key)
        if key == "overrides":
            before = {k: v for k, v in (before or {}).items() if k not in _FEATURE_KEYS}
        if before != now:
            raise UsageError(
                f"{train_dir!r} holds a run with a different {key} ({old.get(key)} vs {now}): "
                "use another --train_dir or pass --start_new_model"
            )


def total_steps(max_steps, num_epochs, files, batch_size) -> int:
    """--max_steps, else --num_epochs (5 by default) passes over the records."""
    if max_steps is not None:
        if int(max_steps) <= 0:
            raise UsageError(f"--max_steps must be positive, got {max_steps}")
        return int(max_steps)
    from y8m.data.tfrecord_check import count_framed_records

    epochs = int(num_epochs) if num_epochs is not None else 5
    if epochs <= 0:
        raise UsageError(f"--num_epochs must be positive, got {num_epochs}")
    records = sum(count_framed_records(f)[0] for f in files)
    return max(epochs * math.ceil(records / int(batch_size)), 1)
