"""`y8m predict`: streaming top-K inference into the prediction store (and a Kaggle CSV)."""

from __future__ import annotations

import os
import time

import numpy as np

from y8m.errors import UsageError, integer, number
from y8m.fileio import atomic_files
from y8m.run import rundir, sharding
from y8m.run.inference import compiled_predict
from y8m.run.loading import load_model
from y8m.run.quantize import check_precision, model_bytes, quantized_weights


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
    checkpoint: str = "latest",
    precise_bn_batches: int | None = None,
    num_workers: int | None = None,
    worker_index: int | None = None,
    merge: bool = False,
    merge_timeout: float = 0.0,
    videos: str | None = None,
    inception_graph: str | None = None,
    inception_weights: str | None = None,
    pca_dir: str | None = None,
    vggish_weights: str | None = None,
    vggish_pca: str | None = None,
    no_audio: bool = False,
    max_frames: int = 300,
    skip_bad: bool = False,
    vocabulary: str | None = None,
    precision: str = "float32",
    model_file: str | None = None,
    config_from: str | None = None,
    progress: bool = True,
) -> dict:
    """Writes each video's top-K classes and scores for every record of INPUT_DATA_PATTERN.

    Args:
        train_dir: run directory written by `y8m train`.
        input_data_pattern: TFRecord glob (validate*.tfrecord, test*.tfrecord, ...).
        output_file: prediction store path (`.parquet` is added unless it ends with it; a
            `.csv` name is refused: --csv writes the CSV beside the store).
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
        checkpoint: latest (model.keras when it holds the newest step, else the newest intact
            checkpoint), best (highest validation GAP in history.csv) or a step number.
        precise_bn_batches: training batches that re-estimate a checkpoint's batch-norm
            statistics (default: the run's, 200 before it recorded one; 0 keeps them).
        num_workers, worker_index: split the input files over workers (default: from
            TF_CONFIG, else one worker); each writes a part beside OUTPUT_FILE and the last
            to finish merges them into OUTPUT_FILE (docs/distributed.md).
        merge: only merge the worker parts found beside OUTPUT_FILE (after a worker died
            before merging, or for parts written elsewhere); needs just --output_file
            (and --train_dir with --csv).
        merge_timeout: with --merge, seconds to wait for parts still being written (a bar
            names how many); 0 merges at once or names the missing parts.
        videos: instead of records, a glob of video files: their features are extracted in
            memory as `y8m extract` does (the same network and PCA flags, docs/extract.md).
        inception_graph, inception_weights, pca_dir, vggish_weights, vggish_pca, no_audio,
            max_frames, skip_bad: with --videos, as `y8m extract`.
        vocabulary: vocabulary.csv: also write OUTPUT.names.csv, each video's top 20 classes
            with their names, and print the first videos' top 3.
        precision: float32, float16 or int8: predict with the weights as stored at that
            precision (`y8m.run.quantize`); the store records `precision` and `model_bytes`
            (the weights' stored size), the costs of `y8m ensemble --max_mb`.
        model_file: instead of --train_dir, a .keras model (a `y8m pack` ensemble): its config
            comes from the JSON `pack` wrote beside it, or from --config_from.
        config_from: with --model_file, the run whose config.json describes its inputs.

    Returns:
        dict with `output_file`, `num_videos`, `videos_per_s` (and `csv_file`).
    """
    if not output_file:
        raise UsageError("missing --output_file: where the predictions go, e.g. preds/gnv_test")
    final_path = store_path(output_file)
    csv_path = submission_path(final_path, gzip) if csv else None
    if merge:
        return _merge_step(train_dir, final_path, csv_path, merge_timeout, progress)
    if model_file and train_dir:
        raise UsageError("pass --train_dir or --model_file, not both")
    if not train_dir and not model_file:
        raise UsageError("missing --train_dir: the run directory written by `y8m train`")
    if videos and input_data_pattern:
        raise UsageError("pass --videos or --input_data_pattern, not both")
    if not input_data_pattern and not videos:
        raise UsageError(
            "missing --input_data_pattern: a glob such as 'data/synth/frame/test*.tfrecord' "
            "(or --videos='clips/*.mp4' for video files)"
        )
    source = None
    if videos:
        if segments or (num_workers or 1) > 1:
            raise UsageError("--videos predicts whole videos on one worker: drop --segments")
        flags = dict(inception_graph=inception_graph, inception_weights=inception_weights,
                     pca_dir=pca_dir, vggish_weights=vggish_weights, vggish_pca=vggish_pca,
                     no_audio=bool(no_audio), max_frames=integer("max_frames", max_frames, 1, 300))  # fmt: skip
        source = {"videos": videos, "flags": flags, "skip_bad": bool(skip_bad)}
        input_data_pattern = videos
    top_k, batch_size = integer("top_k", top_k, 1), integer("batch_size", batch_size, 1)
    precision = check_precision(precision)
    if segments and precision != "float32":
        raise UsageError("--precision applies to video-level predictions: drop it with --segments")
    weights = {"checkpoint": checkpoint, "precise_bn_batches": precise_bn_batches}
    if model_file:
        if segments or precision != "float32":
            raise UsageError("--model_file predicts videos with its stored weights: drop "
                             "--segments and --precision")  # fmt: skip
        weights = {"model_file": model_file, "config_from": config_from}
    if segments:
        from y8m.run.segments import predict_segments

        return predict_segments(
            train_dir,
            input_data_pattern,
            output_file,
            batch_size=batch_size,
            segment_max_pred=integer("segment_max_pred", segment_max_pred, 1),
            segment_label_ids=segment_label_ids,
            progress=progress,
            weights=weights,
            model_name=model_name,
        )
    total, index = sharding.resolve(num_workers, worker_index)
    store = dict(
        model_name=model_name or _default_name(train_dir, model_file),
        split=split or ("videos" if source else _guess_split(input_data_pattern)),
        top_k=top_k,
    )
    job = (train_dir, input_data_pattern, store, batch_size, skip_corrupt, (total, index))

    def write(path):
        return _write_store(*job, path, progress, weights, source, precision)

    if total == 1:
        result = _commit(final_path, csv_path, write)
        if vocabulary:
            result["names_file"] = write_names(final_path, vocabulary)
        return result
    part = sharding.part_path(final_path, index, total, ".parquet")
    seen, seconds, _, config = write(part)
    merging, missing = sharding.claim_merge(final_path, total, ".parquet")
    if not merging:
        command = f"y8m predict --merge --output_file={output_file}"
        print(sharding.waiting_message(index, total, missing, command))
        return {"output_file": part, "num_videos": seen, "videos_per_s": seen / max(seconds, 1e-9)}
    try:
        return _commit_merge(
            final_path, csv_path, sharding.all_parts(final_path, total, ".parquet"), config
        )
    finally:
        sharding.release_merge(final_path)


