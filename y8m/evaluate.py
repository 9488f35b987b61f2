"""`y8m eval`: streaming GAP@k, Hit@1, PERR, mAP and loss of a trained run over a record glob."""

from __future__ import annotations

import json
import time

import numpy as np

from y8m import runs
from y8m.errors import UsageError
from y8m.fileio import atomic_open


def evaluate(
    train_dir: str | None = None,
    eval_data_pattern: str | None = None,
    batch_size: int = 256,
    top_k: int = 20,
    max_videos: int | None = None,
    segments: bool = False,
    output_file: str | None = None,
    skip_corrupt: bool = False,
    progress: bool = True,
) -> dict:
    """Evaluates the run in TRAIN_DIR on every video of EVAL_DATA_PATTERN.

    Args:
        train_dir: run directory written by `y8m train`.
        eval_data_pattern: TFRecord glob with labels (e.g. validate*.tfrecord).
        batch_size: videos per batch.
        top_k: k of GAP@k (20 on the leaderboard).
        max_videos: stop after this many videos (all by default).
        segments: 2019 segment evaluation: segment mAP against the rated segments and a
            `Class,Segments` submission (see --output_file).
        output_file: with --segments, where the segment submission goes
            (default TRAIN_DIR/segments_submission.csv).
        skip_corrupt: skip damaged shard tails instead of stopping.

    Returns:
        dict with gap, hit_at_one, perr, map, loss, num_videos (written to TRAIN_DIR/eval.json).
    """
    from tqdm import tqdm

    from y8m.data.readers import CorruptReport, iterate
    from y8m.metrics import Evaluator

    if not train_dir:
        raise UsageError("missing --train_dir: the run directory written by `y8m train`")
    if not eval_data_pattern:
        raise UsageError(
            "missing --eval_data_pattern: a glob such as 'data/synth/frame/validate*.tfrecord'"
        )
    if segments:
        from y8m.segments import evaluate_segments

        return evaluate_segments(
            train_dir,
            eval_data_pattern,
            batch_size=batch_size,
            output_file=output_file,
            progress=progress,
        )
    model, config = runs.load_model(train_dir)
    evaluator = Evaluator(int(config["num_classes"]), top_k=int(top_k))
    report = CorruptReport()
    ds = runs.dataset_for(
        config,
        eval_data_pattern,
        training=False,
        batch_size=int(batch_size),
        skip_corrupt=skip_corrupt,
        report=report,
    )
    predict_fn = _compiled_predict(model)
    loss_sum, seen, t0 = 0.0, 0, time.perf_counter()
    eps = 1e-5  # the official cross-entropy epsilon
    bar = tqdm(unit="video", desc="eval", disable=not progress, dynamic_ncols=True)
    for batch in iterate(ds, eval_data_pattern):
        p = np.asarray(predict_fn(runs.model_inputs(batch, config)), np.float32)
        y = batch["labels"]
        loss_sum += float(-(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps)).sum())
        evaluator.update(p, y)
        seen += len(y)
        bar.update(len(y))
        if max_videos and seen >= int(max_videos):
            break
    bar.close()
    if seen == 0:
        raise UsageError(f"no videos read from {eval_data_pattern!r}")
    result = {k: float(v) for k, v in evaluator.result().items()}
    result.update(
        loss=loss_sum / seen,
        num_videos=seen,
        top_k=int(top_k),
        eval_data_pattern=eval_data_pattern,
        model=config["model"],
        seconds=round(time.perf_counter() - t0, 2),
    )
    print(f"{'metric':<12} {'value':>10}")
    for key in ("gap", "hit_at_one", "perr", "map", "loss"):
        print(f"{key:<12} {result[key]:>10.4f}")
    print(f"{'videos':<12} {seen:>10}")
    if report.skipped:
        print(report.summary())
    with atomic_open(runs.path(train_dir, runs.EVAL_FILE), "w") as f:
        json.dump(result, f, indent=2)
    return result


def _compiled_predict(model):
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def predict(inputs):
        return tf.cast(model(inputs, training=False), tf.float32)

    return predict
