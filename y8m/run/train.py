"""`y8m train`: fit a registry model on TFRecords with resumable checkpoints.

The flags are declared once, in `train`'s signature: fire shows them as `--help`, config.json
records them, and library callers pass them as keywords. The work is done by the parts in
`y8m.run.training`: the run config, the state (model, optimizer, checkpoint), the step
function, the loop with its hooks, and the end-of-run artefacts.
"""

from __future__ import annotations

from y8m.data import specs
from y8m.errors import UsageError
from y8m.fileio import expand_pattern
from y8m.run import distribute, rundir
from y8m.run.teacher import load_teacher
from y8m.run.training import artefacts
from y8m.run.training.config import (
    adopt_init_from,
    check_data,
    check_flags,
    check_resumable,
    run_config,
    total_steps,
)
from y8m.run.training.hooks import JudgedWeightsHook, LogHook, ValidationHook
from y8m.run.training.loop import Hook, TrainLoop
from y8m.run.training.state import (
    TrainState,
    build_state,
    kept_policy,
    restore,
    use_mixed_precision,
)
from y8m.run.training.step import make_train_step


def train(
    model: str | None = None,
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
    keep_checkpoints: int = 5,
    log_steps: int = 10,
    start_new_model: bool = False,
    validate_data_pattern: str | None = None,
    segment_labels: bool = False,
    init_from: str | None = None,
    init_checkpoint: str = "latest",
    distill_from: str | None = None,
    distill_weight: float = 0.5,
    distill_temperature: float = 1.0,
    validate_steps: int = 0,
    validate_max_videos: int = 5000,
    precise_bn_batches: int = 200,
    ema_decay: float = 0.0,
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
        model: registry name (`y8m models` lists them; gated_netvlad by default, the source
            run's with --init_from).
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
        checkpoint_steps: steps between checkpoints (one is also written at each validation
            and at exit).
        keep_checkpoints: newest checkpoints kept (for --checkpoint=STEP|best, `y8m average`).
        log_steps: steps between TensorBoard/history records.
        start_new_model: move an existing run aside (to TRAIN_DIR.old-<time>) and start fresh.
        validate_data_pattern: optional validation glob for periodic GAP.
        segment_labels: train on 2019 segment ratings: one 5-frame example per rated segment,
            only the rated classes in the loss (label weights, as the official segment reader).
        init_from: start from another run's weights (fine-tuning) with a fresh optimizer and
            step counter; the model, its hyper-parameters and features come from that run.
        init_checkpoint: which weights of --init_from: latest (its model.keras when final),
            best (highest validation GAP) or a step.
        distill_from: glob of prediction stores of a teacher (an ensemble) on the training
            videos: train against a mix of the labels and its predictions (docs/models.md,
            "Distillation"); stores of several models are averaged.
        distill_weight: the teacher's share of the target (0.5 as the 2018 winner).
        distill_temperature: T of the softened targets (1: the teacher's probabilities).
        validate_steps: steps between validations (0: only at the end, if a pattern is given).
        validate_max_videos: videos used per validation.
        precise_bn_batches: training batches over which every batch-norm layer's mean and
            variance are re-estimated (their exact average) before each validation and for
            model.keras; the moving averages lag far behind after short runs. 0 disables.
        ema_decay: keep an exponential moving average of the weights with this decay (e.g.
            0.999; Keras' optimizer EMA) and validate and save the averaged weights. 0: off.
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
    flags = {k: v for k, v in locals().items() if k != "model_overrides"}
    if not train_data_pattern:
        raise UsageError(
            "missing --train_data_pattern: a glob such as 'data/synth/frame/train*.tfrecord'"
        )
    with kept_policy():
        return _train(flags, model_overrides)


def _train(flags: dict, model_overrides: dict) -> dict:
    check_flags(flags)
    train_dir = flags["train_dir"]
    # Multi-worker collectives must be set up before TensorFlow runs any op.
    strategy = distribute.make_strategy(flags["strategy"])
    files = expand_pattern(flags["train_data_pattern"], "training files")
    model_overrides, source = adopt_init_from(flags, model_overrides)
    config = run_config(flags, model_overrides, files)
    if source is not None:
        config["init_from"] = source
    check_data(files, config, flags["train_data_pattern"])
    teacher = None
    if flags["distill_from"]:
        teacher = load_teacher(flags["distill_from"], config["num_classes"])
        config["train"]["distill"] = {
            "from": flags["distill_from"],
            "weight": flags["distill_weight"],
            "temperature": flags["distill_temperature"],
            "teacher_models": teacher.models,
            "teacher_videos": len(teacher.ids),
        }
    config["flags"] = {**flags, **model_overrides}  # the command line as given, for the record
    _, worker = distribute.worker_info() if flags["strategy"] == "multi_worker" else (1, 0)
    chief = worker == 0
    replicas = int(strategy.num_replicas_in_sync)
    # --batch_size is per replica (the starter code's per-tower batch).
    global_batch = int(flags["batch_size"]) * replicas
    config["train"].update(
        strategy=flags["strategy"], replicas=replicas, global_batch_size=global_batch
    )
    if flags["mixed_precision"]:
        use_mixed_precision()
    import keras

    keras.utils.set_random_seed(int(flags["seed"]))
    state = build_state(config, strategy, train_dir, chief, flags["max_model_mb"])
    if chief:
        _prepare_run_dir(train_dir, config, flags["start_new_model"])
    start_step = restore(state, train_dir)
    if start_step == 0 and flags["init_from"]:
        _initialise(state, flags)
    from y8m.data.readers import CorruptReport

    report = CorruptReport()
    steps = total_steps(flags["max_steps"], flags["num_epochs"], files, global_batch)
    loop = TrainLoop(
        state,
        make_train_step(
            state.net,
            state.optimizer,
            strategy,
            clip_norm=config["train"]["clip_gradient_norm"],
            jit_compile=config["train"]["jit_compile"],
            distill=_distill_options(config),
        ),
        _batches(config, strategy, flags, start_step, report, teacher),
        total_steps=steps,
        global_batch=global_batch,
        checkpoint_steps=flags["checkpoint_steps"],
        validate_steps=flags["validate_steps"] if flags["validate_data_pattern"] else 0,
        hooks=default_hooks(config, flags, state) if chief else [],
        train_dir=train_dir,
        data_pattern=flags["train_data_pattern"],
        bar=_progress_bar(config, flags, start_step, steps, chief),
    )
    if start_step >= loop.total_steps and chief:
        print(
            f"{train_dir} is already at step {start_step} >= {loop.total_steps}: nothing to train"
        )
    loop.run()
    distribute.discard(state.checkpoint_dir, chief)
    return _finish(loop, flags, chief, report)


def _initialise(state: TrainState, flags: dict) -> None:
    """Copies --init_from's judged weights into the fresh model (only when not resuming)."""
    from y8m.run.loading import load_model

    source, _ = load_model(
        flags["init_from"], checkpoint=flags["init_checkpoint"], progress=flags["progress"]
    )
    state.net.set_weights(source.get_weights())
    print(f"initialised from {flags['init_from']} ({flags['init_checkpoint']})")


def default_hooks(config: dict, flags: dict, state: TrainState) -> list[Hook]:
    """The chief's hooks, in the order they run at each point: logs, then validation."""
    import tensorflow as tf

    train_dir = flags["train_dir"]
    writer = tf.summary.create_file_writer(rundir.path(train_dir, rundir.LOG_DIR))
    hooks: list[Hook] = [
        LogHook(train_dir, writer, state.schedule, flags["log_steps"]),
        # Before validation: it and model.keras use the weights this hook prepares.
        JudgedWeightsHook(
            config, flags["precise_bn_batches"], int(flags["seed"]), bool(flags["progress"])
        ),
    ]
    if flags["validate_data_pattern"]:
        hooks.append(
            ValidationHook(
                config,
                flags["validate_data_pattern"],
                flags["validate_max_videos"],
                train_dir,
                writer,
            )
        )
    return hooks


def _prepare_run_dir(train_dir: str, config: dict, start_new_model: bool) -> None:
    if start_new_model:
        moved = rundir.archive(train_dir)
        if moved:
            print(f"moved the previous run to {moved}")
    check_resumable(train_dir, config)
    rundir.save_config(train_dir, config)


def _distill_options(config: dict) -> dict | None:
    distill = config["train"].get("distill")
    if not distill:
        return None
    return {"weight": float(distill["weight"]), "temperature": float(distill["temperature"])}


def _batches(config: dict, strategy, flags: dict, start_step: int, report, teacher=None):
    """(inputs, labels[, extra]) batches for every replica: one pipeline per worker, its own
    shard; with a teacher, its targets looked up by video id."""
    import tensorflow as tf

    global_batch = int(config["train"]["global_batch_size"])

    def dataset_fn(context):
        shard = None
        if context.num_input_pipelines > 1:
            shard = (context.num_input_pipelines, context.input_pipeline_id)
        ds = rundir.dataset_for(
            config,
            flags["train_data_pattern"],
            training=True,
            batch_size=context.get_per_replica_batch_size(global_batch),
            # A resumed run must not replay the batches it has already trained on.
            seed=int(flags["seed"]) + start_step + 7919 * context.input_pipeline_id,
            skip_corrupt=flags["skip_corrupt"],
            report=report,
            shard=shard,
        )
        if teacher is not None:
            ds = teacher.attach(ds)
        return ds.map(lambda b: rundir.training_pair(b, config))

    if config["train"]["replicas"] == 1 and flags["strategy"] == "default":
        return dataset_fn(tf.distribute.InputContext())
    return strategy.distribute_datasets_from_function(dataset_fn)


def _progress_bar(config: dict, flags: dict, start_step: int, steps: int, chief: bool):
    from tqdm import tqdm

    return tqdm(
        total=steps,
        initial=start_step,
        unit="step",
        desc=f"train {config['model']}",
        disable=not (flags["progress"] and chief),
        dynamic_ncols=True,
    )


def _finish(loop: TrainLoop, flags: dict, chief: bool, report) -> dict:
    """The run's summary; on the chief also model.keras, the curve PNG and the final line."""
    state, train_dir = loop.state, flags["train_dir"]
    result = {
        "train_dir": train_dir,
        **loop.results,
        "step": state.step,
        "loss": loop.last_loss,
        "weights_fingerprint": artefacts.fingerprint(state.net),
        "examples_per_s": loop.examples / loop.seconds if loop.examples else 0.0,
    }
    if not chief:
        return result
    info = {
        "step": state.step,
        "ema_decay": float(flags["ema_decay"]),
        "precise_bn_batches": int(loop.results.get("precise_bn_batches", 0)),
    }
    curve = None
    if artefacts.has_history(train_dir):
        curve = lambda png: artefacts.plot_history(train_dir, png)  # noqa: E731
    model_path = rundir.save_model(loop.judged_net, train_dir, info, curve)
    if report.skipped:
        print(report.summary())
    judged_by = []
    if info["ema_decay"]:
        judged_by.append(f"EMA {info['ema_decay']}")
    if info["precise_bn_batches"]:
        judged_by.append(f"batch-norm statistics of {info['precise_bn_batches']} batches")
    print(
        f"step {state.step}, loss {loop.last_loss:.4f}; model saved to {model_path}"
        + (f" ({', '.join(judged_by)})" if judged_by else "")
    )
    return result
