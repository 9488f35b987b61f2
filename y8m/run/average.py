"""`y8m average`: a model whose weights are the mean of a run's last N checkpoints (as the
2018 winners averaged checkpoints), with batch-norm statistics re-estimated for those weights.

The result is a run directory of its own (config.json, model.keras, model.json), so
`y8m eval`, `predict` and `export` take it as `--train_dir`.
"""

from __future__ import annotations

import os

import numpy as np

from y8m.errors import UsageError
from y8m.run import judged, rundir


def average(
    train_dir: str | None = None,
    last: int = 5,
    output_dir: str | None = None,
    precise_bn_batches: int | None = None,
    progress: bool = True,
) -> dict:
    """Writes OUTPUT_DIR with the mean of TRAIN_DIR's last LAST checkpoints' weights.

    Args:
        train_dir: run directory written by `y8m train` (its kept checkpoints: --keep_checkpoints).
        last: N, the newest checkpoints averaged.
        output_dir: the averaged run (default TRAIN_DIR-averageN).
        precise_bn_batches: training batches for the averaged weights' batch-norm statistics
            (default: the run's --precise_bn_batches; 0 keeps the averaged moving statistics).

    Returns:
        dict with `output_dir`, `steps` (the averaged checkpoints), `precise_bn_batches`.
    """
    if not train_dir:
        raise UsageError("missing --train_dir: the run whose checkpoints to average")
    if int(last) < 1:
        raise UsageError(f"--last must be a positive integer, got {last!r}")
    config = rundir.load_config(train_dir)
    kept = [(s, p) for s, p in rundir.checkpoints(train_dir) if os.path.exists(p + ".index")]
    if not kept:
        raise UsageError(f"{train_dir!r} keeps no checkpoint to average: train it first")
    chosen = kept[-int(last) :]
    if len(chosen) < int(last):
        print(
            f"{train_dir} keeps {len(chosen)} checkpoint(s), fewer than --last={last}: averaging those"
        )
    model = _mean_of(config, [p for _, p in chosen], progress)
    n = int(
        config["train"].get("precise_bn_batches", 200)
        if precise_bn_batches is None
        else precise_bn_batches
    )
    figures = judged.reestimate(model, config, n, progress=progress)
    output_dir = output_dir or f"{os.path.normpath(train_dir)}-average{len(chosen)}"
    steps = [s for s, _ in chosen]
    rundir.save_config(
        output_dir,
        {**config, "averaged_from": {"train_dir": os.path.abspath(train_dir), "steps": steps}},
    )
    info = {
        "step": steps[-1],
        "averaged_steps": steps,
        "precise_bn_batches": figures["batches"],
        "ema_decay": 0.0,
    }
    path = rundir.save_model(model, output_dir, info)
    print(
        f"averaged {len(steps)} checkpoints (steps {', '.join(map(str, steps))}) into {path}"
        + (f"; batch-norm statistics of {figures['batches']} batches" if figures["batches"] else "")
    )
    return {"output_dir": output_dir, "steps": steps, "precise_bn_batches": figures["batches"]}


def _mean_of(config: dict, prefixes: list[str], progress: bool):
    """A model holding the float64 mean of every weight over the checkpoints."""
    import tensorflow as tf
    from tqdm import tqdm

    model = rundir.build_model(config)
    total = None
    for prefix in tqdm(prefixes, unit="checkpoint", desc="average", disable=not progress):
        try:
            tf.train.Checkpoint(model=model).restore(prefix).expect_partial()
        except rundir.checkpoint_errors(tf) as err:
            raise UsageError(
                f"checkpoint {prefix} is damaged ({str(err).splitlines()[0][:120]})"
            ) from None
        weights = [np.asarray(w, np.float64) for w in model.get_weights()]
        total = weights if total is None else [t + w for t, w in zip(total, weights)]
    current = model.get_weights()
    model.set_weights([(t / len(prefixes)).astype(c.dtype) for t, c in zip(total, current)])
    return model
