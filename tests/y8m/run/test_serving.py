"""`y8m export --format=saved_model`: the SavedModel loads in a fresh process, takes the raw
serialized records and gives `y8m predict`'s top-K for the same videos."""

import json
import subprocess
import sys
import tarfile

import numpy as np
import pytest

from y8m.errors import UsageError

TINY = {"cluster_size": 4, "hidden_size": 16, "sample_frames": 8, "num_mixtures": 2}
TOP_K = 20

# Runs in a fresh interpreter: loads the SavedModel with TensorFlow alone (no y8m, no Keras
# objects), feeds the records' raw bytes and prints the outputs and the signature as JSON.
SERVE = """
import json, sys
import tensorflow as tf
folder, pattern = sys.argv[1], sys.argv[2]
loaded = tf.saved_model.load(folder, tags=["serve"])
fn = loaded.signatures["serving_default"]
files = sorted(tf.io.gfile.glob(pattern))
records = [r.numpy() for r in tf.data.TFRecordDataset(files)]
out = {"video_id": [], "class_indexes": [], "predictions": []}
for i in range(0, len(records), 7):  # several batches, the last one short
    got = fn(example_bytes=tf.constant(records[i : i + 7]))
    out["video_id"] += [v.decode() for v in got["video_id"].numpy()]
    out["class_indexes"] += got["class_indexes"].numpy().tolist()
    out["predictions"] += got["predictions"].numpy().tolist()
inputs = fn.structured_input_signature[1]
out["inputs"] = {k: [v.dtype.name, v.shape.as_list()] for k, v in inputs.items()}
out["outputs"] = {k: [v.dtype.name, v.shape.as_list()] for k, v in fn.structured_outputs.items()}
print(json.dumps(out))
"""


def _train(synth_dir, run_dir, model, level, **hparams):
    from y8m.run.train import train

    train(
        model=model,
        train_data_pattern=str(synth_dir / level / "train*.tfrecord"),
        train_dir=str(run_dir),
        batch_size=16,
        max_steps=4,
        progress=False,
        num_classes=64,
        **hparams,
    )
    return run_dir


@pytest.fixture(scope="module")
def runs(synth_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("serving_runs")
    return {
        "frame": _train(synth_dir, root / "gnv", "gated_netvlad", "frame", **TINY),
        "video": _train(synth_dir, root / "moe", "moe", "video"),
    }


def _serve(folder, pattern) -> dict:
    run = subprocess.run(
        [sys.executable, "-c", SERVE, str(folder), pattern],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def _predicted(run_dir, pattern, tmp_path) -> dict:
    from y8m.predictions import load_predictions
    from y8m.run.predict import predict

    out = predict(
        train_dir=str(run_dir),
        input_data_pattern=pattern,
        output_file=str(tmp_path / f"{run_dir.name}_preds"),
        top_k=TOP_K,
        batch_size=5,
        progress=False,
    )
    stored = load_predictions(out["output_file"])
    return {
        v: (np.asarray(c), np.asarray(s))
        for v, c, s in zip(stored.ids, stored.classes, stored.scores)
    }


def _assert_same_top_k(served: dict, predicted: dict) -> None:
    assert sorted(served["video_id"]) == sorted(predicted)
    assert len(served["video_id"]) == len(set(served["video_id"]))
    for vid, classes, scores in zip(
        served["video_id"], served["class_indexes"], served["predictions"]
    ):
        want_classes, want_scores = predicted[vid]
        np.testing.assert_allclose(scores, want_scores, rtol=0, atol=1e-5)
        # Ties aside: a class must match wherever its score stands apart from its neighbours.
        gaps = np.abs(np.diff(want_scores))
        apart = np.ones(len(want_scores), bool)
        apart[:-1] &= gaps > 1e-6
        apart[1:] &= gaps > 1e-6
        np.testing.assert_array_equal(np.asarray(classes)[apart], want_classes[apart])


@pytest.mark.parametrize("level", ["frame", "video"])
def test_saved_model_serves_predicts_top_k(runs, synth_dir, tmp_path, level):
    from y8m.run.export import export

    run_dir = runs[level]
    pattern = str(synth_dir / level / "test*.tfrecord")
    folder = tmp_path / "serving"
    result = export(
        train_dir=str(run_dir), output_file=str(folder), format="saved_model", top_k=TOP_K
    )
    assert (folder / "saved_model.pb").exists() and result["mb"] > 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    served = _serve(folder, pattern)
    assert served["inputs"] == {"example_bytes": ["string", [None]]}
    assert served["outputs"] == {
        "video_id": ["string", [None]],
        "class_indexes": ["int32", [None, TOP_K]],
        "predictions": ["float32", [None, TOP_K]],
    }
    _assert_same_top_k(served, _predicted(run_dir, pattern, tmp_path))


def test_tgz_unpacks_to_a_saved_model_and_a_rerun_replaces_it(runs, synth_dir, tmp_path):
    from y8m.run.export import export

    run_dir = runs["video"]
    pattern = str(synth_dir / "video" / "test*.tfrecord")
    export(train_dir=str(run_dir), output_file=str(tmp_path / "m.tgz"), format="saved_model",
           top_k=5, dtype="float16")  # fmt: skip
    with tarfile.open(tmp_path / "m.tgz") as tar:
        names = tar.getnames()
        tar.extractall(tmp_path / "unpacked")
    assert "saved_model.pb" in names and "config.json" in names
    config = json.loads((tmp_path / "unpacked" / "config.json").read_text())
    assert config["data"]["frame_level"] is False and config["serving"]["top_k"] == 5
    served = _serve(tmp_path / "unpacked", pattern)
    assert np.asarray(served["class_indexes"]).shape == (32, 5)
    # Exporting over an existing SavedModel folder replaces it whole.
    folder = tmp_path / "folder"
    for k in (3, 4):
        export(train_dir=str(run_dir), output_file=str(folder), format="saved_model", top_k=k)
    assert np.asarray(_serve(folder, pattern)["class_indexes"]).shape == (32, 4)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")) == []


def test_bad_flags_are_one_line_errors(runs, tmp_path):
    from y8m.run.export import export

    run_dir = str(runs["video"])
    cases = [
        (dict(format="onnx"), "--format must be one of keras, saved_model"),
        (dict(format="saved_model", top_k=0), "--top_k must be at least 1"),
        (dict(format="saved_model", top_k=65), "--top_k must be at most 64"),
        (dict(model_file="x.keras"), "need --format=saved_model"),
    ]
    for kwargs, message in cases:
        with pytest.raises(UsageError, match=message) as err:
            export(train_dir=run_dir, output_file=str(tmp_path / "out"), **kwargs)
        assert "\n" not in str(err.value)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("keep me")
    with pytest.raises(UsageError, match="holds no SavedModel"):
        export(train_dir=run_dir, output_file=str(tmp_path / "notes"), format="saved_model")
    assert (tmp_path / "notes" / "a.txt").read_text() == "keep me"


def test_model_file_with_config_from(runs, synth_dir, tmp_path):
    from y8m.run.export import export

    run_dir = runs["frame"]
    pattern = str(synth_dir / "frame" / "test*.tfrecord")
    folder = tmp_path / "from_file"
    export(model_file=str(run_dir / "model.keras"), config_from=str(run_dir),
           output_file=str(folder), format="saved_model")  # fmt: skip
    _assert_same_top_k(_serve(folder, pattern), _predicted(run_dir, pattern, tmp_path))
