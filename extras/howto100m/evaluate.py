"""Retrieval evaluation, pair embedding and CrossTask localisation of a trained checkpoint.

Pairs are built as at training time: the clip and text options stored in the checkpoint
apply unless overridden.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import numpy as np
import torch
from tqdm import tqdm

from extras.howto100m.captions import load_captions, read_video_list
from extras.howto100m.checkpoint import load_net
from extras.howto100m.data import EvalPairs, PairMaker, PairOptions, usable_videos
from extras.howto100m.features import FPS_2D, FPS_3D, FeatureStore, num_seconds, second_vectors
from extras.howto100m.inference import embed_clips, embed_pairs, embed_sentences
from extras.howto100m.localize import (
    ALIGNMENTS,
    align_steps,
    alignment_scores,
    read_annotation,
    step_hits,
    task_recalls,
)
from extras.howto100m.model import Net
from extras.howto100m.retrieval import retrieval_metrics
from extras.howto100m.text import WordVectors
from extras.runtime.inputs import child_path
from y8m.errors import UsageError
from y8m.fileio import atomic_path


@dataclasses.dataclass
class DataSource:
    """Where test pairs come from; None options fall back to the checkpoint's."""

    captions: str
    features_2d: str
    word2vec: str
    features_3d: str = ""
    videos: str = ""
    min_time: float | None = None
    max_words: int | None = None
    word2vec_limit: int = 0


def _options(saved: dict, source: DataSource) -> PairOptions:
    fields = dataclasses.asdict(PairOptions())
    chosen = {name: saved.get(name, default) for name, default in fields.items()}
    if source.min_time is not None:
        chosen["min_time"] = source.min_time
    if source.max_words is not None:
        chosen["max_words"] = source.max_words
    return PairOptions(**chosen)


def _store(saved: dict, dir_2d: str, dir_3d: str) -> FeatureStore:
    return FeatureStore(dir_2d, dir_3d, saved.get("fps_2d", FPS_2D), saved.get("fps_3d", FPS_3D))


def _words(saved: dict, path: str, limit: int) -> WordVectors:
    return WordVectors.load(path, limit, saved.get("remove_stop_words", True))


def _check_dims(net: Net, video_dim: int, word_dim: int) -> None:
    if video_dim != net.video_dim or word_dim != net.we_dim:
        raise UsageError(
            f"the model takes {net.video_dim}-d clips and {net.we_dim}-d words but the data gives "
            f"{video_dim}-d clips and {word_dim}-d words; check --features_3d and --word2vec"
        )


def load_pairs(net: Net, saved: dict, source: DataSource) -> EvalPairs:
    """Every caption of the test videos as one pair, built with the checkpoint's options."""
    captions = load_captions(source.captions)
    store = _store(saved, source.features_2d, source.features_3d)
    split = read_video_list(source.videos) if source.videos else None
    videos = usable_videos(captions, store, split)
    words = _words(saved, source.word2vec, source.word2vec_limit)
    _check_dims(net, store.video_dim(videos[0]), words.dim)
    return EvalPairs(PairMaker(captions, store, words, _options(saved, source)), videos)


def evaluate_retrieval(
    checkpoint: str,
    source: DataSource,
    batch_size: int = 512,
    chunk_size: int = 1024,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    progress: bool = True,
) -> dict:
    """Text-to-video and video-to-text recall over all test pairs (see `retrieval_metrics`)."""
    net, payload = load_net(checkpoint)
    pairs = load_pairs(net, payload["data"], source)
    text, video = embed_pairs(net, pairs, batch_size, device, num_workers, progress)
    metrics = retrieval_metrics(text, video, chunk_size, device)
    metrics["checkpoint"] = payload["path"]
    return metrics


def retrieval_from_embeddings(path: str, chunk_size: int = 1024, device="cpu") -> dict:
    """Retrieval metrics of an `embed` output file."""
    if not os.path.isfile(path):
        raise UsageError(f"embeddings file {path!r} not found; make one with `embed`")
    with np.load(path) as data:
        if "text_embedding" not in data or "video_embedding" not in data:
            raise UsageError(f"{path} has no text_embedding/video_embedding arrays")
        return retrieval_metrics(
            data["text_embedding"], data["video_embedding"], chunk_size, device
        )


