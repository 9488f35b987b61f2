"""Precision stores: each run predicted once per precision and split, cached beside the run,
reused until the model changes, and paired by name for the budgeted ensemble."""

import json
import os

import pytest

from tests.y8m.run.tiny_runs import TINY_GNV, train_tiny
from y8m.errors import UsageError
from y8m.run import predict as predict_module
from y8m.run.precision_stores import precision_stores, store_file


@pytest.fixture(scope="module")
def runs(synth_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    train_tiny(synth_dir, root / "gnv", "gated_netvlad", **TINY_GNV)
    train_tiny(synth_dir, root / "avg", "average_logistic")
    return root


@pytest.fixture()
def spy(monkeypatch):
    """Counts `y8m predict` calls as (run folder, split, precision)."""
    calls = []
    real = predict_module.predict

    def counting(**kwargs):
        run = os.path.basename(kwargs["train_dir"])
        calls.append((run, kwargs["split"], kwargs["precision"]))
        return real(**kwargs)

    monkeypatch.setattr(predict_module, "predict", counting)
    return calls


def _metadata(path):
    import pyarrow.parquet as pq

    from y8m.predictions import METADATA_KEY

    return json.loads(pq.read_schema(path).metadata[METADATA_KEY])


def test_stores_are_predicted_once_and_reused(runs, synth_dir, spy):
    from y8m.run.loading import load_model
    from y8m.run.quantize import model_bytes

    validate = str(synth_dir / "frame" / "validate*.tfrecord")
    test = str(synth_dir / "frame" / "test*.tfrecord")
    first = precision_stores(
        str(runs / "*"), "float32,int8", validate, test, top_k=64, progress=False
    )
    assert [(os.path.basename(e["run"]), e["precision"]) for e in first] == [
        ("avg", "float32"), ("avg", "int8"), ("gnv", "float32"), ("gnv", "int8"),
    ]  # fmt: skip
    assert len(spy) == 8
    for entry in first:
        run, precision = entry["run"], entry["precision"]
        model, _ = load_model(run, progress=False)
        for split, key in (("validate", "validation"), ("test", "test")):
            assert entry[key] == store_file(run, split, precision) and os.path.exists(entry[key])
            meta = _metadata(entry[key])
            assert (
                meta["model_name"] == entry["model_name"] == f"{os.path.basename(run)}@{precision}"
            )
            assert meta["precision"] == precision and meta["run"] == os.path.basename(run)
            assert meta["model_bytes"] == entry["model_bytes"] == model_bytes(model, precision)
            assert meta["split"] == split and meta["top_k"] == 64
            assert meta["data_pattern"] == (validate if split == "validate" else test)
    sizes = {(os.path.basename(e["run"]), e["precision"]): e["model_bytes"] for e in first}
    assert sizes[("avg", "float32")] == 4 * (1152 * 64 + 64)
    assert sizes[("avg", "int8")] == 1152 * 64 + 4 * 64 + 4 * 64  # codes, scales, float32 bias
    assert sizes[("gnv", "int8")] < sizes[("gnv", "float32")]

    # The same call predicts nothing; a newer model, or other records, predict again.
    spy.clear()
    assert precision_stores([str(runs / "avg"), str(runs / "gnv")], ["float32", "int8"],
                            validate, test, top_k=64, progress=False) == first  # fmt: skip
    assert spy == []
    # gnv's stores become older than its model (as after training it further).
    earlier = os.path.getmtime(runs / "gnv" / "model.keras") - 10
    for split in ("validate", "test"):
        os.utime(store_file(str(runs / "gnv"), split, "int8"), (earlier, earlier))
    other_test = str(synth_dir / "frame" / "test0000.tfrecord")
    precision_stores(str(runs / "*"), "int8", validate, other_test, top_k=64, progress=False)
    assert sorted(spy) == [("avg", "test", "int8"), ("gnv", "test", "int8"),
                           ("gnv", "validate", "int8")]  # fmt: skip


def test_stores_pair_up_for_the_budgeted_ensemble(runs, synth_dir, tmp_path):
    from ensembles.commands import ensemble
    from ensembles.inputs import index_files

    validate = str(synth_dir / "frame" / "validate*.tfrecord")
    test = str(synth_dir / "frame" / "test*.tfrecord")
    entries = precision_stores(
        str(runs / "*"), "float32,int8", validate, test, top_k=64, progress=False
    )
    validation_glob = str(runs / "*" / "precisions" / "validate.*.parquet")
    test_glob = str(runs / "*" / "precisions" / "test.*.parquet")
    names = sorted(e["model_name"] for e in entries)
    assert sorted(index_files(validation_glob, "validation")) == names
    assert sorted(index_files(test_glob, "test")) == names
    result = ensemble(
        validation=validation_glob,
        test=test_glob,
        greedy=4,
        max_mb=0.5,
        output_file=str(tmp_path / "budget.csv"),
    )
    assert result["total_mb"] <= 0.5 and result["num_test_videos"] == 32
    runs_chosen = [name.split("@")[0] for name in result["weights"]]
    assert len(runs_chosen) == len(set(runs_chosen))  # one precision per run


def test_precision_store_errors(runs, synth_dir, tmp_path):
    validate = str(synth_dir / "frame" / "validate*.tfrecord")
    with pytest.raises(UsageError, match="unknown precision 'int4'"):
        precision_stores(str(runs / "*"), "float32,int4", validate, progress=False)
    with pytest.raises(UsageError, match="no run directories match"):
        precision_stores(str(tmp_path / "none*"), "int8", validate, progress=False)
    with pytest.raises(UsageError, match="no such run directory"):
        precision_stores([str(tmp_path / "missing")], "int8", validate, progress=False)
    with pytest.raises(UsageError, match="has no model.keras or checkpoint"):
        precision_stores([str(tmp_path)], "int8", validate, progress=False)
