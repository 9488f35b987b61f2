import json
import os
import re

import numpy as np
import pandas as pd
import pytest

from tests.y8m.run.report.planted import two_stores, write_store
from tests.y8m.run.tiny_runs import TINY_GNV, train_tiny
from y8m import metrics
from y8m.cli.main import main
from y8m.errors import UsageError
from y8m.run import rundir
from y8m.run.report.build import report


@pytest.fixture
def planted_report(tmp_path):
    data = two_stores(tmp_path, top_k=12)
    out = report(
        stores=str(tmp_path / "stores" / "*.parquet"),
        vocabulary=data["vocabulary"],
        output_dir=str(tmp_path / "out"),
        progress=False,
    )
    return data, out, tmp_path / "out"


def test_the_tables_are_the_metrics_of_the_stores(planted_report):
    data, out, folder = planted_report
    labels = data["labels"]
    summary = pd.read_csv(folder / "summary.csv").set_index("store")
    classes = pd.read_csv(folder / "classes.csv")
    for name in ("strong", "weak"):
        # The stores keep 12 classes per video; GAP@20 and mAP@20 see just those 12.
        kept = np.full_like(data[name], -np.inf)
        index, top = metrics.top_k_per_row(data[name], 12)
        np.put_along_axis(kept, index, top, axis=1)
        assert summary.loc[name, "gap"] == pytest.approx(metrics.gap(kept, labels), abs=1e-6)
        index, top = metrics.top_k_per_row(kept, 20, labels=labels)
        hits = np.take_along_axis(labels, index, axis=1) > 0
        finite = np.isfinite(top)
        ap = metrics.average_precision_by_class(
            index[finite], top[finite], hits[finite], labels.sum(axis=0)
        )
        np.testing.assert_allclose(classes[f"ap:{name}"], ap[classes["class"]], atol=1e-6)
    assert summary.loc["strong", "gap"] > summary.loc["weak", "gap"] + 0.3
    assert list(classes["name"][:2]) == ["class 0", "class 1"]
    assert classes["train_videos"].iloc[0] == 1000
    assert out["stores"]["strong"]["videos"] == 300


def test_the_page_is_self_contained_and_the_set_is_recorded(planted_report):
    _, out, folder = planted_report
    text = (folder / "index.html").read_text()
    sources = re.findall(r'(?:src|href)="([^"]+)"', text)
    assert sources and all(s.startswith("data:image/png;base64,") or s.endswith(".csv")
                           for s in sources)  # fmt: skip
    assert text.count("<img ") == 4  # verticals, long tail and scatter, calibration
    for anchor in ("summary", "verticals", "long-tail", "confusions", "calibration", "classes"):
        assert f'id="{anchor}"' in text
    manifest = json.loads((folder / "report.json").read_text())
    assert set(manifest["files"]) == {os.path.basename(p) for p in [*out["files"], out["index"]]}


def test_runs_add_their_training_curves(tmp_path, synth_dir):
    run = train_tiny(synth_dir, tmp_path / "runs" / "gnv", "gated_netvlad", max_steps=4,
                     log_steps=1, **TINY_GNV)  # fmt: skip
    other = tmp_path / "runs" / "hand"
    os.makedirs(other)
    for step, loss in ((10, 0.9), (20, 0.5)):
        rundir.append_history(str(other), {"step": step, "loss": loss, "learning_rate": 0.01})
    rundir.append_history(str(other), {"step": 20, "validation_gap": 0.42})
    out = report(runs=str(tmp_path / "runs" / "*"), output_dir=str(tmp_path / "out"))
    curves = pd.read_csv(tmp_path / "out" / "curves.csv")
    assert set(curves["run"]) == {"gnv", "hand"}
    history = pd.read_csv(os.path.join(run, rundir.HISTORY_FILE))
    assert len(curves[curves["run"] == "gnv"]) == len(history)
    text = open(out["index"]).read()
    assert 'id="training"' in text and "0.4200" in text
    assert out["stores"] == {}


def test_the_command_line_prints_each_store_and_the_page(tmp_path, capsys):
    two_stores(tmp_path)
    main(["report", f"--stores={tmp_path}/stores/*.parquet", f"--output_dir={tmp_path}/o"])
    printed = capsys.readouterr().out
    assert re.search(r"strong: GAP 0\.\d{4}", printed)
    assert f"report: {tmp_path}/o/index.html" in printed


def test_user_errors_are_one_line(tmp_path):
    with pytest.raises(UsageError, match="nothing to report"):
        report(output_dir=str(tmp_path / "o"))
    with pytest.raises(UsageError, match="no prediction stores match"):
        report(stores=str(tmp_path / "none*.parquet"))
    os.makedirs(tmp_path / "notarun")
    with pytest.raises(UsageError, match="no history.csv"):
        report(runs=str(tmp_path / "notarun"))
    scores = np.full((3, 4), 0.5, np.float32)
    write_store(str(tmp_path / "test.parquet"), scores, None, "unlabelled")
    with pytest.raises(UsageError, match="no labels"):
        report(stores=str(tmp_path / "test.parquet"), output_dir=str(tmp_path / "o"))
    assert not os.path.exists(tmp_path / "o" / "index.html")
