"""`y8m predict --videos`: reader batches made from video files in memory.

Each chunk of videos goes through `y8m extract`'s extractor and encoder into serialized records,
which the run's own reader parses as it parses records from disk (`rundir.dataset_for` takes a
dataset of records), so the predictions equal `y8m extract` followed by `y8m predict` on the
files it writes.
"""

from __future__ import annotations

from collections.abc import Iterator

from y8m.data import specs
from y8m.fileio import expand_pattern
from y8m.run import rundir

# Network and PCA flags of `y8m extract` that `predict --videos` takes as they are.
EXTRACT_FLAGS = (
    "inception_graph",
    "inception_weights",
    "pca_dir",
    "vggish_weights",
    "vggish_pca",
    "no_audio",
    "max_frames",
)


def video_batches(
    config: dict, videos: str, extract_flags: dict, batch_size: int, skip_bad: bool, skipped: dict
) -> Iterator[dict]:
    """Reader batches (numpy dicts) of the run's inputs for every file matching VIDEOS.

    Unreadable files stop with a one-line error, or with `skip_bad` are left out and listed in
    `skipped` (path -> reason).
    """
    import tensorflow as tf

    from y8m.data.readers import iterate
    from y8m.extract.dataset import encode
    from y8m.extract.features import extract_or_skip, make_extractor

    files = expand_pattern(videos, "video files")
    extractor = make_extractor(**extract_flags)
    release = specs.release(config["data"]["version"])
    frame_level = bool(config["data"]["frame_level"])
    for start in range(0, len(files), batch_size):
        serialized = []
        for path in files[start : start + batch_size]:
            features = extract_or_skip(extractor, path, skip_bad, skipped)
            if features is None:
                continue
            frame, video = encode(features, [], release)
            serialized.append(frame if frame_level else video)
        if not serialized:
            continue
        records = tf.data.Dataset.from_tensor_slices(tf.constant(serialized, tf.string))
        ds = rundir.dataset_for(config, records, training=False, batch_size=len(serialized))
        yield from iterate(ds, videos)
