"""`y8m eval`: streaming GAP@k, Hit@1, PERR, mAP and loss of a trained run over a record glob."""

from __future__ import annotations

import json
import time

import numpy as np

from y8m.run import rundir
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
    num_workers: int | None = None,
    worker_index: int | None = None,
    merge_timeout: float = 3600.0,
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
        num_workers, worker_index: split the input files over workers (default: from
            TF_CONFIG, else one worker); worker 0 merges their metrics and writes eval.json.
        merge_timeout: seconds worker 0 waits for the other workers.

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
        from y8m.run.segments import evaluate_segments

        return evaluate_segments(
            train_dir,
            eval_data_pattern,
            batch_size=batch_size,
            output_file=output_file,
            progress=progress,
        )
    from y8m.run import sharding

    total, index = sharding.resolve(num_workers, worker_index)
    model, config = rundir.load_model(train_dir)
    evaluator = Evaluator(int(config["num_classes"]), top_k=int(top_k))
    report = CorruptReport()
    ds = rundir.dataset_for(
        config,
        eval_data_pattern,
        training=False,
        batch_size=int(batch_size),
        skip_corrupt=skip_corrupt,
        report=report,
        shard=(total, index) if total > 1 else None,
    )
    predict_fn = _compiled_predict(model)
    loss_sum, seen, t0 = 0.0, 0, time.perf_counter()
    eps = 1e-5  # the official cross-entropy epsilon
    bar = tqdm(unit="video", desc="eval", disable=not progress, dynamic_ncols=True)
    for batch in iterate(ds, eval_data_pattern):
        p = np.asarray(predict_fn(rundir.model_inputs(batch, config)), np.float32)
        y = batch["labels"]
        loss_sum += float(-(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps)).sum())
        evaluator.update(p, y)
        seen += len(y)
        bar.update(len(y))
        if max_videos and seen >= int(max_videos):
            break
    bar.close()
    if total > 1:
        evaluator, loss_sum, seen = _merge_workers(
            evaluator, loss_sum, seen, train_dir, total, index, merge_timeout
        )
        if evaluator is None:
            print(f"worker {index}/{total}: evaluated {seen} videos; worker 0 merges")
            return {"num_videos": seen, "worker_index": index}
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
    with atomic_open(rundir.path(train_dir, rundir.EVAL_FILE), "w") as f:
        json.dump(result, f, indent=2)
    return result


def _merge_workers(evaluator, loss_sum, seen, train_dir, total, index, timeout):
    """Saves this worker's evaluator state; worker 0 merges every worker's. Returns
    (merged evaluator or None on other workers, total loss sum, total videos)."""
    import os
    import shutil

    from y8m.run import sharding
    from y8m.fileio import atomic_path

    folder = rundir.path(train_dir, "eval-parts")
    os.makedirs(folder, exist_ok=True)
    state = evaluator.state()
    state["loss"] = np.array([loss_sum, seen], np.float64)
    mine = sharding.part_path(os.path.join(folder, "eval"), index, total, ".npz")
    with atomic_path(mine) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **state)
    if index != 0:
        return None, loss_sum, seen
    parts = [
        sharding.part_path(os.path.join(folder, "eval"), i, total, ".npz") for i in range(total)
    ]
    sharding.wait_for(parts, timeout)
    merged = type(evaluator)(evaluator.num_classes, top_k=evaluator.top_k)
    loss_sum, seen = 0.0, 0
    for part in parts:
        with np.load(part) as data:
            state = {k: data[k] for k in data.files}
        merged.merge(state)
        loss_sum += float(state["loss"][0])
        seen += int(state["loss"][1])
    shutil.rmtree(folder, ignore_errors=True)
    return merged, loss_sum, seen


def _compiled_predict(model):
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def predict(inputs):
        return tf.cast(model(inputs, training=False), tf.float32)

    return predict
