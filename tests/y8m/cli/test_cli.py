"""The y8m command line: help, errors as one line with exit code 2, and a synth/inspect run."""

import subprocess
import sys

import pytest

from y8m.cli import main


def _run(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_unknown_flag(capsys):
    code, _, err = _run(["synth", "--bogus=1"], capsys)
    assert code == 2 and err.startswith("error: unknown flag --bogus") and "--output_dir" in err


def test_unknown_command(capsys):
    code, _, err = _run(["frobnicate"], capsys)
    assert code == 2 and "unknown command 'frobnicate'" in err and "train" in err


def test_glob_matching_nothing(capsys, tmp_path):
    code, _, err = _run(["inspect", str(tmp_path / "none*.tfrecord")], capsys)
    assert code == 2 and err.strip().count("\n") == 0 and "no TFRecord files match" in err


def test_missing_pattern(capsys, tmp_path):
    code, _, err = _run(["train", "--model=logistic", f"--train_dir={tmp_path}"], capsys)
    assert code == 2 and "--train_data_pattern" in err


def test_unknown_model(capsys, synth_dir, tmp_path):
    code, _, err = _run(
        [
            "train",
            "--model=nope",
            f"--train_data_pattern={synth_dir}/frame/train*",
            f"--train_dir={tmp_path}",
        ],
        capsys,
    )
    assert code == 2 and "gated_netvlad" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["train", "--help"],
        ["bench", "reader", "--help"],
        ["submission", "validate", "--help"],
    ],
)
def test_help(argv):
    proc = subprocess.run(
        [sys.executable, "-m", "y8m.cli", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PAGER": "cat", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout + proc.stderr  # fire writes help to stderr when not on a terminal
    assert "NAME" in text and ("FLAGS" in text or "COMMANDS" in text)


def test_synth_then_inspect(tmp_path, capsys):
    main(
        [
            "synth",
            f"--output_dir={tmp_path}",
            "--videos=8",
            "--shards=1",
            "--min_frames=5",
            "--max_frames=10",
            "--level=video",
        ]
    )
    main(["inspect", f"{tmp_path}/video/*.tfrecord"])
    out = capsys.readouterr().out
    assert "all records valid" in out and "12 videos" in out  # 8 train + 2 validate + 2 test


def test_hparam_the_model_does_not_take_is_one_line(capsys, synth_dir, tmp_path):
    code, _, err = _run(
        [
            "train",
            "--model=lstm",
            "--cluster_size=4",
            f"--train_data_pattern={synth_dir}/frame/train*",
            f"--train_dir={tmp_path / 'run'}",
        ],
        capsys,
    )
    assert code == 2 and err.strip().count("\n") == 0
    assert "'lstm' has no option(s) cluster_size" in err and "rnn_cells" in err


def test_models_lists_a_comma_separated_subset(capsys):
    main(["models", "--names=lstm,netvlad", "--num_classes=64"])
    rows = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:-1]]
    assert rows == ["lstm", "netvlad"]


def test_models_shows_nextvlad_beside_the_reference_count(capsys):
    main(["models", "--names=nextvlad,mix_nextvlad"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[-1] == "reference"
    rows = {line.split()[0]: line.split() for line in lines[1:-1]}
    assert rows["nextvlad"][2] == "78,643,170" and rows["nextvlad"][-1] == "~78.6M"
    assert rows["mix_nextvlad"][2] == "235,935,273" and rows["mix_nextvlad"][-1] == "~235.9M"


def test_merge_with_no_parts_is_one_line(capsys, tmp_path):
    code, _, err = _run(["predict", "--merge", f"--output_file={tmp_path / 'p'}"], capsys)
    assert code == 2 and err.startswith("error: no worker parts of") and err.count("\n") == 1


@pytest.mark.parametrize("group", ["milnce", "howto100m", "bcfw"])
def test_unknown_flag_of_an_extras_command_is_one_line(group, capsys):
    command = {"milnce": "train", "howto100m": "train", "bcfw": "solve"}[group]
    code, _, err = _run(["extras", group, command, "--bogus=1"], capsys)
    assert code == 2 and err.startswith(
        f"error: unknown flag --bogus for 'y8m extras {group} {command}'"
    )


@pytest.mark.parametrize(
    "argv, listed",
    [
        (["extras", "milnce", "trian"], "bench, dictionary, embed"),
        (["extras", "frob"], "bcfw, howto100m, milnce"),
    ],
)
def test_misspelt_subcommand_is_one_line_listing_the_choices(argv, listed, capsys):
    code, _, err = _run(argv, capsys)
    assert code == 2 and err.count("\n") == 1 and "unknown command" in err and listed in err


def test_extract_without_videos_is_one_line(capsys):
    code, _, err = _run(["extract", "--output_dir=x"], capsys)
    assert code == 2 and err.startswith("error: missing --videos") and err.count("\n") == 1
