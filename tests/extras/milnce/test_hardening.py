"""Hostile or broken inputs to MIL-NCE: each is one UsageError naming what is wrong."""

import json
import os

import numpy as np
import pandas as pd
import pytest

from extras.milnce.commands import Commands
from y8m.errors import UsageError


class _Payload:
    """Unpickling this creates MARKER: what a hostile pickle would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


# --- 1. pickles --------------------------------------------------------------------------


def test_pickled_dictionary_does_not_run_code(tmp_path):
    from extras.milnce.text import load_dictionary

    marker = tmp_path / "ran"
    words = np.empty(2, dtype=object)
    words[:] = ["cut", _Payload(marker)]
    np.save(tmp_path / "dict.npy", words, allow_pickle=True)
    with pytest.raises(UsageError, match="dict.npy.*could run code"):
        load_dictionary(str(tmp_path / "dict.npy"))
    assert not marker.exists()
    # The released layout (an object array of words) still loads, without pickle's globals.
    np.save(tmp_path / "released.npy", np.array(["cut", "dice"], dtype=object), allow_pickle=True)
    assert load_dictionary(str(tmp_path / "released.npy")) == ["cut", "dice"]


def test_pickled_word_vectors_do_not_run_code(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("gensim")
    import pickle

    from extras.milnce.text import load_word_vectors

    marker = tmp_path / "ran"
    with open(tmp_path / "w.kv", "wb") as f:
        pickle.dump(_Payload(marker), f)
    with pytest.raises(UsageError, match="w.kv.*could run code"):
        load_word_vectors(str(tmp_path / "w.kv"), ["cut"], 4)
    assert not marker.exists()


# --- 2. ids used in paths ----------------------------------------------------------------


def test_caption_ids_cannot_leave_the_caption_folder(tmp_path):
    from extras.milnce.captions import CaptionStore

    (tmp_path / "captions").mkdir()
    (tmp_path / "secret.csv").write_text("start,end,text\n0,1,x\n")
    store = CaptionStore(str(tmp_path / "captions"))
    for bad in ("../secret", str(tmp_path / "secret")):
        with pytest.raises(UsageError, match=f"video id '{bad}' would point outside"):
            store[bad]


def test_video_paths_in_csvs_cannot_leave_the_video_root(tmp_path):
    from extras.milnce.data import list_videos, read_clip_csv
    from extras.milnce.probe import read_label_csv

    root = tmp_path / "videos"
    root.mkdir()
    listed = tmp_path / "train.csv"
    pd.DataFrame({"video_path": ["ok.mp4", "../../etc/x.mp4"]}).to_csv(listed, index=False)
    with pytest.raises(UsageError, match="'../../etc/x.mp4' would point outside"):
        list_videos(str(listed), str(root))
    clips = tmp_path / "clips.csv"
    row = {"start": [0], "end": [1], "text": ["x"]}
    pd.DataFrame({"video_path": ["/abs/v.mp4"], **row}).to_csv(clips, index=False)
    with pytest.raises(UsageError, match="'/abs/v.mp4' would point outside"):
        read_clip_csv(str(clips), str(root))
    pd.DataFrame({"video_id": ["../v"], **row}).to_csv(clips, index=False)
    with pytest.raises(UsageError, match="video_id in .*'../v' would point outside"):
        read_clip_csv(str(clips), str(root))
    labels = tmp_path / "labels.csv"
    frame = {"video_path": ["../v.mp4"], "label": ["a"], "split1": [1]}
    pd.DataFrame(frame).to_csv(labels, index=False)
    with pytest.raises(UsageError, match="'../v.mp4' would point outside"):
        read_label_csv(str(labels), str(root))


# --- 5. captions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rows,reason",
    [
        ("0,4,a\n5,3,b\n", "line 3: the end is before the start"),
        ("0,4,a\n-1,3,b\n", "line 3: negative start"),
        ("0,4,a\nnan,3,b\n", "line 3: a time is not a finite number"),
        ("0,4,a\nsoon,3,b\n", "line 3: a time is not a finite number"),
    ],
)
def test_caption_csv_times_are_checked(tmp_path, rows, reason):
    from extras.milnce.captions import read_caption_csv

    path = tmp_path / "v.csv"
    path.write_text("start,end,text\n" + rows)
    with pytest.raises(UsageError, match=f"v.csv, {reason}"):
        read_caption_csv(str(path))


def test_caption_json_is_checked(tmp_path):
    from extras.milnce.captions import CaptionStore

    path = tmp_path / "caption.json"
    path.write_text('{"v": {"start": [0, 1], "end": [1, ')
    with pytest.raises(UsageError, match="caption.json is not valid JSON") as info:
        CaptionStore(str(path))
    assert "\n" not in str(info.value)
    path.write_text(json.dumps({"v": {"start": [0, 2], "end": [1, 1], "text": ["a", "b"]}}))
    with pytest.raises(UsageError, match="video 'v', caption 1: the end is before the start"):
        CaptionStore(str(path))


# --- 6. numeric flags --------------------------------------------------------------------

_REQUIRED = dict(train_dir="r", videos="v", captions="c")


@pytest.mark.parametrize(
    "flag,value,message",
    [
        ("batch_size", "abc", "--batch_size must be int"),
        ("batch_size", 0, "--batch_size must be at least 1"),
        ("batch_size", 1, "--batch_size must be at least 2: MIL-NCE contrasts"),
        ("epochs", -1, "--epochs must be at least 1"),
        ("lr", 0, "--lr must be greater than 0"),
        ("lr", float("nan"), "--lr must be a number"),
        ("fps", -5, "--fps must be greater than 0"),
        ("num_workers", -1, "--num_workers must be at least 0"),
        ("keep_checkpoints", -2, "--keep_checkpoints must be at least 0"),
        ("min_time", -1, "--min_time must be at least 0"),
        ("loss", "nce", "--loss must be one of released, paper"),
    ],
)
def test_train_flags_are_checked_at_the_edge(flag, value, message):
    with pytest.raises(UsageError, match=message):
        Commands().train(**_REQUIRED, **{flag: value})


@pytest.mark.parametrize(
    "command,flags,message",
    [
        ("embed", dict(num_windows=0), "--num_windows must be at least 1"),
        ("embed", dict(batch_size=2.5), "--batch_size must be an integer"),
        ("eval", dict(fps=0), "--fps must be greater than 0"),
        ("probe", dict(C=0), "--C must be greater than 0"),
        ("probe", dict(fps=-1), "--fps must be at least 0"),
        ("dictionary", dict(min_count=0), "--min_count must be at least 1"),
        ("bench", dict(steps=0), "--steps must be at least 1"),
        ("bench", dict(threads=-1), "--threads must be at least 0"),
    ],
)
def test_other_command_flags_are_checked(command, flags, message):
    required = {
        "embed": dict(checkpoint="c", output="o.npy", videos="v*.mp4"),
        "eval": dict(checkpoint="c", clips="c.csv"),
        "probe": dict(checkpoint="c", labels="l.csv"),
        "dictionary": dict(captions="c", output="o.npy"),
        "bench": {},
    }[command]
    with pytest.raises(UsageError, match=message):
        getattr(Commands(), command)(**required, **flags)


# --- 8. misspelt flags -------------------------------------------------------------------


def test_a_prefix_of_a_flag_is_not_accepted(capsys):
    from y8m.cli import main

    with pytest.raises(SystemExit) as info:
        main(["extras", "milnce", "train", "--epoch=3"])
    assert info.value.code == 2
    assert "error: unknown flag --epoch" in capsys.readouterr().err


# --- 3 and 4: training on a tiny generated set -------------------------------------------


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("av")
    return Commands().toy(output_dir=str(tmp_path_factory.mktemp("toy") / "toy"), num_videos=2)


def _train(toy, train_dir, **overrides):
    flags = dict(
        train_dir=str(train_dir),
        videos=f"{toy['videos']}/*.mp4",
        captions=toy["captions"],
        dictionary=toy["dict"],
        epochs=1,
        batch_size=2,
        warmup_steps=0,
        num_candidates=2,
        num_frames=4,
        video_size=32,
        num_workers=0,
        precise_bn_batches=0,
        progress=False,
    )
    flags.update(overrides)
    return Commands().train(**flags)


def _fake_step(value):
    import torch

    def step(parts, batch):
        return torch.tensor(value)

    return step


def test_nan_loss_stops_with_one_line_and_keeps_the_checkpoint(toy, tmp_path, monkeypatch):
    import extras.milnce.train as train_lib

    monkeypatch.setattr(train_lib, "train_step", _fake_step(1.0))
    _train(toy, tmp_path / "run")
    monkeypatch.setattr(train_lib, "train_step", _fake_step(float("nan")))
    with pytest.raises(UsageError, match="loss became nan at step 2; stopped") as info:
        _train(toy, tmp_path / "run", epochs=2)
    assert "epoch0001.pth.tar" in str(info.value) and "\n" not in str(info.value)
    assert sorted(os.listdir(tmp_path / "run")) == ["config.json", "epoch0001.pth.tar",
                                                    "history.json"]  # fmt: skip


def test_resume_says_which_architecture_flags_it_keeps(toy, tmp_path, monkeypatch, capsys):
    import extras.milnce.train as train_lib

    monkeypatch.setattr(train_lib, "train_step", _fake_step(1.0))
    _train(toy, tmp_path / "run")
    capsys.readouterr()
    _train(toy, tmp_path / "run", epochs=2, space_to_depth=True, max_words=7)
    lines = [line for line in capsys.readouterr().out.splitlines() if "keeps" in line]
    assert len(lines) == 1, lines
    assert "--space_to_depth=False (given True)" in lines[0]
    assert "--max_words=20 (given 7)" in lines[0]
    import torch

    state = torch.load(tmp_path / "run" / "epoch0002.pth.tar", weights_only=True)
    assert state["model_config"]["space_to_depth"] is False
    capsys.readouterr()
    _train(toy, tmp_path / "run", epochs=3)  # same flags: nothing to say
    assert "keeps" not in capsys.readouterr().out
