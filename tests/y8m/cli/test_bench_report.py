import json

from y8m.cli.bench.report import bench_report


def test_bench_report_times_the_report_and_prints_json_last(tmp_path, capsys):
    figures = bench_report(videos=600, top_k=30, num_classes=200, stores=2, workdir=str(tmp_path))
    lines = capsys.readouterr().out.strip().splitlines()
    assert json.loads(lines[-1]) == figures
    assert figures["videos"] == 600 and figures["stores"] == 2
    assert 0 < figures["seconds"] < 60 and figures["peak_rss_mb"] > 0
    assert (tmp_path / "report" / "index.html").stat().st_size > 10_000
    classes = (tmp_path / "report" / "classes.csv").read_text().splitlines()
    assert classes[0].startswith("class,name,vertical,train_videos,positives,ap:model0")
