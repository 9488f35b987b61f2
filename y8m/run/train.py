"""`y8m train`: fit a registry model on TFRecords with resumable checkpoints.

The loop is a compiled `train_step` over tf.data batches; state (model, optimizer, step) is a
`tf.train.Checkpoint` managed by `tf.train.CheckpointManager`, so re-running the same command
continues from the last checkpoint with the same step and optimizer moments.
"""

from __future__ import annotations

import csv
import math
import os
import time

import numpy as np

from y8m.run import rundir
from y8m.data import specs
from y8m.errors import UsageError
from y8m.fileio import atomic_path, expand_pattern

# Flags that define the model or its data: a resumed run must not change them silently.
_IDENTITY_KEYS = ("model", "num_classes", "overrides", "data")


def train(
    model: str = "gated_netvlad",
    train_data_pattern: str | None = None,
    train_dir: str = "runs/model",
    version: int | None = None,
    feature_names=None,
    feature_sizes=None,
    frame_features: bool | None = None,
    num_classes: int | None = None,
    batch_size: int = 80,
    base_learning_rate: float = 2e-4,
    learning_rate_decay: float = 0.8,
    learning_rate_decay_examples: int = 4_000_000,
    clip_gradient_norm: float = 1.0,
    max_steps: int | None = None,
    num_epochs: int | None = None,
    checkpoint_steps: int = 500,
    log_steps: int = 10,
    start_new_model: bool = False,
    validate_data_pattern: str | None = None,
    validate_steps: int = 0,
    validate_max_videos: int = 5000,
    max_frames: int = specs.MAX_FRAMES,
    seed: int = 0,
    skip_corrupt: bool = False,
    jit_compile: bool = False,
    mixed_precision: bool = False,
    strategy: str = "default",
    max_model_mb: float | None = None,
    progress: bool = True,
    **model_overrides,
) -> dict:
    """Trains (or resumes) a model and writes the run directory.

    Args:
        model: registry name (`y8m models` lists them).
        train_data_pattern: TFRecord glob of training data.
        train_dir: run directory: config.json, checkpoints/, logs/ (TensorBoard), history.csv,
            training_curve.png and the final model.keras.
        version: dataset release; detected from the records when omitted.
        feature_names, feature_sizes: streams to use ("rgb,audio" / "1024,128" by default).
        frame_features: must match the model's family when given (frame- vs video-level data).
        num_classes: output classes; the release's by default (3862 for 2018).
        batch_size: videos per step.
        base_learning_rate, learning_rate_decay, learning_rate_decay_examples: Adam learning rate
            `base * decay ** floor(examples / decay_examples)` (staircase, as the starter code).
        clip_gradient_norm: global-norm gradient clipping (0 disables).
        max_steps: stop after this many steps in total (counting resumed ones).
        num_epochs: stop after this many passes over the data (when max_steps is not given).
        checkpoint_steps: steps between checkpoints (one is also written at exit).
        log_steps: steps between TensorBoard/history records.
        start_new_model: move an existing run aside (to TRAIN_DIR.old-<time>) and start fresh.
        validate_data_pattern: optional validation glob for periodic GAP.
        validate_steps: steps between validations (0: only at the end, if a pattern is given).
        validate_max_videos: videos used per validation.
        max_frames: frames per video considered.
        seed: seed for weights, shuffling and frame sampling.
        skip_corrupt: skip damaged shards' tails instead of stopping.
        jit_compile: compile the train step with XLA.
        mixed_precision: bfloat16 compute on CPU (float16 on GPU), float32 weights.
        strategy: "default" (one device), "mirrored" (all local GPUs), "multi_worker" (hosts
            listed in TF_CONFIG; worker 0 is the chief and writes the run) or "tpu".
        max_model_mb: refuse a model whose float32 weights exceed this size (the 2018
            challenge required under 1 GB: --max_model_mb=1024).
        **model_overrides: model hyper-parameters (--cluster_size, --hidden_size, ...).

    Returns:
        dict with `step`, `loss`, `examples_per_s`, `train_dir`, `gap` (if validated).
    """
    if not train_data_pattern:
        raise UsageError(
            "missing --train_data_pattern: a glob such as 'data/synth/frame/train*.tfrecord'"
        )
    import keras
    import tensorflow as tf
    from tqdm import tqdm

    import frame_models
    from frame_models.losses import CrossEntropyLoss
    from y8m.data.readers import CorruptReport, data_error, detect_layout

    if model not in frame_models.names():
        raise UsageError(
            f"unknown model {model!r}; choose one of: {', '.join(frame_models.names())}"
        )
    from y8m.run import distribute

    # Multi-worker collectives must be set up before TensorFlow runs any op.
    strat = distribute.make_strategy(strategy)
    files = expand_pattern(train_data_pattern, "training files")
    layout = detect_layout(files[0])
    release = specs.release(version or layout["version"])
    overrides = {k: v for k, v in model_overrides.items() if v is not None}
    if feature_names is not None:
        overrides["feature_names"] = _as_list(feature_names)
    if feature_sizes is not None:
        overrides["feature_sizes"] = [int(s) for s in _as_list(feature_sizes)]
    mode = frame_models.input_mode(model, **overrides)
    if frame_features is not None and bool(frame_features) != mode["frame_level"]:
        raise UsageError(f"--frame_features={frame_features} does not match model {model!r}")
    if layout["frame_level"] is not None and layout["frame_level"] != mode["frame_level"]:
        need = "frame-level" if mode["frame_level"] else "video-level"
        raise UsageError(f"model {model!r} needs {need} records but {files[0]} is not {need}")
    features = specs.parse_feature_list(
        overrides.get("feature_names"),
        overrides.get("feature_sizes"),
        frame_level=mode["frame_level"],
    )
    config = {
        "model": model,
        "num_classes": int(num_classes or release.num_classes),
        "overrides": overrides,
        "data": {
            "version": release.version,
            "frame_level": mode["frame_level"],
            "feature_names": [f.name for f in features],
            "feature_sizes": [f.size for f in features],
            "sample": mode.get("sample") or "ordered",
            "num_samples": mode.get("num_samples"),
            "max_frames": int(max_frames),
        },
        "train": {
            "train_data_pattern": train_data_pattern,
            "batch_size": int(batch_size),
            "base_learning_rate": float(base_learning_rate),
            "learning_rate_decay": float(learning_rate_decay),
            "learning_rate_decay_examples": int(learning_rate_decay_examples),
            "clip_gradient_norm": float(clip_gradient_norm),
            "seed": int(seed),
            "jit_compile": bool(jit_compile),
            "mixed_precision": bool(mixed_precision),
        },
    }
    _, worker = distribute.worker_info() if strategy == "multi_worker" else (1, 0)
    chief = worker == 0
    replicas = int(strat.num_replicas_in_sync)
    # --batch_size is per replica (the starter code's per-tower batch); the learning-rate decay
    # counts global examples, so N replicas decay N times faster per step.
    global_batch = int(batch_size) * replicas
    config["train"].update(strategy=strategy, replicas=replicas, global_batch_size=global_batch)
    if mixed_precision:
        gpu = bool(tf.config.list_physical_devices("GPU"))
        keras.mixed_precision.set_global_policy("mixed_float16" if gpu else "mixed_bfloat16")
    keras.utils.set_random_seed(int(seed))
    with strat.scope():
        net = rundir.build_model(config)
        decay_steps = max(int(learning_rate_decay_examples) / global_batch, 1.0)
        schedule = keras.optimizers.schedules.ExponentialDecay(
            float(base_learning_rate), decay_steps, float(learning_rate_decay), staircase=True
        )
        optimizer = keras.optimizers.Adam(learning_rate=schedule)
        if keras.mixed_precision.global_policy().name == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(net.trainable_variables)
        ckpt = tf.train.Checkpoint(model=net, optimizer=optimizer)
    size_mb = net.count_params() * 4 / 2**20
    if max_model_mb is not None and size_mb > float(max_model_mb):
        raise UsageError(
            f"model {model!r} has {net.count_params():,} parameters = {size_mb:.0f} MB in float32, over "
            f"--max_model_mb={max_model_mb}: lower --cluster_size/--hidden_size"
        )
    if chief:
        if start_new_model:
            moved = rundir.archive(train_dir)
            if moved:
                print(f"moved the previous run to {moved}")
        _check_resumable(train_dir, config)
        rundir.save_config(train_dir, config)

    ckpt_dir = distribute.checkpoint_dir(train_dir, chief)
    manager = tf.train.CheckpointManager(ckpt, ckpt_dir, max_to_keep=3)
    latest = tf.train.latest_checkpoint(rundir.path(train_dir, rundir.CHECKPOINT_DIR))
    if latest:  # every worker resumes from the chief's checkpoints
        ckpt.restore(latest).assert_existing_objects_matched()
        if chief:
            print(f"resuming {train_dir} from step {int(optimizer.iterations.numpy())}")

    report = CorruptReport()
    total_steps = _total_steps(max_steps, num_epochs, files, global_batch)
    start_step = int(optimizer.iterations.numpy())

    def dataset_fn(context):
        shard = None
        if context.num_input_pipelines > 1:
            shard = (context.num_input_pipelines, context.input_pipeline_id)
        ds = rundir.dataset_for(
            config,
            train_data_pattern,
            training=True,
            batch_size=context.get_per_replica_batch_size(global_batch),
            seed=int(seed) + start_step + 7919 * context.input_pipeline_id,
            skip_corrupt=skip_corrupt,
            report=report,
            shard=shard,
        )
        return ds.map(lambda b: (rundir.model_inputs(b, config), b["labels"]))

    if replicas == 1 and strategy == "default":
        ds = dataset_fn(tf.distribute.InputContext())
    else:
        ds = strat.distribute_datasets_from_function(dataset_fn)

    loss_fn = CrossEntropyLoss()
    clip = float(clip_gradient_norm)

    def replica_step(inputs, labels):
        with tf.GradientTape() as tape:
            predictions = tf.cast(net(inputs, training=True), tf.float32)
            label_loss = loss_fn(labels, predictions)
            reg = tf.add_n(net.losses) if net.losses else 0.0
            # The optimizer sums gradients over replicas: scale each replica's mean loss.
            loss = (label_loss + tf.cast(reg, tf.float32)) / replicas
            if hasattr(optimizer, "scale_loss"):
                loss = optimizer.scale_loss(loss)
        grads = tape.gradient(loss, net.trainable_variables)
        if clip > 0:
            grads, _ = tf.clip_by_global_norm(grads, clip)
        optimizer.apply(grads, net.trainable_variables)
        return label_loss

    replica_fn = tf.function(replica_step, jit_compile=bool(jit_compile), reduce_retracing=True)

    @tf.function(reduce_retracing=True)
    def step_fn(inputs, labels):
        per_replica = strat.run(replica_fn, args=(inputs, labels))
        return strat.reduce(tf.distribute.ReduceOp.MEAN, per_replica, axis=None)

    writer = tf.summary.create_file_writer(rundir.path(train_dir, rundir.LOG_DIR)) if chief else None
    history_path = rundir.path(train_dir, rundir.HISTORY_FILE)
    if start_step >= total_steps and chief:
        print(f"{train_dir} is already at step {start_step} >= {total_steps}: nothing to train")
    bar = tqdm(
        total=total_steps,
        initial=start_step,
        unit="step",
        desc=f"train {model}",
        disable=not (progress and chief),
        dynamic_ncols=True,
    )
    t0 = window_t = time.perf_counter()
    last_loss, seen, window_n, rate = float("nan"), 0, 0, 0.0
    result: dict = {"train_dir": train_dir}
    iterator = iter(ds)
    try:
        while int(optimizer.iterations.numpy()) < total_steps:
            try:
                inputs, labels = next(iterator)
            except StopIteration:
                break
            except tf.errors.OpError as err:
                raise data_error(err, train_data_pattern) from None
            loss = float(step_fn(inputs, labels))
            step = int(optimizer.iterations.numpy())
            if not math.isfinite(loss):
                raise UsageError(
                    f"loss became {loss} at step {step}; stopped without saving, the last good checkpoint "
                    f"({latest_checkpoint(train_dir) or 'none'}) is kept: lower --base_learning_rate"
                )
            seen += global_batch
            window_n += global_batch
            last_loss = loss
            bar.update(1)
            if chief and step % max(int(log_steps), 1) == 0:
                now = time.perf_counter()
                rate = window_n / max(now - window_t, 1e-9)
                window_t, window_n = now, 0
                lr = float(schedule(step))
                bar.set_postfix(loss=f"{loss:.3f}", ex_s=f"{rate:.0f}")
                with writer.as_default(step=step):
                    tf.summary.scalar("loss", loss)
                    tf.summary.scalar("learning_rate", lr)
                    tf.summary.scalar("examples_per_second", rate)
                _append_history(
                    history_path,
                    {"step": step, "loss": loss, "learning_rate": lr, "examples_per_s": rate},
                )
            if step % max(int(checkpoint_steps), 1) == 0:
                manager.save(checkpoint_number=step)
            if (
                chief
                and validate_data_pattern
                and validate_steps
                and step % int(validate_steps) == 0
            ):
                gap = _validate(net, config, validate_data_pattern, validate_max_videos)
                bar.write(f"step {step}: validation GAP {gap:.4f}")
                _append_history(history_path, {"step": step, "validation_gap": gap})
                with writer.as_default(step=step):
                    tf.summary.scalar("validation_gap", gap)
    except KeyboardInterrupt:
        bar.close()
        manager.save(checkpoint_number=int(optimizer.iterations.numpy()))
        print(
            f"interrupted: saved step {int(optimizer.iterations.numpy())}; re-run the same command to resume"
        )
        raise
    bar.close()
    step = int(optimizer.iterations.numpy())
    if manager.latest_checkpoint is None or not manager.latest_checkpoint.endswith(f"-{step}"):
        manager.save(checkpoint_number=step)
    distribute.discard(ckpt_dir, chief)
    result.update(step=step, loss=last_loss, weights_fingerprint=_fingerprint(net))
    elapsed = time.perf_counter() - t0
    result["examples_per_s"] = seen / elapsed if seen else 0.0
    if not chief:
        return result
    if step > start_step and step % max(int(log_steps), 1):
        _append_history(history_path, {"step": step, "loss": last_loss, "examples_per_s": rate})
    if validate_data_pattern:
        result["gap"] = _validate(net, config, validate_data_pattern, validate_max_videos)
        _append_history(history_path, {"step": step, "validation_gap": result["gap"]})
        print(f"validation GAP {result['gap']:.4f}")
    with atomic_path(rundir.path(train_dir, rundir.MODEL_FILE)) as tmp:
        net.save(tmp)  # the temporary name keeps the .keras suffix keras requires
    _plot_history(history_path, rundir.path(train_dir, rundir.CURVE_FILE))
    if report.skipped:
        print(report.summary())
    print(
        f"step {step}, loss {last_loss:.4f}; model saved to {rundir.path(train_dir, rundir.MODEL_FILE)}"
    )
    return result


