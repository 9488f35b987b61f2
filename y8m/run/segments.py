"""The 2019 segment workflow: score every 5-second segment, keep the best per rated class.

As the official inference: each video is cut into consecutive 5-frame segments from frame 0
(the last one partial), the model scores each segment as a short video, scores are restricted
to the rated classes, and each class keeps its best `segment_max_pred` segments.
"""

from __future__ import annotations

import json
import os

import numpy as np

from y8m.data import specs
from y8m.errors import UsageError
from y8m.fileio import atomic_files, atomic_open
from y8m.run import rundir
from y8m.run.inference import compiled_predict
from y8m.run.loading import load_model


def cut_segments(batch: dict, feature_names, size: int = specs.SEGMENT_SIZE):
    """Cuts an ordered, padded frame batch into segments.

    Args:
        batch: reader batch with `id` [B], features [B, T, D] and `num_frames` [B].

    Returns:
        (segment ids [S] str, inputs dict with features [S, size, D] and num_frames [S]).
    """
    num_frames = batch["num_frames"].astype(np.int64)
    counts = -(-num_frames // size)  # ceil: the last, partial segment is kept
    video = np.repeat(np.arange(len(num_frames)), counts)
    start = (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)) * size
    window = start[:, None] + np.arange(size)[None, :]  # (S, size) frame positions
    inputs = {}
    for name in feature_names:
        x = batch[name]
        t = x.shape[1]
        # Positions past the padded length map to a zero frame.
        padded = np.concatenate([x, np.zeros_like(x[:, :1])], axis=1)
        inputs[name] = padded[video[:, None], np.minimum(window, t)]
    inputs["num_frames"] = np.minimum(num_frames[video] - start, size).astype(np.int32)
    ids = [specs.segment_id(batch["id"][v].decode(), s) for v, s in zip(video, start)]
    return ids, inputs


def _rated_classes(segment_label_ids: str | None, pattern: str) -> np.ndarray:
    from submissions.segments import load_segment_label_ids

    if segment_label_ids is None:
        # The release ships segment_label_ids.csv beside the records (y8m synth does too).
        first = sorted(__import__("glob").glob(pattern))[:1]
        for folder in (
            [os.path.dirname(first[0]), os.path.dirname(os.path.dirname(first[0]))] if first else []
        ):
            candidate = os.path.join(folder, specs.SEGMENT_LABEL_IDS_FILE)
            if os.path.exists(candidate):
                segment_label_ids = candidate
                break
    if segment_label_ids is None:
        raise UsageError(
            f"pass --segment_label_ids=PATH/{specs.SEGMENT_LABEL_IDS_FILE} (the rated classes)"
        )
    return load_segment_label_ids(segment_label_ids)


def _score_segments(
    train_dir, pattern, batch_size, segment_max_pred, segment_label_ids, progress, weights,
    scored=None,
):  # fmt: skip
    """Class id -> best segment ids; when SCORED is a dict it also gets `kept` (class id ->
    (segment ids, scores)), `rated_classes`, `num_classes` and the scored `segment_set`."""
    from tqdm import tqdm

    from submissions.segments import SegmentTopK
    from y8m.data.readers import iterate
    from y8m.segment_store import SegmentSet

    model, config = load_model(train_dir, progress=progress, **(weights or {}))
    if not config["data"]["frame_level"]:
        raise UsageError("--segments needs a frame-level model")
    rated = _rated_classes(segment_label_ids, pattern)
    topk = SegmentTopK(rated, max_per_class=int(segment_max_pred))
    ds = rundir.dataset_for(config, pattern, training=False, batch_size=int(batch_size))
    predict_fn = compiled_predict(model)
    segment_set = SegmentSet()
    bar = tqdm(unit="video", desc="segments", disable=not progress, dynamic_ncols=True)
    for batch in iterate(ds, pattern):
        ids, inputs = cut_segments(batch, config["data"]["feature_names"])
        if ids:
            topk.update(ids, np.asarray(predict_fn(inputs), np.float32))
            segment_set.update(ids)
        bar.update(len(batch["id"]))
    bar.close()
    result = topk.result()
    if scored is not None:
        scored.update(
            kept=_kept_scores(topk, result),
            rated_classes=[int(c) for c in rated],
            num_classes=int(config["num_classes"]),
            segment_set=segment_set,
        )
    return result


def _kept_scores(topk, result: dict) -> dict:
    """class id -> (segment ids as `result` lists them, their scores) from a SegmentTopK."""
    return {c: kept for c, kept in topk.scored_result().items() if c in result}


def predict_segments(
    train_dir,
    pattern,
    output_file,
    *,
    batch_size=64,
    segment_max_pred=specs.SEGMENT_MAX_PRED,
    segment_label_ids=None,
    progress=True,
    weights=None,
    model_name=None,
) -> dict:
    """Writes a `Class,Segments` submission of the best segments per rated class, and beside
    it (same stem, `.segments.parquet`) the segment store of their scores for
    `y8m ensemble --segments`; the two (and a `.segments.manifest.json`) form one set."""
    from submissions.formats import write_segment_submission
    from y8m.segment_store import segment_store_path, write_segment_store

    scored: dict = {}
    per_class = _score_segments(
        train_dir,
        pattern,
        batch_size,
        segment_max_pred,
        segment_label_ids,
        progress,
        weights,
        scored,
    )
    path = output_file if output_file.endswith((".csv", ".gz")) else output_file + ".csv"
    store = segment_store_path(path)
    metadata = {
        "model_name": model_name or os.path.basename(os.path.normpath(train_dir)),
        "num_classes": scored["num_classes"],
        "rated_classes": scored["rated_classes"],
        "segment_max_pred": int(segment_max_pred),
        "data_pattern": pattern,
        "num_segments": scored["segment_set"].count,
        "segment_set": scored["segment_set"].hexdigest(),
    }
    manifest = store[: -len(".parquet")] + ".manifest.json"
    with atomic_files([path, store], manifest) as tmp:
        write_segment_submission(tmp[path], per_class, gzip=path.endswith(".gz"))
        write_segment_store(tmp[store], scored["kept"], metadata)
    print(f"wrote {len(per_class)} classes' best segments to {path} (scores: {store})")
    return {"output_file": path, "segment_store": store, "num_classes": len(per_class)}


def evaluate_segments(
    train_dir,
    pattern,
    *,
    batch_size=64,
    output_file=None,
    segment_label_ids=None,
    progress=True,
    weights=None,
) -> dict:
    """Segment mAP of a run on 2019-style validation records (their rated segments)."""
    from submissions.formats import write_segment_submission
    from submissions.segments import segment_map
    from y8m.data import read_segment_ratings

    ratings = read_segment_ratings(pattern)
    if not len(ratings):
        raise UsageError(
            f"{pattern!r} has no rated segments: --segments needs 2019 validation records"
        )
    per_class = _score_segments(
        train_dir, pattern, batch_size, specs.SEGMENT_MAX_PRED, segment_label_ids, progress, weights
    )
    result = segment_map(per_class, ratings)
    output_file = output_file or rundir.path(train_dir, "segments_submission.csv")
    write_segment_submission(output_file, per_class)
    summary = {k: v for k, v in result.items() if isinstance(v, (int, float, str))}
    summary.update(submission=output_file, eval_data_pattern=pattern)
    print(
        f"segment mAP {summary.get('map', float('nan')):.4f} over {summary.get('num_classes', '?')} classes;"
        f" submission {output_file}"
    )
    with atomic_open(rundir.path(train_dir, "eval_segments.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return summary
