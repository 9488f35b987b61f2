"""`y8m pack`: a greedy ensemble recipe as one Keras model that reproduces the ensemble's
validation GAP, stores only its branches' weights at their precisions, reloads in a fresh
process, and is refused when it does not match the stores."""

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from tests.y8m.run.tiny_runs import TINY_GNV, TINY_NEXTVLAD, train_tiny
from y8m.errors import UsageError

STORE_TOP_K = 30  # below the 64 classes, so each branch's top-K cut matters


@pytest.fixture(scope="module")
def setup(synth_dir, tmp_path_factory):
    """Three tiny frame-level runs, their float32 validation stores and a greedy recipe."""
    from ensembles.commands import ensemble
    from y8m.run.predict import predict

    root = tmp_path_factory.mktemp("pack")
    train_tiny(synth_dir, root / "gnv", "gated_netvlad", max_steps=6, **TINY_GNV)
    train_tiny(synth_dir, root / "avg", "average_logistic", max_steps=6)
    train_tiny(synth_dir, root / "nxv", "nextvlad", max_steps=6, **TINY_NEXTVLAD)
    validate = str(synth_dir / "frame" / "validate*.tfrecord")
    for run in ("gnv", "avg", "nxv"):
        predict(train_dir=str(root / run), input_data_pattern=validate, top_k=STORE_TOP_K,
                output_file=str(root / "stores" / f"{run}.parquet"), progress=False)  # fmt: skip
    result = ensemble(validation=str(root / "stores" / "*.parquet"), greedy=3,
                      output_file=str(root / "ens" / "ensemble.csv"))  # fmt: skip
    return {"root": root, "validate": validate, "ensemble": result}


@pytest.fixture(scope="module")
def packed(setup):
    from y8m.run.pack import pack

    out = str(setup["root"] / "packed" / "ensemble.keras")
    return pack(recipe=setup["ensemble"]["recipe"], output_file=out, progress=False)


def test_packed_model_reproduces_the_ensemble_gap(setup, packed):
    from y8m.predictions import load_predictions
    from y8m.run.predict import predict

    recipe = json.load(open(setup["ensemble"]["recipe"]))
    # (How many models the greedy keeps depends on the tiny runs; the three-model test below
    # fixes the weights.)
    assert len(packed["branches"]) == len(recipe["weights"])
    assert packed["max_score_diff"] <= 1e-5 and packed["mismatched_videos"] == 0
    store = str(setup["root"] / "packed_validate.parquet")
    predict(model_file=packed["output_file"], input_data_pattern=setup["validate"],
            output_file=store, top_k=20, progress=False)  # fmt: skip
    stored = load_predictions(store)
    assert stored.metadata["model_name"] == "ensemble"
    assert abs(stored.gap(20) - recipe["validation_gap"]) <= 1e-6
    assert abs(packed["gap_packed"] - recipe["validation_gap"]) <= 1e-6
    sidecar = json.load(open(packed["sidecar"]))
    assert sidecar["model"] == "packed_ensemble" and sidecar["num_classes"] == 64
    assert [b["name"] for b in sidecar["branches"]] == list(recipe["weights"])


def test_a_three_model_ensemble_reproduces_its_gap(setup, tmp_path):
    from ensembles.commands import ensemble
    from y8m.run.pack import pack

    # The greedy's best step may use fewer models: fixed weights make all three branches.
    fit = ensemble(validation=str(setup["root"] / "stores" / "*.parquet"), method="weighted",
                   weights="gnv=0.5,avg=0.2,nxv=0.3", output_file=str(tmp_path / "e.csv"))  # fmt: skip
    result = pack(recipe=fit["recipe"], output_file=str(tmp_path / "three.keras"), progress=False)
    assert [b["name"] for b in result["branches"]] == ["gnv", "avg", "nxv"]
    assert abs(result["gap_packed"] - fit["validation_gap"]) <= 1e-6
    assert result["max_score_diff"] <= 1e-5 and result["mismatched_videos"] == 0


def test_the_file_holds_only_the_packed_weights(packed):
    import keras

    import frame_models  # noqa: F401

    model = keras.saving.load_model(packed["output_file"], compile=False)
    arrays = _saved_arrays(packed["output_file"], packed["output_file"] + ".h5")
    assert len(arrays) == len(model.weights)
    # The saved arrays are exactly the branches' stored bytes: no float32 copies of them.
    assert sum(a.nbytes for a in arrays) == sum(b["bytes"] for b in packed["branches"])
    assert sum(model.branch_bytes()) == sum(b["bytes"] for b in packed["branches"])
    assert os.path.getsize(packed["output_file"]) < 1.5 * sum(model.branch_bytes()) + 200_000


def test_it_loads_in_a_fresh_process_and_predicts_the_same(packed, tmp_path):
    import keras

    import frame_models  # noqa: F401

    rng = np.random.default_rng(0)
    x = {
        "rgb": rng.uniform(-2, 2, (3, 12, 1024)).astype(np.float32),
        "audio": rng.uniform(-2, 2, (3, 12, 128)).astype(np.float32),
        "num_frames": np.array([12, 7, 3], np.int32),
    }
    np.savez(tmp_path / "x.npz", **x)
    here = np.asarray(keras.saving.load_model(packed["output_file"])(x))
    code = (
        "import sys, numpy as np, keras, frame_models\n"
        "x = dict(np.load(sys.argv[2]))\n"
        "np.save(sys.argv[3], np.asarray(keras.saving.load_model(sys.argv[1])(x)))\n"
    )
    subprocess.run([sys.executable, "-c", code, packed["output_file"], str(tmp_path / "x.npz"),
                    str(tmp_path / "y.npy")], check=True, capture_output=True)  # fmt: skip
    there = np.load(tmp_path / "y.npy")
    assert there.shape == (3, 64)
    np.testing.assert_allclose(there, here, atol=1e-7)
    kept = (here > 0).sum(axis=1)
    assert (kept <= STORE_TOP_K * len(packed["branches"])).all()


