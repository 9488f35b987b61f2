"""Stratified cross-validation folds of the rated 2019 videos (`y8m split`).

The 2019 segment ratings exist only for the validate split, so tuning a segment model needs
folds of it. Each rated video goes to one fold by iterative stratification (Sechidis et al.,
"On the stratification of multi-label data", 2011): the class with the fewest videos still
unassigned is taken first, its videos (in a seeded order) each go to the fold that most needs
that class, ties broken by the fold that most needs videos overall, then by the seeded
random generator. A class whose videos carry no other rated class is therefore spread to
within one video per fold; videos rated for several classes can push a class past that
bound, by at most the videos it shares with classes placed before it (on the synthetic sets
every class stays within one). Fold sizes follow the classes and may differ by a few videos.

Records are copied byte for byte: `DIR/fold{k}/validate{i:04d}.tfrecord` holds fold k's records
of input file i, `DIR/fold{k}/train{i:04d}.tfrecord` those of every other fold; records without
ratings are left out. `DIR/folds.json` records the assignment, and the release's
`segment_label_ids.csv` (found beside the records or one folder up) is copied to DIR, where
`y8m eval --segments` on a fold's shards finds it.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re

import numpy as np

from y8m.errors import UsageError, integer

_FOLD = re.compile(r"fold\d+")
_SHARD = re.compile(r"(train|validate)\d{4}\.tfrecord")


def split_folds(
    data_pattern: str,
    folds: int = 5,
    output_dir: str = "data/folds",
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Writes stratified folds of the rated videos of DATA_PATTERN under OUTPUT_DIR.

    Returns the `folds.json` dict: `folds`, `seed`, `data_pattern`, `fold_of` (video id ->
    fold), `videos` and `segments` (per fold), `class_counts` (class -> videos per fold) and
    `files` (fold -> {"train": [...], "validate": [...]}).
    """
    from y8m.data.readers import read_segment_ratings
    from y8m.fileio import expand_pattern

    files = expand_pattern(data_pattern, "data files")
    seed = integer("seed", seed, 0)
    folds = integer("folds", folds, 2)
    ratings = read_segment_ratings(data_pattern)
    if ratings.empty:
        raise UsageError(
            f"no segment ratings in {data_pattern!r}: folds need 2019 records with ratings "
            "(the validate split, e.g. 'data/frame/validate*.tfrecord')"
        )
    classes_of = {vid: sorted(set(group.tolist())) for vid, group in ratings.groupby("id")["class"]}
    if folds > len(classes_of):
        raise UsageError(
            f"--folds must be at most {len(classes_of)} (the rated videos in {data_pattern!r}), "
            f"got {folds}"
        )
    fold_of = assign_folds(classes_of, folds, seed)

    segments = [0] * folds
    for vid, n in ratings.drop_duplicates(["id", "start_time"]).groupby("id").size().items():
        segments[fold_of[vid]] += int(n)
    videos = [0] * folds
    class_counts: dict[str, list[int]] = {}
    for vid, classes in classes_of.items():
        videos[fold_of[vid]] += 1
        for c in classes:
            class_counts.setdefault(str(c), [0] * folds)[fold_of[vid]] += 1
    written = _copy_records(files, fold_of, folds, output_dir, progress)
    label_ids = _copy_segment_label_ids(files[0], output_dir)
    summary = {
        "data_pattern": str(data_pattern),
        "segment_label_ids": label_ids,
        "folds": folds,
        "seed": seed,
        "videos": videos,
        "segments": segments,
        "class_counts": dict(sorted(class_counts.items(), key=lambda kv: int(kv[0]))),
        "files": written,
        "fold_of": dict(sorted(fold_of.items())),
    }
    from y8m.fileio import atomic_open

    with atomic_open(os.path.join(output_dir, "folds.json")) as f:
        json.dump(summary, f, indent=1)
    return summary


