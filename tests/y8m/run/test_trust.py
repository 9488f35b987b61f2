"""Numbers users can trust: precise batch-norm statistics, EMA, checkpoint averaging and
choice, damaged checkpoints, and a history without repeated steps."""

import csv
import json
import os

import numpy as np
import pytest

from y8m.errors import UsageError

SMALL_GNV = {"cluster_size": 8, "hidden_size": 32, "sample_frames": 10, "num_mixtures": 2}


def _train(synth_dir, train_dir, **kw):
    from y8m.run.train import train

    options = dict(
        train_data_pattern=str(synth_dir / "frame" / "train*.tfrecord"),
        train_dir=str(train_dir),
        batch_size=16,
        num_classes=64,
        progress=False,
    )
    options.update(kw)
    return train(**options)


def _masked_moments(x, mask):
    """A batch-norm layer's batch statistics by definition: mean and (biased) variance over
    every axis but the last, over the real frames only."""
    x = np.asarray(x, np.float64)
    if mask is None:
        w = np.ones(x.shape[:-1] + (1,))
    else:
        w = np.asarray(mask, np.float64)[..., None] * np.ones_like(x[..., :1])
    axes = tuple(range(x.ndim - 1))
    count = (w * np.ones_like(x)).sum(axis=axes)
    mean = (x * w).sum(axis=axes) / count
    var = (((x - mean) ** 2) * w).sum(axis=axes) / count
    return mean, var


def _reference_statistics(model, batches):
    """Runs training-mode forward passes eagerly, recording every batch-norm layer's input and
    mask, and returns each layer's population statistics over the batches: the mean of the
    batch means and the pooled variance mean_b(var_b + mean_b^2) - mean^2."""
    from y8m.run.precise_bn import batch_norm_layers

    layers = batch_norm_layers(model)
    seen = {id(layer): [] for layer in layers}
    originals = {}
    for layer in layers:
        originals[id(layer)] = layer.call

        def recording(inputs, training=None, mask=None, _layer=layer):
            seen[id(_layer)].append(_masked_moments(inputs, None if mask is None else mask))
            return originals[id(_layer)](inputs, training=training, mask=mask)

        layer.call = recording
    try:
        for inputs in batches:
            model(inputs, training=True)
    finally:
        for layer in layers:
            layer.call = originals[id(layer)]
    statistics = []
    for layer in layers:
        means = np.array([m for m, _ in seen[id(layer)]])
        variances = np.array([v for _, v in seen[id(layer)]])
        mean = means.mean(0)
        statistics.append((mean, (variances + means**2).mean(0) - mean**2))
    return statistics


def test_reported_gap_uses_precise_batch_norm_statistics(synth_dir, tmp_path):
    import itertools

    import keras
    import tensorflow as tf

    from y8m.run import rundir
    from y8m.run.inference import validation_gap
    from y8m.run.precise_bn import batch_norm_layers, training_inputs

    run = tmp_path / "gnv"
    validate = str(synth_dir / "frame" / "validate*.tfrecord")
    result = _train(
        synth_dir, run, model="gated_netvlad", max_steps=240, base_learning_rate=3e-3,
        precise_bn_batches=40, validate_data_pattern=validate, **SMALL_GNV,
    )  # fmt: skip
    assert result["precise_bn_batches"] == 40
    config = rundir.load_config(str(run))
    # The reference: the final training state, its statistics recomputed from the definition.
    net = rundir.build_model(config)
    tf.train.Checkpoint(model=net).restore(rundir.latest_checkpoint(str(run))).expect_partial()
    raw_gap = validation_gap(net, config, validate, 5000)
    layers = batch_norm_layers(net)
    assert layers, "gated_netvlad has batch norms"
    batches = list(itertools.islice(training_inputs(config, seed=123), 40))
    for layer, (mean, var) in zip(layers, _reference_statistics(net, batches)):
        layer.moving_mean.assign(mean.astype("float32"))
        layer.moving_variance.assign(var.astype("float32"))
    reference_gap = validation_gap(net, config, validate, 5000)
    assert result["gap"] == pytest.approx(reference_gap, abs=0.02)
    # The saved model is the judged one, and its statistics are not the lagging moving averages.
    saved = keras.models.load_model(str(run / "model.keras"), compile=False)
    assert validation_gap(saved, config, validate, 5000) == pytest.approx(result["gap"], abs=1e-6)
    history = list(csv.DictReader(open(run / "history.csv")))
    assert float(
        [r for r in history if r["validation_gap"]][-1]["validation_gap"]
    ) == pytest.approx(result["gap"], abs=1e-6)
    print(f"raw moving statistics GAP {raw_gap:.4f}, precise {result['gap']:.4f}")


