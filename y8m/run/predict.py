"""`y8m predict`: streaming top-K inference into the prediction store (and a Kaggle CSV)."""

from __future__ import annotations

import os

import numpy as np

from y8m.run import rundir
from y8m.errors import UsageError


def predict(
    train_dir: str | None = None,
    input_data_pattern: str | None = None,
    output_file: str | None = None,
    top_k: int = 100,
    batch_size: int = 256,
    split: str | None = None,
    model_name: str | None = None,
    csv: bool = False,
    gzip: bool = False,
    segments: bool = False,
    segment_max_pred: int = 100_000,
    segment_label_ids: str | None = None,
    skip_corrupt: bool = False,
    num_workers: int | None = None,
    worker_index: int | None = None,
    merge_timeout: float = 3600.0,
    progress: bool = True,
) -> dict:
    """Writes each video's top-K classes and scores for every record of INPUT_DATA_PATTERN.

    Args:
        train_dir: run directory written by `y8m train`.
        input_data_pattern: TFRecord glob (validate*.tfrecord, test*.tfrecord, ...).
        output_file: prediction store path (`.parquet` is added when it has no suffix).
        top_k: classes kept per video; ensembling wants more than the submission's 20.
        batch_size: videos per batch.
        split: split name recorded in the store (guessed from the file names when omitted).
        model_name: name ensembles match files by (default: the TRAIN_DIR folder name).
        csv: also write a Kaggle submission (OUTPUT_FILE with .csv) of the top 20.
        gzip: gzip the Kaggle CSV.
        segments: 2019: score every 5-second segment and write a `Class,Segments` submission.
        segment_max_pred: segments kept per class with --segments.
        segment_label_ids: the rated-class list (segment_label_ids.csv) for --segments.
        skip_corrupt: skip damaged shard tails instead of stopping.
        num_workers, worker_index: split the input files over workers (default: from
            TF_CONFIG, else one worker); worker 0 merges the parts into OUTPUT_FILE.
        merge_timeout: seconds worker 0 waits for the other workers' parts.

    Returns:
        dict with `output_file`, `num_videos`, `videos_per_s` (and `csv_file`).
    """
    import time

    from tqdm import tqdm

    from y8m.data.readers import CorruptReport, iterate
    from y8m.run.evaluate import _compiled_predict
    from y8m.predictions import PredictionWriter

    if not train_dir:
        raise UsageError("missing --train_dir: the run directory written by `y8m train`")
    if not input_data_pattern:
        raise UsageError(
            "missing --input_data_pattern: a glob such as 'data/synth/frame/test*.tfrecord'"
        )
    if not output_file:
        raise UsageError("missing --output_file: where the predictions go, e.g. preds/gnv_test")
    if segments:
        from y8m.run.segments import predict_segments

        return predict_segments(
            train_dir,
            input_data_pattern,
            output_file,
            batch_size=batch_size,
            segment_max_pred=segment_max_pred,
            segment_label_ids=segment_label_ids,
            progress=progress,
        )
    from y8m.run import sharding

    total, index = sharding.resolve(num_workers, worker_index)
    model, config = rundir.load_model(train_dir)
    name = model_name or os.path.basename(os.path.normpath(train_dir))
    split = split or _guess_split(input_data_pattern)
    report = CorruptReport()
    ds = rundir.dataset_for(
        config,
        input_data_pattern,
        training=False,
        batch_size=int(batch_size),
        skip_corrupt=skip_corrupt,
        report=report,
        shard=(total, index) if total > 1 else None,
    )
    predict_fn = _compiled_predict(model)
    seen, t0, keep_labels = 0, time.perf_counter(), None
    final_path = (
        output_file
        if os.path.splitext(os.path.basename(output_file))[1]
        else output_file + ".parquet"
    )
    part = sharding.part_path(final_path, index, total, ".parquet") if total > 1 else final_path
    writer = PredictionWriter(
        part,
        model_name=name,
        split=split,
        num_classes=int(config["num_classes"]),
        top_k=int(top_k),
        data_pattern=input_data_pattern,
        extra_metadata={"train_dir": os.path.abspath(train_dir)},
    )
    bar = tqdm(unit="video", desc=f"predict {name}", disable=not progress, dynamic_ncols=True)
    with writer:
        for batch in iterate(ds, input_data_pattern):
            p = np.asarray(predict_fn(rundir.model_inputs(batch, config)), np.float32)
            if keep_labels is None:  # test records carry no labels: then none are stored
                keep_labels = bool(batch["labels"].any())
            ids = [x.decode() for x in batch["id"]]
            writer.add_batch(ids, p, labels=batch["labels"] if keep_labels else None)
            seen += len(ids)
            bar.update(len(ids))
    bar.close()
    elapsed = time.perf_counter() - t0
    if total > 1:
        if index != 0:
            print(f"worker {index}/{total}: wrote {seen} videos to {part}; worker 0 merges")
            return {
                "output_file": part,
                "num_videos": seen,
                "videos_per_s": seen / max(elapsed, 1e-9),
            }
        parts = [sharding.part_path(final_path, i, total, ".parquet") for i in range(total)]
        sharding.wait_for(parts, merge_timeout)
        seen = sharding.merge_prediction_parts(parts, final_path)
        writer.path = final_path
    result = {
        "output_file": writer.path,
        "num_videos": seen,
        "videos_per_s": seen / max(elapsed, 1e-9),
    }
    if csv:
        from submissions.formats import write_video_submission
        from y8m.predictions import load_predictions

        stored = load_predictions(writer.path)
        csv_path = os.path.splitext(writer.path)[0] + (".csv.gz" if gzip else ".csv")
        write_video_submission(
            csv_path,
            stored.ids,
            stored.classes,
            stored.scores,
            version=int(config["data"]["version"]),
        )
        result["csv_file"] = csv_path
    if report.skipped:
        print(report.summary())
    print(
        f"wrote {seen} videos' top-{writer.top_k} to {writer.path} ({result['videos_per_s']:.0f} videos/s)"
        + (f" and {result['csv_file']}" if csv else "")
    )
    return result


def _guess_split(pattern: str) -> str:
    base = os.path.basename(pattern)
    for split in ("train", "validate", "test"):
        if base.startswith(split):
            return split
    return "unknown"