def latest_checkpoint(train_dir: str) -> str | None:
    import tensorflow as tf

    return tf.train.latest_checkpoint(rundir.path(train_dir, rundir.CHECKPOINT_DIR))


def _fingerprint(net) -> str:
    """A digest of all weights: equal on every worker of a synchronous run."""
    import hashlib

    digest = hashlib.sha256()
    for w in net.weights:
        digest.update(np.ascontiguousarray(np.asarray(w)).tobytes())
    return digest.hexdigest()[:16]


def _as_list(value) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value]
    return [v.strip() for v in str(value).split(",") if v.strip()]


def _check_resumable(train_dir: str, config: dict) -> None:
    p = rundir.path(train_dir, rundir.CONFIG_FILE)
    if not os.path.exists(p):
        return
    old = rundir.load_config(train_dir)
    for key in _IDENTITY_KEYS:
        if old.get(key) != config.get(key):
            raise UsageError(
                f"{train_dir!r} holds a run with a different {key} ({old.get(key)} vs {config.get(key)}): "
                "use another --train_dir or pass --start_new_model"
            )


def _total_steps(max_steps, num_epochs, files, batch_size) -> int:
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


def _validate(net, config, pattern: str, max_videos: int) -> float:
    from y8m.data.readers import iterate
    from y8m.metrics import Evaluator

    evaluator = Evaluator(int(config["num_classes"]))
    ds = rundir.dataset_for(config, pattern, training=False, batch_size=256)
    seen = 0
    for batch in iterate(ds, pattern):
        evaluator.update(
            np.asarray(net(rundir.model_inputs(batch, config), training=False), np.float32),
            batch["labels"],
        )
        seen += len(batch["labels"])
        if seen >= max_videos:
            break
    return float(evaluator.result()["gap"])