def test_precise_statistics_equal_the_definition_on_the_same_batches(synth_dir, tmp_path):
    import itertools

    from y8m.run import rundir
    from y8m.run.precise_bn import batch_norm_layers, estimate, training_inputs

    run = tmp_path / "small"
    _train(synth_dir, run, model="gated_netvlad", max_steps=3, precise_bn_batches=0, **SMALL_GNV)
    config = rundir.load_config(str(run))
    net = rundir.build_model(config)
    batches = list(itertools.islice(training_inputs(config, seed=5), 6))
    figures = estimate(net, batches, 6, progress=False)
    assert figures["batches"] == 6 and figures["layers"] == len(batch_norm_layers(net)) >= 3
    got = [
        (np.asarray(b.moving_mean), np.asarray(b.moving_variance)) for b in batch_norm_layers(net)
    ]
    # Same weights, same batches, recorded in eager training mode: the definition's moments.
    # (Earlier batch norms use batch statistics in training mode, so later layers' inputs
    # depend only on the weights and the batch: the order of estimation does not matter.)
    reference = _reference_statistics(net, batches)
    for (mean, var), (ref_mean, ref_var) in zip(got, reference):
        np.testing.assert_allclose(mean, ref_mean, atol=1e-5)
        np.testing.assert_allclose(var, ref_var, rtol=1e-4, atol=1e-6)


def _checkpoint_weights(config, prefix):
    import tensorflow as tf

    from y8m.run import rundir

    net = rundir.build_model(config)
    tf.train.Checkpoint(model=net).restore(prefix).expect_partial()
    return [np.asarray(w, np.float64) for w in net.trainable_weights]


def test_ema_and_checkpoint_averaging_change_the_saved_weights_as_defined(synth_dir, tmp_path):
    import keras

    from y8m.run import rundir
    from y8m.run.average import average
    from y8m.run.loading import load_model

    run = tmp_path / "ema"
    decay = 0.5
    _train(
        synth_dir, run, model="logistic", max_steps=4, checkpoint_steps=1, keep_checkpoints=10,
        ema_decay=decay, base_learning_rate=0.05,
        train_data_pattern=str(synth_dir / "video" / "train*.tfrecord"),
    )  # fmt: skip
    config = rundir.load_config(str(run))
    steps = [s for s, _ in rundir.checkpoints(str(run))]
    assert steps == [1, 2, 3, 4]
    per_step = [_checkpoint_weights(config, p) for _, p in rundir.checkpoints(str(run))]
    ema = per_step[0]  # Keras' EMA starts from the first step's weights
    for weights in per_step[1:]:
        ema = [decay * a + (1 - decay) * w for a, w in zip(ema, weights)]
    saved = keras.models.load_model(str(run / "model.keras"), compile=False)
    for got, want, last in zip(saved.trainable_weights, ema, per_step[-1]):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-7)
        assert not np.allclose(want, last)  # the average is not the last weights
    # A checkpoint of an EMA run is judged by its average too.
    from_checkpoint, _ = load_model(str(run), checkpoint=4, progress=False)
    for got, want in zip(from_checkpoint.trainable_weights, ema):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-7)

    result = average(train_dir=str(run), last=3, progress=False)
    assert result["steps"] == [2, 3, 4]
    averaged, _ = load_model(result["output_dir"], progress=False)
    mean = [np.mean(ws, axis=0) for ws in zip(*per_step[1:])]
    for got, want in zip(averaged.trainable_weights, mean):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-7)


