"""Hostile or broken inputs to HowTo100M: each is one UsageError naming what is wrong."""

import json
import os
import pickle
import shutil

import numpy as np
import pytest

from extras.howto100m.captions import load_captions
from extras.howto100m.commands import Commands
from extras.howto100m.features import FeatureStore
from y8m.errors import UsageError


class _Payload:
    """Unpickling this creates MARKER: what a hostile pickle would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickled_word2vec_kv_does_not_run_code(tmp_path):
    pytest.importorskip("gensim")
    from extras.howto100m.text import WordVectors

    marker = tmp_path / "ran"
    with open(tmp_path / "w.kv", "wb") as f:
        pickle.dump(_Payload(marker), f)
    with pytest.raises(UsageError, match="could run code.*save_word2vec_format"):
        WordVectors.load(str(tmp_path / "w.kv"))
    assert not marker.exists()


@pytest.mark.parametrize("bad", ["../outside", "/tmp/outside", "a/../../outside"])
def test_video_ids_cannot_leave_the_feature_folder(tmp_path, bad):
    (tmp_path / "f2d").mkdir()
    np.save(tmp_path / "outside.npy", np.zeros((3, 4), np.float32))
    store = FeatureStore(str(tmp_path / "f2d"))
    with pytest.raises(UsageError, match=f"video id {bad!r} would point outside"):
        store.has(bad)
    with pytest.raises(UsageError, match=f"video id {bad!r} would point outside"):
        store.load(bad)


def test_feature_files_of_another_width_name_both(tmp_path):
    (tmp_path / "f2d").mkdir()
    np.save(tmp_path / "f2d" / "a.npy", np.zeros((3, 4), np.float32))
    np.save(tmp_path / "f2d" / "b.npy", np.zeros((3, 5), np.float32))
    store = FeatureStore(str(tmp_path / "f2d"))
    store.load("a")
    with pytest.raises(UsageError, match=r"b.npy holds 5-wide features but .*a.npy holds 4-wide"):
        store.load("b")


@pytest.mark.parametrize(
    "start,end,reason",
    [
        ([0, 4], [3, 2], "the end is before the start"),
        ([0, -2], [3, 5], "negative start"),
        ([0, None], [3, 5], "a time is not a finite number"),
    ],
)
def test_caption_times_are_checked(tmp_path, start, end, reason):
    path = tmp_path / "caption.json"
    path.write_text(json.dumps({"v1": {"start": start, "end": end, "text": ["a", "b"]}}))
    with pytest.raises(UsageError, match=f"caption.json: video 'v1', caption 1: {reason}"):
        load_captions(str(path))


@pytest.mark.parametrize(
    "flags,message",
    [
        (dict(videos_per_batch="abc"), "--videos_per_batch must be int"),
        (dict(videos_per_batch=0), "--videos_per_batch must be at least 1"),
        (dict(epochs=-1), "--epochs must be at least 1"),
        (dict(lr=0), "--lr must be greater than 0"),
        (dict(lr_decay=1.5), "--lr_decay must be at most 1"),
        (dict(margin=float("inf")), "--margin must be a number"),
        (dict(num_workers=-1), "--num_workers must be at least 0"),
        (dict(loss_weighting="paper"), "--loss_weighting must be one of thesis, reference"),
    ],
)
def test_train_flags_are_checked_at_the_edge(flags, message):
    required = dict(captions="c", features_2d="f", word2vec="w", output_dir="o")
    with pytest.raises(UsageError, match=message):
        Commands().train(**required, **flags)


@pytest.mark.parametrize(
    "command,flags,message",
    [
        ("embed", dict(batch_size=0), "--batch_size must be at least 1"),
        ("embed", dict(max_words="x"), "--max_words must be an integer"),
        ("eval", dict(chunk_size=0), "--chunk_size must be at least 1"),
        ("eval", dict(min_time=-1), "--min_time must be at least 0"),
        ("localize", dict(window=0), "--window must be greater than 0"),
        ("bench", dict(warmup=-1), "--warmup must be at least 0"),
        ("captions", dict(max_gap=-1), "--max_gap must be at least 0"),
    ],
)
def test_other_command_flags_are_checked(command, flags, message):
    paths = dict(checkpoint="c", captions="c", features_2d="f", word2vec="w")
    required = {
        "embed": paths,
        "eval": paths,
        "localize": dict(
            checkpoint="c", tasks="t", videos="v", annotations="a", features_2d="f", word2vec="w"
        ),  # fmt: skip
        "bench": {},
        "captions": dict(subtitles="s"),
    }[command]
    with pytest.raises(UsageError, match=message):
        getattr(Commands(), command)(**required, **flags)


def _copy(data, root):
    """A private copy of the generated data set (the session's is shared)."""
    out = {}
    os.makedirs(root)
    for key, path in data.items():
        target = os.path.join(root, os.path.basename(path))
        if os.path.isdir(path):
            shutil.copytree(path, target)
        else:
            shutil.copy(path, target)
        out[key] = target
    return out


def test_nan_features_stop_training_with_one_line(data, tmp_path):
    pytest.importorskip("torch")
    from extras.howto100m.train import fit
    from tests.extras.howto100m.synthetic import train_config

    mine = _copy(data, str(tmp_path / "data"))
    path = os.path.join(mine["features_2d"], "train003.npy")
    features = np.load(path)
    features[:] = np.nan
    np.save(path, features)
    with pytest.raises(UsageError, match=r"loss became nan at step \d+; stopped") as info:
        fit(train_config(mine, tmp_path / "run", epochs=1))
    assert "(none) is kept" in str(info.value) and "\n" not in str(info.value)
    assert not [f for f in os.listdir(tmp_path / "run") if f.startswith("ckpt-")]


def test_resume_with_other_architecture_flags_is_refused(data, tmp_path):
    pytest.importorskip("torch")
    from extras.howto100m.train import fit
    from tests.extras.howto100m.synthetic import train_config

    fit(train_config(data, tmp_path / "run", epochs=1))
    with pytest.raises(UsageError, match="mask_padding: saved False vs now True"):
        fit(train_config(data, tmp_path / "run", epochs=2, mask_padding=True))
