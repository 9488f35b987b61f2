"""The run config of `y8m train`: flags and records -> the dict saved as config.json."""

from __future__ import annotations

import math
import os

from y8m.data import specs
from y8m.errors import UsageError, integer, number
from y8m.run import rundir

# Flags that define the model or its data: a resumed run must not change them silently.
IDENTITY_KEYS = ("model", "num_classes", "overrides", "data")
# Feature lists live in config["data"]; runs written before that kept them in "overrides" too.
_FEATURE_KEYS = ("feature_names", "feature_sizes")


def adopt_init_from(flags: dict, model_overrides: dict) -> tuple[dict, dict | None]:
    """With --init_from, the model, hyper-parameters, features and classes come from that run
    (flags that would change them are refused). Returns (model overrides, the record of
    where the run starts from, or None)."""
    if not flags["init_from"]:
        flags["model"] = flags["model"] or "gated_netvlad"
        return model_overrides, None
    source_dir = flags["init_from"]
    source = rundir.load_config(source_dir)
    if not rundir.checkpoints(source_dir) and not os.path.exists(
        rundir.path(source_dir, rundir.MODEL_FILE)
    ):
        raise UsageError(
            f"--init_from={source_dir} is not a finished run (no checkpoint or model.keras)"
        )
    given = {k: v for k, v in model_overrides.items() if v is not None}
    clashes = [f"--{k}" for k in given if source.get("overrides", {}).get(k) != given[k]]
    if flags["model"] and flags["model"] != source["model"]:
        clashes.insert(0, f"--model={flags['model']}")
    for name in ("feature_names", "feature_sizes"):
        if flags[name] is not None:
            clashes.append(f"--{name}")
    if flags["num_classes"] is not None and int(flags["num_classes"]) != int(source["num_classes"]):
        clashes.append(f"--num_classes={flags['num_classes']}")
    if clashes:
        raise UsageError(
            f"--init_from={source_dir} fixes the architecture ({source['model']}, "
            f"{source['num_classes']} classes, its features): drop {', '.join(clashes)}"
        )
    data = source["data"]
    flags.update(
        model=source["model"],
        num_classes=source["num_classes"],
        feature_names=data["feature_names"],
        feature_sizes=data["feature_sizes"],
    )
    record = {"train_dir": os.path.abspath(source_dir), "checkpoint": str(flags["init_checkpoint"])}
    return dict(source.get("overrides", {})), record


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
    version = flags["version"] or layout["version"]
    if flags["segment_labels"] and version in (None, 2018):
        version = 2019  # 2019 records are 2018's layout plus the ratings the reader needs
    release = specs.release(version)
    overrides = {k: v for k, v in model_overrides.items() if v is not None}
    mode = rundir.input_mode(model, overrides)
    if flags["frame_features"] is not None and bool(flags["frame_features"]) != mode["frame_level"]:
        raise UsageError(
            f"--frame_features={flags['frame_features']} does not match model {model!r}"
        )
    if flags["segment_labels"] and not mode["frame_level"]:
        raise UsageError(f"--segment_labels needs a frame-level model, not {model!r}")
    if layout["frame_level"] is not None and layout["frame_level"] != mode["frame_level"]:
        need = "frame-level" if mode["frame_level"] else "video-level"
        raise UsageError(f"model {model!r} needs {need} records but {files[0]} is not {need}")
    features = specs.parse_feature_list(
        flags["feature_names"], flags["feature_sizes"], frame_level=mode["frame_level"]
    )
    absent = [f.name for f in features if layout["features"] and f.name not in layout["features"]]
    if absent:  # the reader would feed zeros for them: training on nothing
        raise UsageError(
            f"feature(s) {', '.join(absent)} are in no record of {files[0]} (it has "
            f"{', '.join(layout['features'])}): fix --feature_names"
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
            "segment_labels": bool(flags["segment_labels"]),
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
            "keep_checkpoints": int(flags["keep_checkpoints"]),
            "precise_bn_batches": int(flags["precise_bn_batches"]),
            "ema_decay": float(flags["ema_decay"]),
        },
    }


