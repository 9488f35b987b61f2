"""train -> eval -> predict end to end on tiny synthetic data, and resume after SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from y8m.errors import UsageError
from y8m.run import rundir

TINY = {"cluster_size": 4, "hidden_size": 16, "sample_frames": 8, "num_mixtures": 2}


@pytest.fixture(scope="module")
def trained(synth_dir, tmp_path_factory):
    from y8m.run.train import train

    run_dir = tmp_path_factory.mktemp("runs") / "gnv"
    result = train(
        model="gated_netvlad",
        train_data_pattern=str(synth_dir / "frame" / "train*.tfrecord"),
        train_dir=str(run_dir),
        batch_size=16,
        max_steps=6,
        checkpoint_steps=3,
        validate_data_pattern=str(synth_dir / "frame" / "validate*.tfrecord"),
        progress=False,
        num_classes=64,
        **TINY,
    )
    return run_dir, result


def test_train_writes_the_run_directory(trained):
    run_dir, result = trained
    assert result["step"] == 6 and np.isfinite(result["loss"]) and 0 <= result["gap"] <= 1
    for name in ("config.json", "model.keras", "history.csv", "training_curve.png"):
        assert (run_dir / name).exists(), name
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model"] == "gated_netvlad" and config["overrides"]["cluster_size"] == 4
    assert config["data"]["sample"] == "random" and config["num_classes"] == 64
    assert os.listdir(run_dir / "logs")  # TensorBoard events


def test_eval_and_predict_agree_with_the_model(trained, synth_dir, tmp_path):
    from y8m.data.readers import iterate
    from y8m.metrics import gap
    from y8m.predictions import load_predictions
    from y8m.run.evaluate import evaluate
    from y8m.run.predict import predict

    run_dir, _ = trained
    pattern = str(synth_dir / "frame" / "validate*.tfrecord")
    result = evaluate(
        train_dir=str(run_dir), eval_data_pattern=pattern, batch_size=8, progress=False
    )
    assert result["num_videos"] == 32
    assert json.loads((run_dir / "eval.json").read_text())["gap"] == pytest.approx(result["gap"])
    out = predict(
        train_dir=str(run_dir),
        input_data_pattern=pattern,
        output_file=str(tmp_path / "val"),
        top_k=64,
        batch_size=5,
        progress=False,
        csv=True,
    )
    stored = load_predictions(out["output_file"])
    assert stored.metadata["model_name"] == "gnv" and stored.metadata["split"] == "validate"
    assert os.path.exists(out["csv_file"])
    # The stored top-K equal the model's own outputs on the same (ordered, all-frame) input.
    from y8m.run.loading import load_model

    model, config = load_model(str(run_dir))
    dense = {}
    labels = {}
    for batch in iterate(
        rundir.dataset_for(config, pattern, training=False, batch_size=32), pattern
    ):
        p = np.asarray(model(rundir.model_inputs(batch, config), training=False))
        for vid, row, y in zip(batch["id"], p, batch["labels"]):
            dense[vid.decode()] = row
            labels[vid.decode()] = y
    for vid, cls, score in zip(stored.ids, stored.classes, stored.scores):
        np.testing.assert_allclose(score, dense[vid][cls], rtol=1e-5, atol=1e-6)
        assert score[0] == pytest.approx(dense[vid].max(), rel=1e-5)
    ids = list(dense)
    expected = gap(np.stack([dense[i] for i in ids]), np.stack([labels[i] for i in ids]))
    assert result["gap"] == pytest.approx(expected, abs=1e-6)


def test_resume_continues_from_checkpoint(trained, synth_dir):
    from y8m.run.train import train

    run_dir, _ = trained
    result = train(
        model="gated_netvlad",
        train_data_pattern=str(synth_dir / "frame" / "train*.tfrecord"),
        train_dir=str(run_dir),
        batch_size=16,
        max_steps=8,
        checkpoint_steps=3,
        progress=False,
        num_classes=64,
        **TINY,
    )
    assert result["step"] == 8
    with pytest.raises(UsageError, match="different"):
        train(
            model="gated_netvlad",
            train_data_pattern=str(synth_dir / "frame" / "train*.tfrecord"),
            train_dir=str(run_dir),
            batch_size=16,
            max_steps=9,
            progress=False,
            num_classes=64,
            **{**TINY, "cluster_size": 8},
        )


def test_sigkill_then_rerun_resumes(synth_dir, tmp_path, capsys):
    run_dir = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "y8m.cli",
        "train",
        "--model=average_logistic",
        f"--train_data_pattern={synth_dir}/frame/train*.tfrecord",
        f"--train_dir={run_dir}",
        "--batch_size=8",
        "--max_steps=100000",
        "--checkpoint_steps=2",
        "--num_classes=64",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = run_dir / "checkpoints"
    deadline = time.time() + 240
    while time.time() < deadline and not (
        ckpt.exists() and len([p for p in os.listdir(ckpt) if p.endswith(".index")]) >= 2
    ):
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # The newest complete checkpoint on disk (the kill may land after a checkpoint's files
    # are written and before TensorFlow's `checkpoint` state file names it).
    latest = rundir.latest_checkpoint(str(run_dir))
    assert latest, "no checkpoint before the kill"
    killed_at = int(latest.rsplit("-", 1)[1])
    from y8m.run.train import train

    result = train(
        model="average_logistic",
        train_data_pattern=str(synth_dir / "frame" / "train*.tfrecord"),
        train_dir=str(run_dir),
        batch_size=8,
        max_steps=killed_at + 2,
        checkpoint_steps=2,
        num_classes=64,
        progress=False,
    )
    assert result["step"] == killed_at + 2
    assert f"from step {killed_at}" in capsys.readouterr().out


def test_nan_loss_stops_and_keeps_checkpoint(synth_dir, tmp_path):
    from y8m.run.train import train

    with pytest.raises(UsageError, match="NaN|nan"):
        train(
            model="logistic",
            train_data_pattern=str(synth_dir / "video" / "train*.tfrecord"),
            train_dir=str(tmp_path / "nan"),
            batch_size=8,
            max_steps=50,
            base_learning_rate=1e30,
            clip_gradient_norm=0,
            num_classes=64,
            progress=False,
        )


def test_wrong_level_is_a_clear_error(synth_dir, tmp_path):
    from y8m.run.train import train

    with pytest.raises(UsageError, match="video-level"):
        train(
            model="moe",
            train_data_pattern=str(synth_dir / "frame" / "train*.tfrecord"),
            train_dir=str(tmp_path / "x"),
            max_steps=1,
            progress=False,
        )


def test_export_float32_and_float16(trained, synth_dir, tmp_path):
    import tarfile

    from y8m.run.evaluate import evaluate
    from y8m.run.export import export

    run_dir, _ = trained
    pattern = str(synth_dir / "frame" / "validate*.tfrecord")
    full = export(train_dir=str(run_dir), output_file=str(tmp_path / "m32.tgz"))
    half = export(
        train_dir=str(run_dir),
        output_file=str(tmp_path / "m16.tgz"),
        dtype="float16",
        check_data_pattern=pattern,
    )
    assert abs(half["gap_float16"] - half["gap_float32"]) < 0.001
    assert half["mb"] < 0.75 * full["mb"]
    for name in ("m32", "m16"):
        out = tmp_path / name
        with tarfile.open(tmp_path / f"{name}.tgz") as tar:
            tar.extractall(out)
        result = evaluate(train_dir=str(out), eval_data_pattern=pattern, progress=False)
        assert result["gap"] == pytest.approx(half["gap_float32"], abs=1e-3)


def test_max_model_mb_refuses_a_large_model(synth_dir, tmp_path):
    from y8m.run.train import train

    with pytest.raises(UsageError, match="max_model_mb"):
        train(
            model="gated_netvlad",
            train_data_pattern=str(synth_dir / "frame" / "train*.tfrecord"),
            train_dir=str(tmp_path / "big"),
            max_steps=1,
            num_classes=64,
            max_model_mb=1,
            progress=False,
        )
    assert not (tmp_path / "big" / "config.json").exists()
