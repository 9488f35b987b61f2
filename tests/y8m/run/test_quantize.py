"""Weight quantisation: the int8 round trip within its bound, byte counts, small tensors kept,
and a tiny run's predictions at float16 / int8 against float32."""

import numpy as np
import pytest

from y8m.errors import UsageError
from y8m.run import rundir
from y8m.run.quantize import MIN_ELEMENTS, apply, model_bytes, quantize_array, quantized_weights

TINY = {"cluster_size": 4, "hidden_size": 16, "sample_frames": 8, "num_mixtures": 2}


@pytest.mark.parametrize("shape", [(200, 100), (3, 40, 150), (17000, 2)])
def test_int8_round_trip_is_within_half_a_step(shape):
    rng = np.random.default_rng(0)
    # Channels of very different ranges, and two that are all zero.
    w = (rng.standard_normal(shape) * rng.uniform(1e-4, 3.0, shape[-1])).astype(np.float32)
    w[..., 0] = 0.0
    if shape[-1] > 2:
        w[..., -1] = 0.0
    decoded, size = quantize_array(w, "int8")
    assert decoded.shape == w.shape and decoded.dtype == np.float32
    assert size == w.size + 4 * shape[-1]
    scale = np.max(np.abs(w), axis=tuple(range(w.ndim - 1))) / 127
    error = np.abs(w - decoded)
    # Half a quantisation step per element, plus float32 rounding of the product q * scale.
    assert np.all(error <= scale / 2 * (1 + 1e-5) + 1e-12)
    assert np.all(decoded[..., 0] == 0)
    # Each channel uses the whole code range: its largest weight decodes (almost) exactly.
    peak = np.max(np.abs(decoded), axis=tuple(range(w.ndim - 1)))
    np.testing.assert_allclose(peak[scale > 0], (scale * 127)[scale > 0], rtol=1e-6)
    ratio = (error / np.where(scale > 0, scale, 1)).max()
    assert 0.4 < ratio <= 0.5 + 1e-5  # the bound is reached, not just respected


def test_bytes_and_what_each_precision_keeps():
    rng = np.random.default_rng(1)
    big = rng.standard_normal((170, 100)).astype(np.float32)  # exactly MIN_ELEMENTS
    assert big.size == MIN_ELEMENTS
    decoded, size = quantize_array(big, "float32")
    assert size == 4 * big.size and np.array_equal(decoded, big)
    decoded, size = quantize_array(big, "float16")
    assert size == 2 * big.size
    np.testing.assert_array_equal(decoded, big.astype(np.float16).astype(np.float32))
    assert quantize_array(big, "int8")[1] == big.size + 4 * 100
    # Below MIN_ELEMENTS, or 1-D (biases, batch-norm statistics): float32 under int8.
    for small in (big[:169], rng.standard_normal(20_000).astype(np.float32)):
        decoded, size = quantize_array(small, "int8")
        assert size == 4 * small.size and np.array_equal(decoded, small)
    assert quantize_array(big[:10], "int8", min_elements=1001)[1] == 4 * 1000
    assert quantize_array(big[:10], "int8", min_elements=1)[1] == 1000 + 400
    counter = np.arange(3, dtype=np.int64)  # non-floating state stays as it is
    decoded, size = quantize_array(counter, "int8")
    assert decoded is counter and size == 24
    with pytest.raises(UsageError, match="unknown precision 'int4'"):
        quantize_array(big, "int4")


@pytest.fixture(scope="module")
def tiny_run(synth_dir, tmp_path_factory):
    from y8m.run.train import train

    run_dir = tmp_path_factory.mktemp("runs") / "gnv"
    train(
        model="gated_netvlad",
        train_data_pattern=str(synth_dir / "frame" / "train*.tfrecord"),
        train_dir=str(run_dir),
        batch_size=16,
        max_steps=6,
        progress=False,
        num_classes=64,
        **TINY,
    )
    return run_dir


def _dense(model, config, pattern):
    from y8m.data.readers import iterate

    scores, labels = [], []
    for batch in iterate(
        rundir.dataset_for(config, pattern, training=False, batch_size=32), pattern
    ):
        scores.append(np.asarray(model(rundir.model_inputs(batch, config), training=False)))
        labels.append(batch["labels"])
    return np.concatenate(scores), np.concatenate(labels)


def test_a_run_at_float16_and_int8_predicts_close_to_float32(tiny_run, synth_dir):
    from y8m.metrics import gap
    from y8m.run.loading import load_model

    model, config = load_model(str(tiny_run), progress=False)
    pattern = str(synth_dir / "frame" / "validate*.tfrecord")
    original = [w.copy() for w in model.get_weights()]
    reference, labels = _dense(model, config, pattern)
    figures = {}
    for precision, min_elements in (("float16", MIN_ELEMENTS), ("int8", MIN_ELEMENTS), ("int8", 1)):
        with apply(model, precision, min_elements) as size:
            assert size == model_bytes(model, precision, min_elements)
            p, _ = _dense(model, config, pattern)
        figures[(precision, min_elements)] = (
            size,
            float(np.abs(p - reference).max()),
            gap(p, labels) - gap(reference, labels),
        )
    # The block restored the float32 weights.
    assert all(np.array_equal(a, b) for a, b in zip(original, model.get_weights()))
    float32_bytes = model_bytes(model, "float32")
    assert float32_bytes == 4 * sum(w.size for w in original)
    (f16_bytes, f16_diff, f16_gap), (i8_bytes, i8_diff, i8_gap), (all_bytes, all_diff, all_gap) = (
        figures.values()
    )
    print(f"float32 {float32_bytes} B; " + "; ".join(
        f"{p}(min {m}) {b} B, max |dp| {d:.2e}, GAP change {g:+.2e}"
        for (p, m), (b, d, g) in figures.items()
    ))  # fmt: skip
    assert f16_bytes * 2 == float32_bytes and f16_diff < 1e-3 and abs(f16_gap) < 1e-3
    # Only pooled_representation/kernel (4352 x 16) reaches MIN_ELEMENTS in this tiny model.
    assert i8_bytes == float32_bytes - 3 * 4352 * 16 + 4 * 16
    assert i8_diff < 1e-2 and abs(i8_gap) < 1e-2
    assert all_bytes < i8_bytes and all_diff < 5e-2 and abs(all_gap) < 2e-2


def test_quantized_weights_match_the_model_order(tiny_run):
    from y8m.run.loading import load_model

    model, _ = load_model(str(tiny_run), progress=False)
    decoded, size = quantized_weights(model, "int8")
    weights = model.get_weights()
    assert len(decoded) == len(weights) and size == model_bytes(model, "int8")
    for d, w in zip(decoded, weights):
        assert d.shape == w.shape and d.dtype == w.dtype
        if w.size < MIN_ELEMENTS:
            assert np.array_equal(d, w)
