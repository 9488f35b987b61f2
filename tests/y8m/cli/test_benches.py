"""Each benchmark command runs end to end on tiny sizes and ends with one JSON line."""

import json

import pytest


def _last_json(capsys):
    lines = capsys.readouterr().out.strip().splitlines()
    return json.loads(lines[-1])


def test_bench_reader(synth_dir, capsys):
    from y8m.cli.bench.reader import bench_reader

    bench_reader(
        str(synth_dir / "frame" / "train*.tfrecord"),
        batch_size=8,
        num_samples=20,
        max_batches=2,
        rounds=1,
    )
    figures = _last_json(capsys)
    assert figures["videos_per_s"] > 0 and figures["baseline_videos_per_s"] > 0


def test_bench_train_counts_flops(capsys):
    from y8m.cli.bench.train import bench_train

    bench_train(
        model="average_logistic",
        batch_size=4,
        num_classes=10,
        frames=6,
        steps=1,
        warmup=1,
        matmul_size=64,
    )
    figures = _last_json(capsys)
    # average_logistic: one [B, 1152] x [1152, 10] product forward, x3 for the backward pass
    assert figures["flops_per_example"] == pytest.approx(3 * 2 * 1152 * 10, rel=0.01)
    assert figures["examples_per_s"] > 0 and figures["matmul_flops_per_s"] > 0
    # the same step with Keras' own Adam, timed in turn with training's fused one
    assert figures["keras_adam_examples_per_s"] > 0 and figures["speedup_vs_keras_adam"] > 0
    assert len(figures["speedup_rounds"]) == figures["steps"] == 1
    # the same keys on every device; on this CPU-only machine "auto" is the CPU
    assert figures["device"] == "cpu" and figures["device_name"]
    assert figures["device_memory_gb"] is None or figures["device_memory_gb"] > 0


def test_bench_train_device_flag():
    import tensorflow as tf

    from y8m.cli.bench.device import describe, pick_device
    from y8m.errors import UsageError

    with pytest.raises(UsageError, match="auto, cpu or gpu"):
        pick_device("tpu")
    if not tf.config.list_logical_devices("GPU"):
        with pytest.raises(UsageError, match="sees no GPU; use --device=cpu"):
            pick_device("gpu")
        assert pick_device("auto")["name"] == "cpu"
    with pick_device("cpu")["scope"]():
        assert describe()["device"] == "cpu"


@pytest.mark.slow
def test_bench_predict_and_learn(tmp_path, capsys):
    from y8m.cli.bench.learn import bench_learn
    from y8m.cli.bench.predict import bench_predict

    bench_predict(videos="30,60", workdir=str(tmp_path / "p"), batch_size=16)
    figures = _last_json(capsys)
    assert figures["sizes"] == [30, 60] and len(figures["peak_rss_mb"]) == 2
    bench_learn(steps=2, batch_size=8, videos=24, output_dir=str(tmp_path / "l"))
    figures = _last_json(capsys)
    assert 0 <= figures["gap_gated_netvlad"] <= 1 and 0 <= figures["gap_average_logistic"] <= 1
    # fire hands `--models=a,b` over as a tuple.
    bench_learn(models=("average_logistic", "average_moe_cg"), steps=1, batch_size=8,
                videos=24, output_dir=str(tmp_path / "l2"))  # fmt: skip
    assert {"gap_average_logistic", "gap_average_moe_cg"} <= set(_last_json(capsys))


@pytest.mark.slow
def test_bench_extract(tmp_path, capsys):
    from y8m.cli.bench.extract import bench_extract

    figures = bench_extract(videos=1, seconds=2.5, fps=5, width=64, height=48,
                            workdir=str(tmp_path))  # fmt: skip
    assert figures == _last_json(capsys)
    assert figures["frames"] == 3 and figures["network"] == "keras_inception_v3"
    assert figures["rgb_frames_per_s"] > 0 and figures["frames_per_s"] > 0


@pytest.mark.slow
def test_bench_pack(tmp_path, capsys):
    from y8m.cli.bench.pack import bench_pack

    figures = bench_pack(steps=2, videos=48, batch_size=8, greedy=2, workdir=str(tmp_path))
    assert figures == _last_json(capsys)
    assert figures["budgeted_mb"] <= figures["budget_mb"] + 1e-9
    assert figures["budget_mb"] < figures["greedy_mb"]
    assert 0 <= figures["budgeted_gap"] <= 1 and figures["packed_file_mb"] > 0