def check_flags(flags: dict) -> None:
    """Types and ranges of `y8m train`'s flags, before anything runs (one line naming the flag)."""
    for name, low in (("batch_size", 1), ("checkpoint_steps", 1), ("log_steps", 1),
                      ("keep_checkpoints", 1), ("validate_steps", 0), ("validate_max_videos", 1),
                      ("precise_bn_batches", 0), ("learning_rate_decay_examples", 1)):  # fmt: skip
        flags[name] = integer(name, flags[name], low)
    flags["max_frames"] = integer("max_frames", flags["max_frames"], 1, specs.MAX_FRAMES)
    for name in ("max_steps", "num_epochs"):
        if flags[name] is not None:
            flags[name] = integer(name, flags[name], 1)
    flags["seed"] = integer("seed", flags["seed"])
    flags["distill_weight"] = number(
        "distill_weight", flags["distill_weight"], minimum=0, maximum=1
    )
    flags["distill_temperature"] = number(
        "distill_temperature", flags["distill_temperature"], above=0
    )
    if flags["distill_from"] and flags["segment_labels"]:
        raise UsageError(
            "--distill_from does not combine with --segment_labels: distil video-level "
            "targets, then fine-tune on segments with --init_from"
        )
    flags["base_learning_rate"] = number("base_learning_rate", flags["base_learning_rate"], above=0)
    flags["learning_rate_decay"] = number(
        "learning_rate_decay", flags["learning_rate_decay"], maximum=1, above=0
    )
    flags["clip_gradient_norm"] = number("clip_gradient_norm", flags["clip_gradient_norm"], 0)
    flags["ema_decay"] = number("ema_decay", flags["ema_decay"], 0, below=1)
    if flags["max_model_mb"] is not None:
        flags["max_model_mb"] = number("max_model_mb", flags["max_model_mb"], above=0)


def check_data(files: list[str], config: dict, pattern: str) -> None:
    """Refuses training data that would spin forever (a file with no records) or a batch the
    data or the machine cannot hold (reading it would grow memory until the process is killed)."""
    import psutil

    empty = [f for f in files if os.path.getsize(f) == 0]
    if empty:
        raise UsageError(f"{empty[0]} holds no records: remove it from --train_data_pattern")
    batch = int(config["train"]["batch_size"])
    data = config["data"]
    frames = (data.get("num_samples") or data["max_frames"]) if data["frame_level"] else 1
    # A batch is held about three times over: the reader's prefetch, the step's inputs and the
    # float32 activations of the first layer.
    need = 3 * 4 * batch * frames * sum(int(s) for s in data["feature_sizes"])
    free = psutil.virtual_memory().available
    if need > free:
        raise UsageError(
            f"--batch_size={batch} needs about {need / 2**30:.1f} GiB for its inputs alone, more "
            f"than the {free / 2**30:.1f} GiB free: lower --batch_size"
        )
    if sum(os.path.getsize(f) for f in files) < 2**29:  # counting is cheap for small data
        from y8m.data.tfrecord_check import count_framed_records

        records = sum(count_framed_records(f)[0] for f in files)
        if batch > records:
            raise UsageError(
                f"--batch_size={batch} is larger than the {records} training videos in "
                f"{pattern!r}: lower it"
            )


_TRAIN_FLAGS_NOTED = ("batch_size", "base_learning_rate", "learning_rate_decay",
                      "learning_rate_decay_examples", "clip_gradient_norm", "seed",
                      "precise_bn_batches", "ema_decay", "keep_checkpoints")  # fmt: skip


def check_resumable(train_dir: str, config: dict) -> None:
    """A UsageError if TRAIN_DIR holds a run of another model or data; a line for each training
    flag that differs from the run's (the resumed run uses the new value, config.json records it)."""
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
    for key in _TRAIN_FLAGS_NOTED:
        was, now = old.get("train", {}).get(key), config["train"].get(key)
        if was is not None and was != now:
            print(f"resuming with --{key}={now} (the run had {was}); config.json records {now}")
    for key in IDENTITY_KEYS:
        before, now = old.get(key), config.get(key)
        if key == "data":  # runs written before segment labels existed trained on videos
            before = {"segment_labels": False, **(before or {})}
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
