"""Bad input and faults in train, eval, predict and the CLI: one line, nothing lost."""

import json
import os

import pytest

from y8m.cli import main
from y8m.errors import UsageError


def _cli(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return exc.value.code, err


@pytest.fixture(scope="module")
def run(synth_dir, tmp_path_factory):
    from y8m.run.train import train

    train_dir = tmp_path_factory.mktemp("hardening") / "run"
    train(
        model="average_logistic",
        train_data_pattern=str(synth_dir / "frame" / "train*.tfrecord"),
        train_dir=str(train_dir),
        batch_size=8,
        max_steps=2,
        num_classes=64,
        progress=False,
    )
    return train_dir


def _train_argv(synth_dir, tmp_path, *flags):
    return [
        "train",
        "--model=average_logistic",
        "--num_classes=64",
        f"--train_data_pattern={synth_dir}/frame/train*",
        f"--train_dir={tmp_path / 'new'}",
        "--max_steps=1",
        *flags,
    ]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--batch_size=abc"], "--batch_size must be an integer"),
        (["--batch_size=0"], "--batch_size must be at least 1"),
        (["--base_learning_rate=0"], "--base_learning_rate must be greater than 0"),
        (["--max_frames=301"], "--max_frames must be at most 300"),
        (["--batch_size=1000000000"], "GiB for its inputs alone"),
        (["--batch_size=97"], "larger than the 96 training videos"),
        (["--feature_names=rgb,foo", "--feature_sizes=1024,8"], "foo are in no record"),
    ],
)
def test_bad_training_flags_are_one_line_before_anything_runs(
    flags, message, synth_dir, tmp_path, capsys
):
    code, err = _cli(_train_argv(synth_dir, tmp_path, *flags), capsys)
    assert code == 2 and message in err
    assert not (tmp_path / "new").exists()


def test_a_record_file_with_no_records_is_refused_by_name(synth_dir, tmp_path, capsys):
    empty = tmp_path / "empty.tfrecord"
    empty.write_bytes(b"")
    argv = _train_argv(synth_dir, tmp_path)
    argv[3] = f"--train_data_pattern={empty}"
    code, err = _cli(argv, capsys)
    assert code == 2 and f"{empty} holds no records" in err


def test_start_new_model_moves_only_a_run(synth_dir, tmp_path, capsys, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    (data / "precious.csv").write_text("x")
    argv = _train_argv(synth_dir, tmp_path, "--start_new_model", "--batch_size=8")
    argv[4] = f"--train_dir={data}"
    code, err = _cli(argv, capsys)
    assert "is not a run" in err and (data / "precious.csv").exists()
    monkeypatch.chdir(data)
    argv[4] = "--train_dir=."
    code, err = _cli(argv, capsys)
    assert "would move '.' itself" in err and (data / "precious.csv").exists()


def test_eval_and_predict_flags(run, synth_dir, tmp_path, capsys):
    pattern = f"{synth_dir}/frame/validate*"
    code, err = _cli(
        ["eval", f"--train_dir={run}", f"--eval_data_pattern={pattern}", "--max_videos=-1"], capsys
    )
    assert "--max_videos must be at least 1" in err
    code, err = _cli(
        [
            "predict",
            f"--train_dir={run}",
            f"--input_data_pattern={pattern}",
            f"--output_file={tmp_path}/x.csv",
            "--csv",
        ],
        capsys,
    )
    assert "names the prediction store" in err and not (tmp_path / "x.csv").exists()
    code, err = _cli(
        [
            "predict",
            f"--train_dir={run}",
            f"--input_data_pattern={pattern}",
            f"--output_file={tmp_path}/y",
            "--top_k=0",
        ],
        capsys,
    )
    assert "--top_k must be at least 1" in err


def test_versioned_names_are_separate_stores_with_separate_csvs(run, synth_dir, tmp_path):
    from y8m.fileio import check_files
    from y8m.run.predict import predict

    pattern = str(synth_dir / "frame" / "test*.tfrecord")
    out = {}
    for version in ("v2", "v3"):
        out[version] = predict(
            train_dir=str(run), input_data_pattern=pattern, output_file=str(tmp_path / f"a.{version}"),
            csv=True, progress=False,
        )  # fmt: skip
    assert out["v2"]["output_file"].endswith("a.v2.parquet") and out["v2"]["csv_file"].endswith(
        "a.v2.csv"
    )
    assert out["v3"]["csv_file"].endswith("a.v3.csv")
    # The store and its CSV are one set.
    assert set(check_files(str(tmp_path / "a.v2.manifest.json"))) == {"a.v2.parquet", "a.v2.csv"}


def test_the_model_and_its_record_are_one_set(run, tmp_path):
    import shutil

    from y8m.run.loading import load_model

    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    manifest = json.loads((copy / "model.manifest.json").read_text())["files"]
    assert set(manifest) == {"model.keras", "model.json", "training_curve.png"}
    # A model.keras from another run beside this record is refused, not silently used.
    with open(copy / "model.keras", "ab") as f:
        f.write(b"x")
    with pytest.raises(UsageError, match="model.keras is not the file"):
        load_model(str(copy), progress=False)


@pytest.mark.parametrize("damage", ["config", "model"])
def test_damaged_run_files_are_one_line(run, tmp_path, damage, capsys, synth_dir):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    if damage == "config":
        (copy / "config.json").write_text('{"model": "average_log')
        expected = "config.json is damaged"
    else:
        shutil.rmtree(copy / "checkpoints")
        os.remove(copy / "model.manifest.json")
        with open(copy / "model.keras", "r+b") as f:
            f.truncate(100)
        expected = "model.keras is damaged"
    code, err = _cli(
        ["eval", f"--train_dir={copy}", f"--eval_data_pattern={synth_dir}/frame/validate*"], capsys
    )
    assert code == 2 and expected in err


def test_resume_says_which_training_flags_changed(run, synth_dir, capsys):
    from y8m.run.train import train

    train(
        model="average_logistic",
        train_data_pattern=str(synth_dir / "frame" / "train*.tfrecord"),
        train_dir=str(run),
        batch_size=4,
        max_steps=3,
        num_classes=64,
        base_learning_rate=1e-3,
        progress=False,
    )
    out = capsys.readouterr().out
    assert "resuming with --batch_size=4 (the run had 8); config.json records 4" in out
    assert "--base_learning_rate=0.001 (the run had 0.0002)" in out


def test_interrupt_during_start_up_and_os_errors_are_one_line(capsys, monkeypatch, tmp_path):
    import importlib

    cli_main = importlib.import_module("y8m.cli.main")

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_main, "_start_tensorflow_quietly", interrupted)
    with pytest.raises(SystemExit) as exc:
        main(["synth", f"--output_dir={tmp_path}"])
    assert exc.value.code == 130 and capsys.readouterr().err == "error: interrupted\n"
    monkeypatch.undo()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SystemExit) as exc:
        main(["synth", f"--output_dir={blocker / 'sub'}", "--videos=4"])
    err = capsys.readouterr().err  # after the progress bar's first draw
    assert exc.value.code == 2 and err.endswith(f"error: {blocker / 'sub'}: Not a directory\n")
    assert err.count("error:") == 1 and "Traceback" not in err