def assign_folds(classes_of: dict[str, list[int]], folds: int, seed: int = 0) -> dict[str, int]:
    """Video id -> fold by iterative stratification over its classes (see the module doc)."""
    rng = np.random.default_rng(seed)
    order = sorted(classes_of)
    by_class: dict[int, set[str]] = {}
    for vid in order:
        for c in classes_of[vid]:
            by_class.setdefault(c, set()).add(vid)
    need = {c: np.full(folds, len(v) / folds) for c, v in by_class.items()}
    need_total = np.full(folds, len(order) / folds)
    fold_of: dict[str, int] = {}
    while by_class:
        rarest = min(by_class, key=lambda c: (len(by_class[c]), c))
        vids = sorted(by_class[rarest])
        for i in rng.permutation(len(vids)):
            vid = vids[i]
            wanted = need[rarest]
            best = np.flatnonzero(wanted == wanted.max())
            best = best[need_total[best] == need_total[best].max()]
            k = int(best[rng.integers(len(best))]) if len(best) > 1 else int(best[0])
            fold_of[vid] = k
            need_total[k] -= 1
            for c in classes_of[vid]:
                need[c][k] -= 1
                if c != rarest:
                    by_class[c].discard(vid)
                    if not by_class[c]:
                        del by_class[c]
        del by_class[rarest]
    return fold_of


def _copy_segment_label_ids(first_file: str, output_dir: str) -> str | None:
    """Copies the release's segment_label_ids.csv (beside the records or one folder up) into
    OUTPUT_DIR, where `y8m eval --segments` on a fold's shards looks for it."""
    import shutil

    from y8m.data import specs
    from y8m.fileio import atomic_path

    folder = os.path.dirname(os.path.abspath(first_file))
    for candidate in (folder, os.path.dirname(folder)):
        source = os.path.join(candidate, specs.SEGMENT_LABEL_IDS_FILE)
        if os.path.exists(source):
            target = os.path.join(output_dir, specs.SEGMENT_LABEL_IDS_FILE)
            if os.path.abspath(source) != os.path.abspath(target):
                with atomic_path(target) as tmp:
                    shutil.copyfile(source, tmp)
            return target
    return None


def _copy_records(files, fold_of, folds, output_dir, progress) -> dict[str, dict[str, list]]:
    """Copies each rated record into its fold's validate shard and the other folds' train
    shards; removes shards of an earlier run that this one did not write."""
    import tensorflow as tf
    from tqdm import tqdm

    from y8m.data import specs
    from y8m.data.readers import data_error
    from y8m.fileio import atomic_path

    id_key = specs.release(2019).id_key
    spec = {id_key: tf.io.FixedLenFeature([], tf.string)}

    def with_ids(serialized):
        context, _, _ = tf.io.parse_sequence_example(serialized, context_features=spec)
        return serialized, context[id_key]

    written: dict[str, dict[str, list]] = {
        str(k): {"train": [], "validate": []} for k in range(folds)
    }
    for k in range(folds):
        os.makedirs(os.path.join(output_dir, f"fold{k}"), exist_ok=True)
    bar = tqdm(total=len(fold_of), unit="video", desc="split", disable=not progress)
    for i, path in enumerate(files):
        with contextlib.ExitStack() as stack:
            writers: dict[tuple[int, str], tf.io.TFRecordWriter] = {}
            ds = tf.data.TFRecordDataset(path).batch(256).map(with_ids)
            try:
                for serialized, ids in ds.as_numpy_iterator():
                    for record, vid in zip(serialized, ids):
                        fold = fold_of.get(vid.decode())
                        if fold is None:
                            continue
                        for k in range(folds):
                            part = "validate" if k == fold else "train"
                            if (k, part) not in writers:
                                out = os.path.join(
                                    output_dir, f"fold{k}", f"{part}{i:04d}.tfrecord"
                                )
                                tmp = stack.enter_context(atomic_path(out))
                                writers[k, part] = stack.enter_context(tf.io.TFRecordWriter(tmp))
                                written[str(k)][part].append(out)
                            writers[k, part].write(record)
                        bar.update(1)
            except tf.errors.OpError as err:
                raise data_error(err, path) from None
    bar.close()
    keep = {p for parts in written.values() for paths in parts.values() for p in paths}
    for stale in glob.glob(os.path.join(output_dir, "fold*", "*.tfrecord")):
        fold_dir, name = os.path.split(stale)
        if (
            _FOLD.fullmatch(os.path.basename(fold_dir))
            and _SHARD.fullmatch(name)
            and stale not in keep
        ):
            os.remove(stale)
    return written
