"""`y8m extract`: video files -> frame-level (and video-level) TFRecords in the official layout.

The videos are split into `shards` contiguous groups in sorted order; each shard's frame file
(and video file with `level="both"`) is committed as one set with its manifest
(`y8m.fileio.atomic_files`), so an interrupted extraction resumes at the first shard that is
not complete, and a finished shard is never seen half written. `extract.json` records the
settings: a rerun with other settings into the same folder is refused.
"""

from __future__ import annotations

import csv
import json
import os
import time

import numpy as np

from y8m.data import specs
from y8m.errors import UsageError, choice, integer
from y8m.extract.features import VideoFeatures, extract_or_skip, make_extractor, video_id
from y8m.fileio import atomic_files, atomic_open, check_files, expand_pattern

LEVELS = ("frame", "both")
SETTINGS_FILE = "extract.json"


def encode(features: VideoFeatures, labels, release: specs.Release) -> tuple[bytes, bytes]:
    """(frame-level SequenceExample, video-level Example) of one video, serialized."""
    from y8m.data import records

    means = {"mean_rgb": features.mean_rgb, "mean_audio": features.mean_audio}
    frame = records.encode_frame_example(
        features.video_id,
        sorted(labels),
        {"rgb": features.rgb, "audio": features.audio},
        release,
        context_floats=means,
    )
    video = records.encode_video_example(features.video_id, sorted(labels), means, release)
    return frame, video


def read_label_file(path: str) -> dict[str, list[int]]:
    """Labels by video id from a CSV of `video,labels` lines, the official extractor's input
    ("path,l1;l2"; labels split on ';' or spaces; the video may be a path, a file name or an
    id; a first line whose labels are not integers is a header)."""
    if not os.path.isfile(path):
        raise UsageError(f"no labels file {path!r}: a CSV of 'video,label1;label2' lines")
    table: dict[str, list[int]] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for number, row in enumerate(csv.reader(f), start=1):
            if not row or not row[0].strip():
                continue
            text = row[1] if len(row) > 1 else ""
            try:
                labels = [int(x) for x in text.replace(";", " ").split()]
            except ValueError:
                if number == 1:
                    continue  # a header
                raise UsageError(
                    f"{path} line {number}: labels {text!r} are not integers separated by ';'"
                ) from None
            table[video_id(row[0].strip())] = labels
    return table


def extract(
    videos: str | None = None,
    output_dir: str | None = None,
    version: int = 2018,
    labels: str | None = None,
    shards: int = 1,
    level: str = "frame",
    max_frames: int = specs.MAX_FRAMES,
    inception_graph: str | None = None,
    inception_weights: str | None = None,
    pca_dir: str | None = None,
    vggish_weights: str | None = None,
    vggish_pca: str | None = None,
    no_audio: bool = False,
    batch_size: int = 32,
    prefix: str = "videos",
    skip_bad: bool = False,
    progress: bool = True,
) -> dict:
    """Turn video files into official YouTube-8M frame-level (and video-level) TFRecords.

    Args:
        videos: glob of video files (comma-separated globs too); a video's id is its file name
            without the extension.
        output_dir: where `frame/PREFIX0000.tfrecord`, ... (and `video/...`) and
            `extract.json` go; rerunning the same command resumes at the first unfinished shard.
        version: release layout of the records (2018: `id`; 2017: `video_id`).
        labels: optional CSV of `video,l1;l2` lines; videos not in it get no labels.
        shards: files per level.
        level: "frame", or "both" to also write video-level records of the mean features.
        max_frames: frames kept per video from the start (1 per second; official 300).
        inception_graph: the official frozen graph classify_image_graph_def.pb
            (inception-2015-12-05.tgz); or
        inception_weights: a Keras InceptionV3 (no top) weights file (.h5 / .weights.h5).
        pca_dir: the folder of the official PCA files mean.npy, eigenvals.npy, eigenvecs.npy.
        vggish_weights: vggish_model.ckpt (the official checkpoint) or a Keras .weights.h5.
        vggish_pca: vggish_pca_params.npz.
        no_audio: write zero audio, as the official extractor's --insert_zero_audio_features.
        batch_size: frames per network call (larger is faster on a GPU).
        prefix: shard file name prefix.
        skip_bad: skip unreadable or corrupt videos (named at the end) instead of stopping.
        progress: show a progress bar (videos, and frames/s).

    Returns:
        dict with output_dir, videos, frames, skipped (path -> reason), shards, seconds.
    """
    if not videos or not output_dir:
        missing = "--videos" if not videos else "--output_dir"
        raise UsageError(f"missing {missing}: y8m extract --videos='clips/*.mp4' --output_dir=DIR")
    network_flags = dict(
        inception_graph=inception_graph,
        inception_weights=inception_weights,
        pca_dir=pca_dir,
        vggish_weights=vggish_weights,
        vggish_pca=vggish_pca,
        no_audio=bool(no_audio),
        max_frames=integer("max_frames", max_frames, 1, specs.MAX_FRAMES),
        batch_size=integer("batch_size", batch_size, 1),
    )
    files = expand_pattern(videos, "video files")
    release = specs.release(version)
    shards = integer("shards", shards, 1, len(files))
    level = choice("level", level, LEVELS)
    ids = [video_id(p) for p in files]
    _check_unique(ids, files)
    label_table = read_label_file(labels) if labels else {}
    settings = {
        "videos": sorted(os.path.abspath(p) for p in files),
        "version": release.version,
        "labels": os.path.abspath(labels) if labels else None,
        "shards": shards,
        "level": level,
        "prefix": prefix,
        **{k: v for k, v in sorted(network_flags.items())},
    }
    _claim(output_dir, settings)
    extractor = make_extractor(**network_flags)
    groups = np.array_split(np.arange(len(files)), shards)
    summary = {"videos": 0, "frames": 0, "skipped": {}, "t0": time.perf_counter()}
    bar = _bar(len(files), progress)
    for index, members in enumerate(groups):
        paths = _shard_paths(output_dir, prefix, index, level)
        manifest = os.path.join(output_dir, "manifests", f"{prefix}{index:04d}.json")
        if _complete(manifest):
            bar.update(len(members))
            continue
        rows = _extract_shard(extractor, [files[i] for i in members], label_table, release,
                              skip_bad, summary, bar)  # fmt: skip
        os.makedirs(os.path.dirname(manifest), exist_ok=True)
        from y8m.data import records

        with atomic_files(list(paths.values()), manifest) as tmp:
            records.write_tfrecord(tmp[paths["frame"]], (frame for frame, _ in rows))
            if "video" in paths:
                records.write_tfrecord(tmp[paths["video"]], (video for _, video in rows))
    bar.close()
    return _report(output_dir, summary, shards)


