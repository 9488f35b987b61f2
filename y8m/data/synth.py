"""`y8m synth`: learnable synthetic YouTube-8M data in the official layout.

The planted structure (documented in docs/synthetic.md):
- labels are long-tailed (Zipf over the active classes) and co-occur within verticals;
- a class's evidence is a minority of frames lying at +-mu_c among Gaussian distractor frames,
  in 5-frame aligned segments; the random sign cancels in the frame average, so average
  pooling sees little beyond label priors while orderless cluster pooling (NetVLAD, BoW) can
  find the evidence frames;
- a third of the classes carry their evidence in the audio stream instead of rgb.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from collections.abc import Iterator

import numpy as np

from y8m.data import records, specs
from y8m.errors import UsageError, choice, integer, number
from y8m.fileio import atomic_open

NOISE_STD = 0.5  # per-dimension std of distractor frames (values stay inside the [-2, 2] range)
EVIDENCE_NORM = {"rgb": 14.0, "audio": 5.0}  # comparable to the noise norm of each stream
SEGMENT_RATINGS_PER_VIDEO = 5


@dataclasses.dataclass(frozen=True)
class World:
    """The hidden structure every split is drawn from (fixed by the seed)."""

    active: np.ndarray  # (A,) class ids that occur
    vertical_of: np.ndarray  # (A,) vertical index of each active class
    class_prob: np.ndarray  # (A,) long-tailed prior
    audio_class: np.ndarray  # (A,) bool: evidence in audio rather than rgb
    prototypes: dict  # stream -> (A, D) unit directions
    num_verticals: int


def make_world(seed: int, num_classes: int, active_classes: int, num_verticals: int) -> World:
    rng = np.random.default_rng([seed, 0])
    active_classes = min(active_classes, num_classes)
    active = np.sort(rng.choice(num_classes, size=active_classes, replace=False))
    vertical_of = rng.integers(0, num_verticals, size=active_classes)
    ranks = rng.permutation(active_classes) + 1
    prob = 1.0 / ranks**1.1  # Zipf-like long tail
    audio_class = rng.random(active_classes) < 1 / 3
    prototypes = {}
    for name, size in (("rgb", specs.RGB.size), ("audio", specs.AUDIO.size)):
        p = rng.standard_normal((active_classes, size))
        prototypes[name] = (p / np.linalg.norm(p, axis=1, keepdims=True)).astype(np.float32)
    return World(active, vertical_of, prob / prob.sum(), audio_class, prototypes, num_verticals)


def _video_labels(world: World, rng: np.random.Generator, mean_labels: float) -> np.ndarray:
    """Indices into `world.active`: one primary class, then extras from the same vertical."""
    primary = rng.choice(len(world.active), p=world.class_prob)
    same = np.flatnonzero(world.vertical_of == world.vertical_of[primary])
    extra = min(rng.poisson(max(mean_labels - 1.0, 0.0)), len(same) - 1)
    if extra <= 0:
        return np.array([primary])
    others = same[same != primary]
    p = world.class_prob[others] / world.class_prob[others].sum()
    return np.concatenate([[primary], rng.choice(others, size=extra, replace=False, p=p)])


def _video(world: World, rng: np.random.Generator, frames_range, evidence_range, mean_labels):
    """One video's labels (active indices), quantised frames and evidence segments."""
    labels = _video_labels(world, rng, mean_labels)
    n = int(rng.integers(frames_range[0], frames_range[1] + 1))
    x = {
        "rgb": rng.standard_normal((n, specs.RGB.size), dtype=np.float32) * NOISE_STD,
        "audio": rng.standard_normal((n, specs.AUDIO.size), dtype=np.float32) * NOISE_STD,
    }
    num_segments = max(n // specs.SEGMENT_SIZE, 1)
    fraction = rng.uniform(*evidence_range)
    # Each label gets at least one evidence segment; the rest of the budget is shared out.
    budget = max(int(round(fraction * num_segments)), len(labels))
    segment_order = rng.permutation(num_segments)
    evidence = {}  # active index -> list of segment starts
    for i, start_seg in enumerate(segment_order[: min(budget, num_segments)]):
        label = labels[i % len(labels)]
        start = int(start_seg) * specs.SEGMENT_SIZE
        stop = min(start + specs.SEGMENT_SIZE, n)
        stream = "audio" if world.audio_class[label] else "rgb"
        for t in range(start, stop):
            if rng.random() < 0.8:  # most, not all, frames of an evidence segment carry it
                sign = 1.0 if rng.random() < 0.5 else -1.0
                x[stream][t] += sign * EVIDENCE_NORM[stream] * world.prototypes[stream][label]
        evidence.setdefault(int(label), []).append(start)
    quantised = {k: specs.quantize(v) for k, v in x.items()}
    return labels, quantised, evidence, num_segments


def _shard_name(split: str, index: int, version: int) -> str:
    if (
        version == 2017
    ):  # 2017 shards: two characters of 64, e.g. traina0, traina1, ... (4096 files)
        digits = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"
        first = digits[10:] + digits[:10]
        return f"{split}{first[index // 64 % 64]}{digits[index % 64]}.tfrecord"
    return f"{split}{index:04d}.tfrecord"


def _video_id(split: str, index: int, version: int, seed: int) -> str:
    # 2018+ ids are opaque 4+ character strings; we keep them unique across splits.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    code = {"train": "r", "validate": "v", "test": "t"}[split] + "".join(
        alphabet[(index // 62**p) % 62] for p in range(4)
    )
    return f"{code}" if version != 2017 else f"syn{seed}_{split}_{index}"


def _records_for_split(
    world,
    release,
    split,
    count,
    frames_range,
    evidence_range,
    mean_labels,
    seed,
    rated_set,
    level,
    counts,
) -> Iterator[tuple[bytes, bytes]]:
    """Yields (frame record, video record) for each video of a split."""
    labelled = split != "test"
    for i in range(count):
        rng = np.random.default_rng([seed, specs.SPLITS.index(split) + 1, i])
        labels, frames, evidence, num_segments = _video(
            world, rng, frames_range, evidence_range, mean_labels
        )
        class_ids = sorted(int(world.active[j]) for j in labels)
        if split == "train":
            np.add.at(counts, class_ids, 1)
        vid = _video_id(split, i, release.version, seed)
        rec_labels = class_ids if labelled else []
        segments = None
        if release.has_segments and split != "train":
            segments = _segment_ratings(world, rng, labels, evidence, num_segments, rated_set)
            if split == "test":  # ratings of the test set are hidden, as in the release
                segments = None
        frame_rec = video_rec = None
        if level in ("frame", "both"):
            frame_rec = records.encode_frame_example(vid, rec_labels, frames, release, segments)
        if level in ("video", "both"):
            means = {
                specs.FRAME_TO_VIDEO_FEATURE[k]: specs.dequantize(v).mean(axis=0)
                for k, v in frames.items()
            }
            video_rec = records.encode_video_example(vid, rec_labels, means, release)
        yield vid, class_ids, frame_rec, video_rec


def _segment_ratings(world, rng, labels, evidence, num_segments, rated_set):
    """Up to 5 rated (class, segment) pairs: evidence segments positive, others negative."""
    seg_labels, starts, scores = [], [], []
    for label in labels:
        cls = int(world.active[label])
        if cls not in rated_set:
            continue
        positives = evidence.get(int(label), [])
        negatives = [
            s * specs.SEGMENT_SIZE
            for s in range(num_segments)
            if s * specs.SEGMENT_SIZE not in positives
        ]
        for start in positives[:3]:
            seg_labels.append(cls), starts.append(start), scores.append(1.0)
        for start in rng.permutation(negatives)[:2] if negatives else []:
            seg_labels.append(cls), starts.append(int(start)), scores.append(0.0)
    keep = slice(0, SEGMENT_RATINGS_PER_VIDEO)
    return {
        specs.SEGMENT_LABELS_KEY: seg_labels[keep],
        specs.SEGMENT_START_TIMES_KEY: starts[keep],
        specs.SEGMENT_SCORES_KEY: scores[keep],
    }


def synthesize(
    output_dir: str,
    *,
    version: int = specs.DEFAULT_VERSION,
    videos: int = 1200,
    validate_videos: int | None = None,
    test_videos: int | None = None,
    shards: int = 4,
    level: str = "both",
    min_frames: int = 20,
    max_frames: int = 60,
    active_classes: int = 40,
    verticals: int = 8,
    mean_labels: float = 2.0,
    evidence_fraction: tuple[float, float] = (0.15, 0.3),
    seed: int = 0,
    num_classes: int | None = None,
    progress: bool = True,
) -> dict:
    """Writes train/validate/test shards, vocabulary.csv (and segment_label_ids.csv for 2019).

    Args:
        output_dir: where `frame/` and `video/` shard folders go.
        version: 2017, 2018 or 2019 (2019: validate records carry segment ratings).
        videos: training videos; validation and test default to a quarter of it each.
        shards: files per split (validate/test get half, at least one).
        level: "frame", "video" or "both".
        min_frames, max_frames: per-video length range (<= 300).
        active_classes: classes that occur (the vocabulary keeps the release's size).
        verticals: label groups that co-occur.
        mean_labels: average labels per video.
        evidence_fraction: range of the fraction of segments that carry class evidence.
        seed: everything is a deterministic function of it.
        num_classes: vocabulary size; the release's by default. A smaller one makes small,
            fast experiments (models then need the same --num_classes).

    Returns:
        Summary dict: files written per split, videos, frames, labels.
    """
    from tqdm import tqdm

    release = specs.release(version)
    if num_classes is not None:
        if not 2 <= int(num_classes) <= release.num_classes:
            raise UsageError(
                f"--num_classes must be in [2, {release.num_classes}], got {num_classes}"
            )
        release = dataclasses.replace(
            release,
            num_classes=int(num_classes),
            num_rated_classes=min(release.num_rated_classes, int(num_classes)),
        )
    choice("level", level, ("frame", "video", "both"))
    videos, shards = integer("videos", videos, 1), integer("shards", shards, 1)
    min_frames = integer("min_frames", min_frames, 1, specs.MAX_FRAMES)
    max_frames = integer("max_frames", max_frames, min_frames, specs.MAX_FRAMES)
    active_classes = integer("active_classes", active_classes, 1, release.num_classes)
    verticals = integer("verticals", verticals, 1)
    mean_labels = number("mean_labels", mean_labels, above=0)
    seed = integer("seed", seed, 0)
    for name, value in (("validate_videos", validate_videos), ("test_videos", test_videos)):
        if value is not None:
            integer(name, value, 0)
    counts_per_split = {
        "train": int(videos),
        "validate": int(validate_videos if validate_videos is not None else max(videos // 4, 1)),
        "test": int(test_videos if test_videos is not None else max(videos // 4, 1)),
    }
    world = make_world(seed, release.num_classes, active_classes, verticals)
    rated = _rated_classes(world, release)
    rated_set = set(rated.tolist())
    train_counts = np.zeros(release.num_classes, np.int64)
    levels = ("frame", "video") if level == "both" else (level,)
    written = {}
    total = sum(counts_per_split.values())
    bar = tqdm(total=total, unit="video", desc="synth", disable=not progress)
    for split, count in counts_per_split.items():
        n_shards = shards if split == "train" else max(shards // 2, 1)
        n_shards = min(n_shards, count)
        generator = _records_for_split(
            world,
            release,
            split,
            count,
            (min_frames, max_frames),
            evidence_fraction,
            mean_labels,
            seed,
            rated_set,
            level,
            train_counts,
        )
        written[split] = _write_shards(
            output_dir, levels, split, count, n_shards, release, generator, bar
        )
    bar.close()
    _write_vocabulary(os.path.join(output_dir, specs.VOCABULARY_FILE), world, release, train_counts)
    if release.has_segments:
        with atomic_open(
            os.path.join(output_dir, specs.SEGMENT_LABEL_IDS_FILE), "w", newline=""
        ) as f:
            f.write(specs.SEGMENT_LABEL_IDS_COLUMN + "\n")
            f.writelines(f"{c}\n" for c in rated)
    return {
        "output_dir": output_dir,
        "version": release.version,
        "videos": counts_per_split,
        "files": written,
        "active_classes": int(len(world.active)),
    }


def _write_shards(output_dir, levels, split, count, n_shards, release, generator, bar) -> dict:
    """Streams videos into `n_shards` files per level; only one video is in memory at a time."""
    import tensorflow as tf

    from y8m.fileio import atomic_path

    bounds = np.linspace(0, count, n_shards + 1).astype(int)
    files = {lv: [] for lv in levels}
    solution_rows = []
    for shard in range(n_shards):
        paths = {
            lv: os.path.join(output_dir, lv, _shard_name(split, shard, release.version))
            for lv in levels
        }
        for p in paths.values():
            os.makedirs(os.path.dirname(p), exist_ok=True)
        with _atomic_writers(paths, atomic_path, tf) as writers:
            for _ in range(bounds[shard], bounds[shard + 1]):
                vid, class_ids, frame_rec, video_rec = next(generator)
                if "frame" in writers:
                    writers["frame"].write(frame_rec)
                if "video" in writers:
                    writers["video"].write(video_rec)
                if split == "test":
                    solution_rows.append((vid, class_ids))
                bar.update(1)
        for lv, p in paths.items():
            files[lv].append(p)
    if split == "test":
        # Test records carry no labels, as in the release; the truth goes to a separate CSV so
        # synthetic submissions can be scored.
        with atomic_open(os.path.join(output_dir, "test_solution.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["VideoId", "Labels"])
            w.writerows((vid, " ".join(map(str, c))) for vid, c in solution_rows)
    return files


class _atomic_writers:
    """Opens one TFRecordWriter per level on temporary paths; renames all on success."""

    def __init__(self, paths, atomic_path, tf):
        self._paths, self._atomic_path, self._tf = paths, atomic_path, tf

    def __enter__(self):
        import contextlib

        self._stack = contextlib.ExitStack()
        writers = {}
        for lv, p in self._paths.items():
            tmp = self._stack.enter_context(self._atomic_path(p))
            writers[lv] = self._stack.enter_context(self._tf.io.TFRecordWriter(tmp))
        return writers

    def __exit__(self, *exc):
        return self._stack.__exit__(*exc)


def _rated_classes(world: World, release: specs.Release) -> np.ndarray:
    """The rated-class whitelist: active classes first (so ratings exist), then fill to 1000."""
    if not release.has_segments:
        return np.zeros(0, np.int64)
    rest = np.setdiff1d(np.arange(release.num_classes), world.active)
    rng = np.random.default_rng(0)
    fill = rng.choice(
        rest, size=max(release.num_rated_classes - len(world.active), 0), replace=False
    )
    return np.sort(np.concatenate([world.active, fill]))


def _write_vocabulary(path, world: World, release: specs.Release, train_counts) -> None:
    vertical_names = [f"Synthetic vertical {v}" for v in range(world.num_verticals)]
    vertical = {int(c): vertical_names[int(v)] for c, v in zip(world.active, world.vertical_of)}
    with atomic_open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(specs.VOCABULARY_COLUMNS)
        for c in range(release.num_classes):
            w.writerow(
                [
                    c,
                    int(train_counts[c]),
                    f"/m/synth{c:05d}",
                    f"Synthetic class {c}",
                    f"https://example.org/synthetic/{c}",
                    vertical.get(c, "Unused"),
                    "",
                    "",
                    "A class of y8m's synthetic data.",
                ]
            )