def embed_to_file(
    checkpoint: str,
    source: DataSource,
    output: str,
    batch_size: int = 512,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    progress: bool = True,
) -> int:
    """Writes the embeddings of every test pair to an .npz file.

    Arrays: `text_embedding`, `video_embedding` float32 [N, E]; `video_id`, `text` str [N];
    `start`, `end` float64 [N] (the grown clip windows, seconds).

    Returns:
        N.
    """
    net, payload = load_net(checkpoint)
    pairs = load_pairs(net, payload["data"], source)
    text, video = embed_pairs(net, pairs, batch_size, device, num_workers, progress)
    described = [pairs.describe(i) for i in range(len(pairs))]
    with atomic_path(output) as tmp:
        with open(tmp, "wb") as f:
            np.savez(
                f,
                text_embedding=text,
                video_embedding=video,
                video_id=np.array([d[0] for d in described]),
                start=np.array([d[1] for d in described], dtype=np.float64),
                end=np.array([d[2] for d in described], dtype=np.float64),
                text=np.array([d[3] for d in described]),
            )
    return len(pairs)


def localize_video(
    net: Net,
    step_embedding: torch.Tensor,
    streams: Sequence,
    window: float = 1.0,
    device: str | torch.device = "cpu",
    alignment: str = "official",
) -> np.ndarray:
    """The second given to each step of one video (see `align_steps`).

    Args:
        net: the model.
        step_embedding: [K, E] embeddings of the ordered step descriptions.
        streams: the video's feature streams (`FeatureStore.load`).
        window: seconds pooled around each second.
        device: where to compute.
        alignment: "official" (log-softmax over steps per second, as the CrossTask
            evaluation) or "raw" (the similarities); see `localize.alignment_scores`.

    Returns:
        int64 [K] seconds, increasing.
    """
    seconds = second_vectors(streams, window)  # (T, D)
    if len(seconds) < len(step_embedding):
        raise UsageError(
            f"a {len(seconds)} s video cannot hold {len(step_embedding)} ordered steps"
        )
    similarity = embed_clips(net, seconds, device) @ step_embedding.t()  # (T, K)
    return align_steps(alignment_scores(similarity.cpu().numpy(), alignment))


def evaluate_localization(
    checkpoint: str,
    tasks: dict[str, list[str]],
    task_videos: Sequence[tuple[str, str]],
    annotations: str,
    features_2d: str,
    word2vec: str,
    features_3d: str = "",
    window: float = 1.0,
    word2vec_limit: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
    alignment: str = "official",
) -> dict:
    """CrossTask step localisation recall per task and averaged over tasks.

    Videos without an annotation file or features, or with fewer seconds than steps, are
    skipped (and counted). `alignment` chooses what the dynamic program aligns (see
    `localize.alignment_scores`; "official" is the CrossTask protocol).

    Returns:
        {"recall": mean over tasks, "tasks": {task: recall}, "num_videos", "skipped",
        "alignment", "predictions": {task: {video: [seconds]}}}.
    """
    if alignment not in ALIGNMENTS:
        raise UsageError(f"--alignment must be one of {', '.join(ALIGNMENTS)}, got {alignment!r}")
    net, payload = load_net(checkpoint)
    saved = payload["data"]
    store = _store(saved, features_2d, features_3d)
    words = _words(saved, word2vec, word2vec_limit)
    max_words = saved.get("max_words", PairOptions().max_words)
    hits: dict[str, list[tuple[int, int]]] = {}
    predictions: dict[str, dict[str, list[int]]] = {}
    step_embeddings: dict[str, torch.Tensor] = {}
    skipped = 0
    checked = False
    for task, vid in tqdm(task_videos, desc="localize", unit="video", disable=not progress):
        annotation = child_path(annotations, f"{task}_{vid}", ".csv", "task and video id")
        if task not in tasks or not os.path.isfile(annotation) or not store.has(vid):
            skipped += 1
            continue
        if not checked:
            _check_dims(net, store.video_dim(vid), words.dim)
            checked = True
        if task not in step_embeddings:
            step_embeddings[task] = embed_sentences(net, words, tasks[task], max_words, device)
        streams = store.load(vid)
        if num_seconds(streams) < len(tasks[task]):
            skipped += 1  # too short to hold one second per step
            continue
        path = localize_video(net, step_embeddings[task], streams, window, device, alignment)
        truth = read_annotation(annotation, num_seconds(streams), len(tasks[task]))
        hits.setdefault(task, []).append(step_hits(truth, path))
        predictions.setdefault(task, {})[vid] = path.tolist()
    recalls = task_recalls(hits)
    if not recalls:
        raise UsageError("no video had its task, an annotation file and features; check the paths")
    return {
        "recall": float(np.mean(list(recalls.values()))),
        "tasks": recalls,
        "num_videos": sum(len(v) for v in hits.values()),
        "skipped": skipped,
        "alignment": alignment,
        "predictions": predictions,
    }