def _extract_shard(extractor, paths, label_table, release, skip_bad, summary, bar) -> list:
    rows = []
    for path in paths:
        features = extract_or_skip(extractor, path, skip_bad, summary["skipped"])
        if features is None:
            bar.update(1)
            continue
        rows.append(encode(features, label_table.get(features.video_id, []), release))
        summary["videos"] += 1
        summary["frames"] += features.num_frames
        seconds = max(time.perf_counter() - summary["t0"], 1e-9)
        bar.set_postfix(frames_per_s=f"{summary['frames'] / seconds:.1f}", refresh=False)
        bar.update(1)
    return rows


def _shard_paths(output_dir: str, prefix: str, index: int, level: str) -> dict[str, str]:
    name = f"{prefix}{index:04d}.tfrecord"
    paths = {"frame": os.path.join(output_dir, "frame", name)}
    if level == "both":
        paths["video"] = os.path.join(output_dir, "video", name)
    for path in paths.values():
        os.makedirs(os.path.dirname(path), exist_ok=True)
    return paths


def _complete(manifest: str) -> bool:
    if not os.path.exists(manifest) and not os.path.exists(manifest + ".pending"):
        return False
    try:
        check_files(manifest)
    except UsageError:
        return False  # damaged: extract the shard again
    return True


def _claim(output_dir: str, settings: dict) -> None:
    """Records the settings, or refuses a folder extracted with other ones."""
    path = os.path.join(output_dir, SETTINGS_FILE)
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            before = json.load(f)
        if before != json.loads(json.dumps(settings)):
            changed = sorted(
                k for k in set(before) | set(settings) if before.get(k) != settings.get(k)
            )
            raise UsageError(
                f"{output_dir} holds an extraction with other settings ({', '.join(changed)}): "
                "pass another --output_dir"
            )
        return
    os.makedirs(output_dir, exist_ok=True)
    with atomic_open(path, "w") as f:
        json.dump(settings, f, indent=2)


def _check_unique(ids: list[str], files: list[str]) -> None:
    seen: dict[str, str] = {}
    for vid, path in zip(ids, files):
        if vid in seen:
            raise UsageError(
                f"two videos get the id {vid!r} ({seen[vid]}, {path}): ids come from file "
                "names, rename one"
            )
        seen[vid] = path


def _bar(total: int, progress: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="video", desc="extract", disable=not progress, dynamic_ncols=True)


def _report(output_dir: str, summary: dict, shards: int) -> dict:
    seconds = time.perf_counter() - summary["t0"]
    print(
        f"wrote {summary['videos']} videos ({summary['frames']} frames) to {output_dir} in "
        f"{shards} shard(s), {summary['frames'] / max(seconds, 1e-9):.1f} frames/s"
    )
    for path, reason in summary["skipped"].items():
        print(f"skipped {path}: {reason}")
    return {
        "output_dir": output_dir,
        "videos": summary["videos"],
        "frames": summary["frames"],
        "skipped": dict(summary["skipped"]),
        "shards": shards,
        "seconds": seconds,
    }