def test_an_int8_branch_is_stored_as_int8_and_measured(setup, tmp_path):
    from ensembles.commands import ensemble
    from y8m.run.pack import pack
    from y8m.run.predict import predict

    root = setup["root"]
    stores = tmp_path / "stores"
    predict(train_dir=str(root / "gnv"), input_data_pattern=setup["validate"], top_k=STORE_TOP_K,
            output_file=str(stores / "gnv@int8.parquet"), model_name="gnv@int8",
            precision="int8", progress=False)  # fmt: skip
    predict(train_dir=str(root / "avg"), input_data_pattern=setup["validate"], top_k=STORE_TOP_K,
            output_file=str(stores / "avg.parquet"), progress=False)  # fmt: skip
    fit = ensemble(validation=str(stores / "*.parquet"), greedy=3, method="weighted",
                   weights="gnv@int8=0.6,avg=0.4", output_file=str(tmp_path / "e.csv"))  # fmt: skip
    result = pack(recipe=fit["recipe"], output_file=str(tmp_path / "int8.keras"), progress=False)
    precisions = {b["name"]: b["precision"] for b in result["branches"]}
    assert precisions == {"gnv@int8": "int8", "avg": "float32"}
    dtypes = {a.dtype for a in _saved_arrays(result["output_file"], str(tmp_path / "w.h5"))}
    assert np.dtype(np.int8) in dtypes
    # Decoded in the graph as the store's predictions decoded them: parity is measured, and
    # here as tight as float32's.
    assert abs(result["gap_diff"]) <= 1e-4 and result["max_score_diff"] <= 1e-5
    assert abs(result["gap_packed"] - fit["validation_gap"]) <= 1e-6


def test_a_store_of_other_weights_is_refused_and_nothing_is_written(setup, monkeypatch, tmp_path):
    from y8m.run import loading
    from y8m.run.pack import pack

    real = loading.load_model

    def other_weights(train_dir, **kwargs):
        model, config = real(train_dir, **kwargs)
        if os.path.basename(train_dir) == "avg":
            rng = np.random.default_rng(1)
            model.set_weights([w + rng.normal(0, 0.5, w.shape).astype(w.dtype)
                               for w in model.get_weights()])  # fmt: skip
        return model, config

    monkeypatch.setattr(loading, "load_model", other_weights)
    recipe = json.load(open(setup["ensemble"]["recipe"]))
    path = tmp_path / "recipe.json"
    # The avg run is in the ensemble whatever the greedy chose.
    recipe["weights"] = {"gnv": 0.5, "avg": 0.5}
    path.write_text(json.dumps(recipe))
    out = tmp_path / "bad.keras"
    with pytest.raises(UsageError, match="differs from the ensemble"):
        pack(recipe=str(path), output_file=str(out), progress=False)
    assert sorted(os.listdir(tmp_path)) == ["recipe.json"]


def test_bad_arguments_are_one_line_errors(setup, tmp_path):
    from y8m.run.pack import pack

    for kwargs, message in (
        ({"output_file": str(tmp_path / "a.keras")}, "missing --recipe"),
        ({"recipe": setup["ensemble"]["recipe"], "output_file": "a.h5"}, "must name a .keras"),
    ):
        with pytest.raises(UsageError, match=message) as err:
            pack(**kwargs)
        assert "\n" not in str(err.value)


def _saved_arrays(keras_file, scratch):
    """Every array in a .keras file's weights (model.weights.h5)."""
    import h5py

    with zipfile.ZipFile(keras_file) as z, open(scratch, "wb") as f:
        f.write(z.read("model.weights.h5"))
    arrays = []
    with h5py.File(scratch) as h5:
        h5.visititems(lambda _, o: arrays.append(o[()]) if isinstance(o, h5py.Dataset) else None)
    return arrays


def test_a_packed_ensemble_exports_as_a_saved_model(setup, packed, tmp_path):
    import tensorflow as tf

    from y8m.predictions import load_predictions
    from y8m.run.export import export
    from y8m.run.predict import predict

    out = str(tmp_path / "serving")
    export(model_file=packed["output_file"], format="saved_model", output_file=out, top_k=20)
    store = str(tmp_path / "packed.parquet")
    predict(model_file=packed["output_file"], input_data_pattern=setup["validate"],
            output_file=store, top_k=20, progress=False)  # fmt: skip
    stored = load_predictions(store)
    serve = tf.saved_model.load(out).signatures["serving_default"]
    files = tf.io.gfile.glob(setup["validate"])
    raw = [r.numpy() for r in tf.data.TFRecordDataset(files)]
    served = serve(example_bytes=tf.constant(raw))
    ids = [x.decode() for x in served["video_id"].numpy()]
    by_id = {v: i for i, v in enumerate(stored.ids)}
    for row, video in enumerate(ids):
        np.testing.assert_allclose(
            served["predictions"].numpy()[row], stored.scores[by_id[video]][:20], atol=1e-5
        )
