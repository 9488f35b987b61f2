"""`y8m bench reader`: per-round ratios, their median, the floor and the equality check."""

import json

import numpy as np
import pytest

from y8m.cli.bench.reader import _summary, bench_reader
from y8m.errors import UsageError

_KEPT_KEYS = {
    "videos_per_s",
    "mb_per_s",
    "baseline_videos_per_s",
    "speedup",
    "batch_size",
    "num_samples",
    "files",
    "dataset_mb",
}


def test_bench_reader_ends_with_its_figures(synth_dir, capsys):
    bench_reader(
        str(synth_dir / "frame" / "train*.tfrecord"),
        batch_size=8,
        num_samples=20,
        max_batches=2,
        rounds=3,
        warmup=1,
    )
    lines = capsys.readouterr().out.strip().splitlines()
    figures = json.loads(lines[-1])
    assert _KEPT_KEYS <= set(figures)
    assert figures["rounds"] == len(figures["speedup_rounds"]) == 3
    assert figures["speedup_vs_plain"] == pytest.approx(
        np.median(figures["speedup_rounds"]), abs=0.01
    )
    assert figures["speedup_min"] <= figures["speedup_vs_plain"] <= figures["speedup_max"]
    assert figures["floor_videos_per_s"] > 0 and figures["read_videos_per_s"] > 0
    ratio = figures["videos_per_s"] / figures["floor_videos_per_s"]
    assert figures["fraction_of_floor"] == pytest.approx(ratio, abs=0.002)
    assert figures["max_abs_diff_vs_plain"] <= 1e-5
    assert any("median" in line and "per round" in line for line in lines)


def test_speedup_is_the_median_of_the_rounds_ratios():
    rates = {
        "y8m": [2.0, 4.0, 9.0],
        "baseline": [1.0, 1.0, 3.0],
        "floor": [10.0] * 3,
        "read": [20.0] * 3,
    }
    cpu = {
        "y8m": [1.0, 2.0, 1.0],
        "baseline": [2.0, 2.0, 4.0],
        "floor": [0.5] * 3,
        "read": [0.2] * 3,
    }
    figures = _summary(rates, cpu, mb=1.0)
    # Round ratios 2, 4 and 3: their median, not the ratio of the medians (4 / 1).
    assert figures["speedup_vs_plain"] == 3.0 and figures["speedup"] == 4.0
    assert (figures["speedup_min"], figures["speedup_max"]) == (2.0, 4.0)
    assert figures["cpu_speedup_vs_plain"] == 2.0  # CPU ratios 2, 1, 4
    assert figures["fraction_of_floor"] == 0.4


def test_bench_reader_rejects_empty_runs(synth_dir):
    with pytest.raises(UsageError, match="rounds"):
        bench_reader(str(synth_dir / "frame" / "train*.tfrecord"), rounds=0)