def store_path(output_file: str) -> str:
    """The prediction store OUTPUT_FILE names: `.parquet` added unless it ends with it (so
    `a.v2` and `a.v3` are two stores with two CSVs); a CSV name is refused."""
    name = os.path.basename(output_file).lower()
    if name.endswith((".csv", ".gz")):
        raise UsageError(
            f"--output_file={output_file} names the prediction store (Parquet), not the CSV: "
            "--csv writes the Kaggle CSV beside the store; pass the name without .csv"
        )
    return output_file if name.endswith(".parquet") else output_file + ".parquet"


def submission_path(store: str, gzip: bool) -> str:
    """The Kaggle CSV beside a store: `x.parquet` -> `x.csv` (`x.csv.gz` with --gzip)."""
    return store[: -len(".parquet")] + (".csv.gz" if gzip else ".csv")


def _commit(final_path, csv_path, write) -> dict:
    """Writes the store (and its CSV, as one unit with it) with `write(path)`."""
    if csv_path is None:
        seen, seconds, report, config = write(final_path)
    else:
        manifest = final_path[: -len(".parquet")] + ".manifest.json"
        with atomic_files([final_path, csv_path], manifest) as temporaries:
            seen, seconds, report, config = write(temporaries[final_path])
            _write_csv(temporaries[final_path], temporaries[csv_path], config)
    return _summary(final_path, csv_path, seen, seconds, report)


def _commit_merge(final_path, csv_path, parts, config) -> dict:
    """Merges worker parts into the store (and CSV); the parts go only once it is in place."""

    def write(path):
        return sharding.merge_prediction_parts(parts, path, remove=False), 0.0, None, config

    result = _commit(final_path, csv_path, write)
    for part in parts:
        os.remove(part)
    return result


def _merge_step(train_dir, final_path, csv_path, merge_timeout, progress) -> dict:
    config = rundir.load_config(train_dir) if train_dir else None
    if csv_path and config is None:
        raise UsageError("--merge --csv needs --train_dir (the run's release names the CSV format)")
    wait = number("merge_timeout", merge_timeout, 0)
    parts = sharding.parts_for_merge(final_path, ".parquet", wait, progress)
    result = _commit_merge(final_path, csv_path, parts, config)
    sharding.release_merge(final_path)  # a claim left by a worker killed mid-merge
    return result


