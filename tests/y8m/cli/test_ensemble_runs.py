"""`y8m ensemble --runs`: the stores of every run at every precision are made by the run layer,
then the greedy selection runs under the byte budget, all from one command line."""

import json

import pytest

from tests.y8m.run.tiny_runs import train_tiny
from y8m.cli.main import main


@pytest.fixture(scope="module")
def runs(synth_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    train_tiny(synth_dir, root / "gnv", "gated_netvlad", cluster_size=4, hidden_size=16,
               sample_frames=8)  # fmt: skip
    train_tiny(synth_dir, root / "avg", "average_logistic")
    return root


def test_runs_precisions_and_budget_from_the_command_line(runs, synth_dir, tmp_path, capsys):
    from y8m.run.loading import load_model
    from y8m.run.quantize import model_bytes

    budget_bytes = model_bytes(load_model(str(runs / "gnv"), progress=False)[0], "int8")
    budget_bytes += model_bytes(load_model(str(runs / "avg"), progress=False)[0], "int8")
    output = tmp_path / "submission.csv"
    main(["ensemble", f"--runs={runs}/*", "--precisions=float32,float16,int8",
          f"--validate_data_pattern={synth_dir / 'frame' / 'validate*.tfrecord'}",
          f"--test_data_pattern={synth_dir / 'frame' / 'test*.tfrecord'}",
          f"--max_mb={budget_bytes / 1e6}", "--greedy=4", f"--output_file={output}"])  # fmt: skip
    recipe = json.loads((tmp_path / "submission.recipe.json").read_text())
    assert recipe["total_mb"] <= budget_bytes / 1e6 + 1e-9
    chosen = recipe["model_sizes"]
    assert chosen and all(name.split("@")[1] == v["precision"] for name, v in chosen.items())
    assert len({name.split("@")[0] for name in chosen}) == len(chosen)  # one precision per run
    assert output.read_text().startswith("VideoId,LabelConfidencePairs")
    for run in ("gnv", "avg"):  # the stores are cached beside the runs
        for precision in ("float32", "float16", "int8"):
            assert (runs / run / "precisions" / f"validate.{precision}.parquet").exists()


def test_run_flags_without_runs_are_one_line_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["ensemble", "--validation=x*.parquet", "--precisions=int8"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "go with --runs" in err and err.count("\n") == 1
