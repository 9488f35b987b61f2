"""`y8m eval`: streaming GAP@k, Hit@1, PERR, mAP and loss of a trained run over a record glob."""

from __future__ import annotations

import json
import os
import shutil
import time

import numpy as np

from y8m.errors import UsageError, integer, number
from y8m.fileio import atomic_open, atomic_path
from y8m.run import rundir, sharding
from y8m.run.inference import compiled_predict
from y8m.run.loading import load_model


def evaluate(
    train_dir: str | None = None,
    eval_data_pattern: str | None = None,
    batch_size: int = 256,
    top_k: int = 20,
    max_videos: int | None = None,
    segments: bool = False,
    output_file: str | None = None,
    skip_corrupt: bool = False,
    checkpoint: str = "latest",
    precise_bn_batches: int | None = None,
    num_workers: int | None = None,
    worker_index: int | None = None,
    merge: bool = False,
    merge_timeout: float = 0.0,
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
        checkpoint: latest (model.keras when it holds the newest step, else the newest intact
            checkpoint), best (highest validation GAP in history.csv) or a step number.
        precise_bn_batches: training batches that re-estimate a checkpoint's batch-norm
            statistics (default: the run's, 200 before it recorded one; 0 keeps them).
        num_workers, worker_index: split the input files over workers (default: from
            TF_CONFIG, else one worker); the last to finish merges their metrics and writes
            eval.json (docs/distributed.md).
        merge: only merge the worker parts in TRAIN_DIR/eval-parts (after a worker died
            before merging); needs just --train_dir.
        merge_timeout: with --merge, seconds to wait for parts still being written.

    Returns:
        dict with gap, hit_at_one, perr, map, loss, num_videos (written to TRAIN_DIR/eval.json).
    """
    if not train_dir:
        raise UsageError("missing --train_dir: the run directory written by `y8m train`")
    parts = _parts_prefix(train_dir)
    if merge:
        wait = number("merge_timeout", merge_timeout, 0)
        found = sharding.parts_for_merge(parts, ".npz", wait, progress)
        merged = _merge_parts(found)
        sharding.release_merge(parts)  # a claim left by a worker killed mid-merge
        return _report(train_dir, *merged, None)
    weights = {"checkpoint": checkpoint, "precise_bn_batches": precise_bn_batches}
    batch_size, top_k = integer("batch_size", batch_size, 1), integer("top_k", top_k, 1)
    if max_videos is not None:
        max_videos = integer("max_videos", max_videos, 1)
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
            weights=weights,
        )
    total, index = sharding.resolve(num_workers, worker_index)
    state, report = _evaluate_stream(
        train_dir,
        eval_data_pattern,
        batch_size,
        top_k,
        max_videos,
        skip_corrupt,
        (total, index),
        progress,
        weights,
    )
    if total > 1:
        _save_part(state, sharding.part_path(parts, index, total, ".npz"))
        merging, missing = sharding.claim_merge(parts, total, ".npz")
        if not merging:
            print(
                sharding.waiting_message(
                    index, total, missing, f"y8m eval --merge --train_dir={train_dir}"
                )
            )
            return {"num_videos": int(state["num_videos"]), "worker_index": index}
        try:
            merged = _merge_parts(sharding.all_parts(parts, total, ".npz"))
        finally:
            sharding.release_merge(parts)
        return _report(train_dir, *merged, report)
    return _report(train_dir, _evaluator_of(state), state, report)


def _parts_prefix(train_dir: str) -> str:
    return os.path.join(rundir.path(train_dir, "eval-parts"), "eval")


def _evaluate_stream(
    train_dir, pattern, batch_size, top_k, max_videos, skip_corrupt, worker, progress, weights
):
    """Streams this worker's files through the model. Returns (the state: the evaluator's
    arrays plus loss sum, video count and what the result names; the corrupt-record report)."""
    from tqdm import tqdm

    from y8m.data.readers import CorruptReport, iterate
    from y8m.metrics import Evaluator

    total, index = worker
    model, config = load_model(train_dir, progress=progress, **weights)
    evaluator = Evaluator(int(config["num_classes"]), top_k=int(top_k))
    report = CorruptReport()
    ds = rundir.dataset_for(
        config,
        pattern,
        training=False,
        batch_size=int(batch_size),
        skip_corrupt=skip_corrupt,
        report=report,
        shard=(total, index) if total > 1 else None,
    )
    predict_fn = compiled_predict(model)
    loss_sum, seen, t0 = 0.0, 0, time.perf_counter()
    eps = 1e-5  # the official cross-entropy epsilon
    bar = tqdm(unit="video", desc="eval", disable=not progress, dynamic_ncols=True)
    for batch in iterate(ds, pattern):
        p = np.asarray(predict_fn(rundir.model_inputs(batch, config)), np.float32)
        y = batch["labels"]
        loss_sum += float(-(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps)).sum())
        evaluator.update(p, y)
        seen += len(y)
        bar.update(len(y))
        if max_videos and seen >= int(max_videos):
            break
    bar.close()
    state = evaluator.state()
    state.update(
        loss_sum=np.float64(loss_sum),
        num_videos=np.int64(seen),
        seconds=np.float64(time.perf_counter() - t0),
        num_classes=np.int64(evaluator.num_classes),
        top_k=np.int64(evaluator.top_k),
        model=np.str_(config["model"]),
        eval_data_pattern=np.str_(pattern),
    )
    return state, report


def _save_part(state: dict, path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **state)


def _evaluator_of(state: dict):
    from y8m.metrics import Evaluator

    evaluator = Evaluator(int(state["num_classes"]), top_k=int(state["top_k"]))
    evaluator.merge(state)
    return evaluator


def _merge_parts(parts: list[str]):
    """(merged evaluator, summed state) of every worker's part; the parts are removed."""
    evaluator, total = None, None
    for part in parts:
        with np.load(part) as data:  # plain arrays only: allow_pickle stays False
            state = {k: data[k] for k in data.files}
        if evaluator is None:
            evaluator, total = _evaluator_of(state), dict(state)
        else:
            evaluator.merge(state)
            for key in ("loss_sum", "num_videos"):
                total[key] = total[key] + state[key]
            total["seconds"] = max(total["seconds"], state["seconds"])
    shutil.rmtree(os.path.dirname(parts[0]), ignore_errors=True)
    return evaluator, total


def _report(train_dir: str, evaluator, state: dict, report) -> dict:
    """Prints the metrics table and writes eval.json."""
    seen = int(state["num_videos"])
    if seen == 0:
        raise UsageError(f"no videos read from {str(state['eval_data_pattern'])!r}")
    result = {k: float(v) for k, v in evaluator.result().items()}
    result.update(
        loss=float(state["loss_sum"]) / seen,
        num_videos=seen,
        top_k=int(state["top_k"]),
        eval_data_pattern=str(state["eval_data_pattern"]),
        model=str(state["model"]),
        seconds=round(float(state["seconds"]), 2),
    )
    print(f"{'metric':<12} {'value':>10}")
    for key in ("gap", "hit_at_one", "perr", "map", "loss"):
        print(f"{key:<12} {result[key]:>10.4f}")
    print(f"{'videos':<12} {seen:>10}")
    if report is not None and report.skipped:
        print(report.summary())
    with atomic_open(rundir.path(train_dir, rundir.EVAL_FILE), "w") as f:
        json.dump(result, f, indent=2)
    return result