_HISTORY_FIELDS = ("step", "loss", "learning_rate", "examples_per_s", "validation_gap")


def _append_history(path: str, row: dict) -> None:
    new = not os.path.exists(path)
    with open(path, "a", newline="") as f:  # appended line by line: a crash loses at most one row
        w = csv.DictWriter(f, fieldnames=_HISTORY_FIELDS)
        if new:
            w.writeheader()
        w.writerow(row)


def _plot_history(history_path: str, png_path: str) -> None:
    import pandas as pd

    if not os.path.exists(history_path):
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = pd.read_csv(history_path)
    fig, ax = plt.subplots(figsize=(7, 4))
    loss = h.dropna(subset=["loss"])
    ax.plot(loss["step"], loss["loss"], label="training loss", color="tab:blue")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    positive = loss["loss"][loss["loss"] > 0]
    if len(positive) and positive.max() > 100 * positive.min():
        ax.set_yscale("log")  # the first steps would flatten the rest of the curve
    val = h.dropna(subset=["validation_gap"])
    if len(val):
        ax2 = ax.twinx()
        ax2.plot(
            val["step"], val["validation_gap"], "o-", color="tab:orange", label="validation GAP"
        )
        ax2.set_ylabel("validation GAP")
    ax.set_title("training curve")
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