def test_checkpoint_choice_best_and_step(synth_dir, tmp_path, capsys):
    from y8m.run import rundir
    from y8m.run.evaluate import evaluate
    from y8m.run.loading import load_model

    run = tmp_path / "choice"
    validate = str(synth_dir / "frame" / "validate*.tfrecord")
    _train(
        synth_dir, run, model="average_logistic", max_steps=6, checkpoint_steps=100,
        validate_data_pattern=validate, validate_steps=2, base_learning_rate=0.05,
    )  # fmt: skip
    assert [s for s, _ in rundir.checkpoints(str(run))] == [2, 4, 6]  # validated steps kept
    best = rundir.best_step(str(run))
    history = [r for r in csv.DictReader(open(run / "history.csv")) if r["validation_gap"]]
    assert best == int(max(history, key=lambda r: float(r["validation_gap"]))["step"])
    gap = {int(r["step"]): float(r["validation_gap"]) for r in history}
    result = evaluate(
        train_dir=str(run), eval_data_pattern=validate, checkpoint="best", progress=False
    )
    assert result["gap"] == pytest.approx(gap[best], abs=1e-6)
    two = evaluate(train_dir=str(run), eval_data_pattern=validate, checkpoint="2", progress=False)
    assert two["gap"] == pytest.approx(gap[2], abs=1e-6)
    with pytest.raises(UsageError, match=r"no checkpoint of step 3 \(kept: 2, 4, 6\)"):
        load_model(str(run), checkpoint=3)
    with pytest.raises(UsageError, match="latest, best or a step"):
        load_model(str(run), checkpoint="newest")


def test_damaged_newest_checkpoint_falls_back_in_eval_predict_and_resume(
    synth_dir, tmp_path, capsys
):
    from y8m.run.evaluate import evaluate
    from y8m.run.predict import predict

    run = tmp_path / "damaged"
    _train(synth_dir, run, model="average_logistic", max_steps=4, checkpoint_steps=2, log_steps=1)
    pattern = str(synth_dir / "frame" / "validate*.tfrecord")
    # An interrupted run: no model.keras, and the newest checkpoint's data truncated.
    os.remove(run / "model.keras")
    os.remove(run / "model.json")
    (data,) = [p for p in os.listdir(run / "checkpoints") if p.startswith("ckpt-4.data")]
    with open(run / "checkpoints" / data, "r+b") as f:
        f.truncate(os.path.getsize(run / "checkpoints" / data) // 2)
    capsys.readouterr()
    evaluate(train_dir=str(run), eval_data_pattern=pattern, progress=False)
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1 and "ckpt-4 is damaged" in err and "using" in err and "ckpt-2" in err
    )
    predict(
        train_dir=str(run),
        input_data_pattern=pattern,
        output_file=str(tmp_path / "p"),
        progress=False,
    )
    assert "ckpt-4 is damaged" in capsys.readouterr().err
    # A missing index is damage too; training resumes from the newest intact checkpoint and
    # the history drops the rows of the steps it trains again.
    os.remove(run / "checkpoints" / "ckpt-4.index")
    result = _train(
        synth_dir, run, model="average_logistic", max_steps=6, checkpoint_steps=2, log_steps=1
    )
    out = capsys.readouterr()
    assert "ckpt-4 is damaged" in out.err and "resuming" in out.out and "from step 2" in out.out
    assert result["step"] == 6
    steps = [int(r["step"]) for r in csv.DictReader(open(run / "history.csv")) if r["loss"]]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert json.loads((run / "model.json").read_text())["step"] == 6
