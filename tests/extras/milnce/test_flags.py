"""The training flags are declared once (extras/milnce/config.py); the rest is derived."""

import dataclasses
import inspect
import subprocess
import sys
from pathlib import Path

import fire
import pytest

from extras.milnce.commands import Commands
from extras.milnce.config import ModelConfig, TrainConfig
from extras.runtime.flags import flag_fields

REPO = Path(__file__).resolve().parents[3]
FIELDS = flag_fields(TrainConfig, ModelConfig)


def test_command_signature_is_the_dataclass_fields():
    params = inspect.signature(Commands().train).parameters
    expected = [
        (f.name, "" if f.default is dataclasses.MISSING else f.default, f.type) for f in FIELDS
    ]
    assert [(p.name, p.default, p.annotation) for p in params.values()] == expected
    assert {f.name for f in dataclasses.fields(TrainConfig)} <= set(params)  # every train field
    assert {"space_to_depth", "mask_padding", "weight_init"} <= set(params)
    assert "num_embeddings" not in params  # follows the dictionary


def test_help_shows_every_flag_with_its_help(capsys):
    with pytest.raises(SystemExit):
        fire.Fire(Commands, ["train", "--help"], name="y8m extras milnce")
    shown = " ".join(capsys.readouterr().err.split())  # fire writes help to stderr
    for f in FIELDS:
        assert f.metadata["help"], f.name
        assert f"--{f.name}=" in shown and " ".join(f.metadata["help"].split()) in shown, f.name


def test_the_command_calls_the_library_with_the_dataclasses(monkeypatch):
    pytest.importorskip("torch")
    import extras.milnce.train

    calls = []

    def fake_train(config, model_config):
        calls.append((config, model_config))
        return {"world_size": 1, "epochs": 1, "steps": 1, "first_loss": 1.0, "last_loss": 1.0,
                "skipped": 0, "checkpoint": None}  # fmt: skip

    monkeypatch.setattr(extras.milnce.train, "train", fake_train)
    Commands().train(train_dir="r", videos="v", captions="c", epochs="3", space_to_depth=True)
    config, model_config = calls[0]
    assert config == TrainConfig(train_dir="r", videos="v", captions="c", epochs=3)
    assert model_config == ModelConfig(space_to_depth=True)


def test_bench_times_the_training_step():
    pytest.importorskip("torch")
    from extras.milnce import bench, train

    assert bench.train_step is train.train_step


def test_old_torchrun_module_points_to_the_new_one():
    pytest.importorskip("torch")
    done = subprocess.run(
        [sys.executable, "-m", "extras.milnce.train"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "-m extras.milnce.launch" in done.stderr