def _write_store(
    train_dir,
    pattern,
    store,
    batch_size,
    skip_corrupt,
    worker,
    path,
    progress,
    weights,
    source=None,
    precision="float32",
):
    """Streams the run's top-K for every video of PATTERN (this worker's files) into PATH,
    with the weights as stored at PRECISION.

    Returns (videos written, seconds, the corrupt-record report, the run's config)."""
    from tqdm import tqdm

    from y8m.data.readers import CorruptReport, iterate
    from y8m.predictions import PredictionWriter

    total, index = worker
    if "model_file" in weights:
        from y8m.run.pack import load_packed

        model, config = load_packed(weights["model_file"], weights["config_from"])
        train_dir = weights["model_file"]
    else:
        model, config = load_model(train_dir, progress=progress, **weights)
    stored_bytes = _set_precision(model, precision)
    report = CorruptReport()
    skipped: dict[str, str] = {}
    if source is not None:
        from y8m.run.video_input import video_batches

        batches = video_batches(
            config, source["videos"], source["flags"], int(batch_size), source["skip_bad"], skipped
        )
    else:
        ds = rundir.dataset_for(
            config,
            pattern,
            training=False,
            batch_size=int(batch_size),
            skip_corrupt=skip_corrupt,
            report=report,
            shard=(total, index) if total > 1 else None,
        )
        batches = iterate(ds, pattern)
    predict_fn = compiled_predict(model)
    writer = PredictionWriter(
        path,
        num_classes=int(config["num_classes"]),
        data_pattern=pattern,
        extra_metadata={
            "train_dir": os.path.abspath(train_dir),
            "run": os.path.basename(os.path.normpath(train_dir)),
            "precision": precision,
            "model_bytes": stored_bytes,
        },
        **store,
    )
    seen, keep_labels, t0 = 0, None, time.perf_counter()
    bar = tqdm(
        unit="video",
        desc=f"predict {store['model_name']}",
        disable=not progress,
        dynamic_ncols=True,
    )
    with writer:
        for batch in batches:
            p = np.asarray(predict_fn(rundir.model_inputs(batch, config)), np.float32)
            if keep_labels is None:  # test records carry no labels: then none are stored
                keep_labels = bool(batch["labels"].any())
            ids = [x.decode() for x in batch["id"]]
            writer.add_batch(ids, p, labels=batch["labels"] if keep_labels else None)
            seen += len(ids)
            bar.update(len(ids))
    bar.close()
    for video, reason in skipped.items():
        print(f"skipped {video}: {reason}")
    return seen, time.perf_counter() - t0, report, config


def _default_name(train_dir, model_file) -> str:
    """The run folder's name, or a model file's stem (`ensemble.keras` -> `ensemble`)."""
    if model_file:
        return os.path.splitext(os.path.basename(model_file))[0]
    return os.path.basename(os.path.normpath(train_dir))


def _set_precision(model, precision: str) -> int:
    """Gives MODEL its weights as stored at PRECISION (in place); returns their stored bytes."""
    if precision == "float32":
        return model_bytes(model, precision)
    decoded, size = quantized_weights(model, precision)
    model.set_weights(decoded)
    return size


def write_names(store: str, vocabulary: str, top: int = 20, show: int = 5) -> str:
    """STORE's top classes with their vocabulary names in STORE.names.csv (written atomically);
    prints the first SHOW videos' top 3. Returns the file's path."""
    import csv

    from y8m.data.vocabulary import read_vocabulary
    from y8m.fileio import atomic_open
    from y8m.predictions import load_predictions

    names = read_vocabulary(vocabulary)
    stored = load_predictions(store)
    path = store[: -len(".parquet")] + ".names.csv"
    with atomic_open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["VideoId", "Rank", "Class", "Name", "Vertical", "Score"])
        for video, classes, scores in zip(stored.ids, stored.classes, stored.scores):
            for rank, (c, score) in enumerate(zip(classes[:top], scores[:top]), start=1):
                if c >= 0:
                    entry = names.get(int(c), {"name": "", "vertical": ""})
                    writer.writerow([video, rank, int(c), entry["name"], entry["vertical"],
                                     f"{float(score):.6f}"])  # fmt: skip
    for video, classes, scores in list(zip(stored.ids, stored.classes, stored.scores))[:show]:
        best = ", ".join(
            f"{names.get(int(c), {'name': str(c)})['name'] or c} {float(s):.3f}"
            for c, s in zip(classes[:3], scores[:3])
            if c >= 0
        )
        print(f"{video}: {best}")
    print(f"wrote {path}")
    return path


def _write_csv(store: str, csv_path: str, config: dict) -> None:
    from submissions.formats import write_video_submission
    from y8m.predictions import load_predictions

    stored = load_predictions(store)
    write_video_submission(
        csv_path, stored.ids, stored.classes, stored.scores, version=int(config["data"]["version"])
    )


def _summary(path, csv_path, seen, seconds, report) -> dict:
    result = {"output_file": path, "num_videos": seen, "videos_per_s": seen / max(seconds, 1e-9)}
    if csv_path:
        result["csv_file"] = csv_path
    if report is not None and report.skipped:
        print(report.summary())
    rate = f" ({result['videos_per_s']:.0f} videos/s)" if seconds else ""
    print(f"wrote {seen} videos to {path}{rate}" + (f" and {csv_path}" if csv_path else ""))
    return result


def _guess_split(pattern: str) -> str:
    base = os.path.basename(pattern)
    for split in ("train", "validate", "test"):
        if base.startswith(split):
            return split
    return "unknown"
