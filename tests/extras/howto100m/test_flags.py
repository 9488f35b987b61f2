"""The training flags are declared once (extras/howto100m/config.py); the rest is derived."""

import dataclasses
import inspect
import json

import fire
import pytest

from extras.howto100m.commands import Commands
from extras.howto100m.config import TrainConfig
from extras.runtime.flags import flag_fields


def test_command_signature_is_the_dataclass_fields():
    params = inspect.signature(Commands().train).parameters
    expected = [
        (f.name, "" if f.default is dataclasses.MISSING else f.default, f.type)
        for f in flag_fields(TrainConfig)
    ]
    assert [(p.name, p.default, p.annotation) for p in params.values()] == expected
    library_only = {f.name for f in dataclasses.fields(TrainConfig)} - set(params)
    assert library_only == {"sentence_dim", "remove_stop_words", "fps_2d", "fps_3d", "progress"}


def test_help_shows_every_flag_with_its_help(capsys):
    with pytest.raises(SystemExit):
        fire.Fire(Commands, ["train", "--help"], name="y8m extras howto100m")
    shown = " ".join(capsys.readouterr().err.split())  # fire writes help to stderr
    for f in flag_fields(TrainConfig):
        assert f.metadata["help"], f.name
        assert f"--{f.name}=" in shown and " ".join(f.metadata["help"].split()) in shown, f.name


def test_run_config_is_the_dataclass(trained):
    run, _ = trained
    saved = json.loads((run / "config.json").read_text())
    assert list(saved) == [f.name for f in dataclasses.fields(TrainConfig)]


def test_bench_times_the_training_step():
    pytest.importorskip("torch")
    from extras.howto100m import bench, train

    assert bench.train_step is train.train_step


def test_hooks_see_every_step_epoch_and_checkpoint(data, tmp_path):
    pytest.importorskip("torch")
    from extras.howto100m.train import fit
    from extras.runtime.hooks import Hooks
    from tests.extras.howto100m.synthetic import train_config

    seen = {"steps": 0, "epochs": [], "restored": []}

    def at_checkpoint(run, payload):
        payload["extra"] = run.global_step  # a hook's own state goes into the checkpoint

    hooks = Hooks(
        after_step=lambda run, loss: seen.__setitem__("steps", seen["steps"] + 1),
        after_epoch=lambda run, record: seen["epochs"].append(record["epoch"]),
        at_checkpoint=at_checkpoint,
        at_restore=lambda run, payload: seen["restored"].append(payload["extra"]),
        at_end=lambda run, summary: summary.setdefault("hooked", True),
    )
    first = fit(train_config(data, tmp_path, epochs=1), hooks)
    assert seen["steps"] == 3 and seen["epochs"] == [1] and first["hooked"]
    second = fit(train_config(data, tmp_path, epochs=2), hooks)
    assert seen["restored"] == [3] and seen["epochs"] == [1, 2] and seen["steps"] == 6
    assert second["epochs_done"] == 2
