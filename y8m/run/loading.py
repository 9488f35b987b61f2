"""Loading a run's model for eval, predict, segments and export: which weights, and that
their batch-norm statistics are the model's own.

`--checkpoint` chooses: `latest` (default: model.keras when it holds the newest step, else
the newest checkpoint), `best` (the step of the highest validation GAP in history.csv) or a
step number. A checkpoint's batch-norm statistics are the training loop's lagging moving
averages, so they are re-estimated from the run's training data (precise batch-norm
statistics) unless `--precise_bn_batches=0`; model.keras already holds re-estimated ones.
"""

from __future__ import annotations

import os
import zipfile

from y8m.errors import UsageError
from y8m.run import judged, rundir


def load_model(
    train_dir: str,
    checkpoint: str | int | None = None,
    precise_bn_batches: int | None = None,
    progress: bool = True,
):
    """The model a run is judged by. Returns (model, config).

    Args:
        train_dir: run directory.
        checkpoint: None or "latest", "best", or a step (int or digits).
        precise_bn_batches: training batches for the batch-norm statistics of a checkpoint
            (default: the run's --precise_bn_batches, 200 for runs that predate it; 0 keeps
            the checkpoint's own).
    """
    config = rundir.load_config(train_dir)
    n = _num_batches(config, precise_bn_batches)
    choice = _choose(train_dir, checkpoint)
    if choice == "model":
        import keras

        import frame_models  # noqa: F401  (registers the layers model.keras names)

        rundir.check_model(train_dir)
        model_path = rundir.path(train_dir, rundir.MODEL_FILE)
        try:
            model = keras.models.load_model(model_path, compile=False)
        except (OSError, ValueError, zipfile.BadZipFile, KeyError) as err:
            raise UsageError(
                f"{model_path} is damaged ({str(err).splitlines()[0][:100]}): train again or "
                "pass --checkpoint=STEP"
            ) from None
        if not rundir.model_info(train_dir):  # written before model.keras held precise ones
            _announce(judged.reestimate(model, config, n, progress=progress), n)
        return model, config
    if choice == "float16":  # a `y8m export --dtype=float16` archive, unpacked
        model = rundir.build_model(config)
        rundir.load_float16_weights(model, rundir.path(train_dir, rundir.FLOAT16_WEIGHTS))
        return model, config
    prefixes, fall_back = choice
    return _from_checkpoint(train_dir, config, prefixes, fall_back, n, progress), config


def _num_batches(config: dict, given) -> int:
    if given is not None:
        if int(given) < 0:
            raise UsageError(f"--precise_bn_batches must be >= 0, got {given}")
        return int(given)
    return int(config.get("train", {}).get("precise_bn_batches", 200))


def _choose(train_dir: str, checkpoint) -> str | list[str]:
    """ "model", "float16", or the checkpoint prefixes to try, newest first."""
    kept = rundir.checkpoints(train_dir)
    if checkpoint in (None, "", "latest"):
        info = rundir.model_info(train_dir)
        has_model = os.path.exists(rundir.path(train_dir, rundir.MODEL_FILE))
        if has_model and (not kept or info.get("step", -1) >= kept[-1][0]):
            return "model"
        if kept:
            return [p for _, p in kept], True
        if os.path.exists(rundir.path(train_dir, rundir.FLOAT16_WEIGHTS)):
            return "float16"
        if has_model:
            return "model"
        raise UsageError(
            f"{train_dir!r} has a config but no checkpoint or {rundir.MODEL_FILE}: train it first"
        )
    step = rundir.best_step(train_dir) if checkpoint == "best" else _step(checkpoint)
    prefixes = [p for s, p in kept if s == step]
    if not prefixes:
        steps = ", ".join(str(s) for s, _ in kept) or "none"
        raise UsageError(
            f"{train_dir!r} keeps no checkpoint of step {step} (kept: {steps}); "
            "raise --keep_checkpoints to keep more"
        )
    return prefixes, False


def _step(checkpoint) -> int:
    try:
        return int(checkpoint)
    except (TypeError, ValueError):
        raise UsageError(
            f"--checkpoint must be latest, best or a step number, got {checkpoint!r}"
        ) from None


def _from_checkpoint(train_dir, config, prefixes, fall_back, num_batches, progress):
    import tensorflow as tf

    net = rundir.build_model(config)
    optimizer = None
    if float(config.get("train", {}).get("ema_decay", 0.0)) > 0:
        from y8m.run.training.state import make_optimizer

        train = config["train"]
        optimizer, _ = make_optimizer(
            train, int(train.get("global_batch_size", train["batch_size"]))
        )
        optimizer.build(net.trainable_variables)
    parts = {"model": net} if optimizer is None else {"model": net, "optimizer": optimizer}
    if fall_back:
        rundir.restore_newest_intact(tf.train.Checkpoint(**parts), train_dir, prefixes)
    else:  # an explicit step: never another one
        try:
            tf.train.Checkpoint(**parts).restore(prefixes[0]).expect_partial()
        except rundir.checkpoint_errors(tf) as err:
            raise UsageError(
                f"checkpoint {prefixes[0]} is damaged ({str(err).splitlines()[0][:120]})"
            ) from None
    model = judged.judged_copy(config, net, optimizer) if optimizer is not None else net
    _announce(judged.reestimate(model, config, num_batches, progress=progress), num_batches)
    return model


def _announce(figures: dict, asked: int) -> None:
    if figures["batches"]:
        print(
            f"batch-norm statistics re-estimated on {figures['batches']} training batches "
            f"({figures['seconds']:.1f} s; --precise_bn_batches=0 keeps the checkpoint's)"
        )
