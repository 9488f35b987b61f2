"""nextvlad and mix_nextvlad: reference parameter counts, options, training, the mixture's wiring."""

import math
import threading
from fractions import Fraction

import keras
import numpy as np
import pytest

import frame_models
from frame_models.layers.nextvlad import NeXtVLAD
from frame_models.layers.online_distillation import OnlineDistillation
from frame_models.losses import CrossEntropyLoss
from frame_models.summary import REFERENCE_PARAMS, parameter_table
from tests.frame_models.helpers import FRAME_FEATURES, VIDEO_FEATURES, sigmoid
from tests.frame_models.models import tiny

C = 3862  # the 2018 vocabulary of the reference figures
SIZES = dict(FRAME_FEATURES)  # rgb 1024, audio 128


def weight_shapes(name: str, num_classes=C, features=FRAME_FEATURES, **hparams):
    """{path: (shape, trainable)} of a model built without allocating its weights."""
    result = {}

    def run():
        try:
            with keras.StatelessScope(initialize_variables=False):
                model = frame_models.build(name, num_classes, features, **hparams)
                result["shapes"] = {w.path: (tuple(w.shape), w.trainable) for w in model.weights}
        except BaseException as error:  # re-raised below
            result["error"] = error

    # Keras keeps the deferred variables in thread-local state; the thread takes them along.
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["shapes"]


def trainable_count(shapes) -> int:
    return sum(math.prod(shape) for shape, trainable in shapes.values() if trainable)


def nextvlad_layer(n, k, g, lam=2):
    """Trainable weights of one NeXtVLAD: expansion, attention, assignment + BN, centres, BN."""
    e, d = lam * n, lam * n // g
    return n * e + e + e * g + g + e * g * k + 2 * g * k + d * k + 2 * d * k


def branch(k, g, h, r, lam=2, classes=C):
    """One full NeXtVLAD model (rgb K, G; audio K/2, G/2) with its logistic classifier."""
    pooled = (lam * 1024 // g) * k + (lam * 128 // (g // 2)) * (k // 2)
    layers = nextvlad_layer(1024, k, g, lam) + nextvlad_layer(128, k // 2, g // 2, lam)
    hidden = pooled * h + 2 * h
    gating = 2 * h * (h // r) + 2 * (h // r)
    return layers + hidden + gating + h * classes + classes


@pytest.mark.parametrize(
    "hparams, approx",
    [
        ({"cluster_size": 128, "gating_reduction": 8}, 88.9e6),  # the local run (Table 1: 89M)
        ({}, 78.6e6),  # the defaults: the final run's branch, K 112, r 16 (79M)
    ],
)
def test_trainable_count_at_reference_configurations(hparams, approx):
    k, r = hparams.get("cluster_size", 112), hparams.get("gating_reduction", 16)
    expected = branch(k, 8, 2048, r)
    assert trainable_count(weight_shapes("nextvlad", **hparams)) == expected
    assert round(expected / 1e5) == round(approx / 1e5)
    if not hparams:
        assert round(expected, -5) == REFERENCE_PARAMS["nextvlad"]


def test_trainable_count_of_the_final_submission():
    """3 branches + gate (BN on the 1152-d frame mean, FC to 3 with bias): about 235.9M."""
    expected = 3 * branch(112, 8, 2048, 16) + 2 * 1152 + 1152 * 3 + 3
    assert trainable_count(weight_shapes("mix_nextvlad")) == expected
    assert round(expected, -5) == REFERENCE_PARAMS["mix_nextvlad"] == 235_900_000
    assert abs(4 * expected / 1e6 - 944) < 1  # "about 944M bytes" of float32


def test_parameter_table_shows_the_reference_figures():
    rows = parameter_table(C, FRAME_FEATURES, VIDEO_FEATURES, ["mix_nextvlad", "nextvlad"])
    for row in rows:
        assert row["reference_params"] == REFERENCE_PARAMS[row["name"]]
        assert row["thesis_params"] is None
        # The table counts all weights: the batch-norm moving statistics add about 0.1%.
        assert 0 < row["params"] - row["reference_params"] < 0.002 * row["params"]


@pytest.mark.parametrize("k, r", [(128, 8), (112, 16)])
def test_pre_classifier_count_is_paper_eq_9(k, r):
    """λN(N + G + K(G + (H+1)/G)) per stream: expansion, attention, assignment and centre
    weights and the stream's rows of the hidden layer (no biases, no batch norms)."""
    h, lam = 2048, 2
    shapes = weight_shapes("nextvlad", cluster_size=k, gating_reduction=r)
    for stream, n, kk, g in (("rgb", 1024, k, 8), ("audio", 128, k // 2, 4)):
        parts = ("expansion_kernel", "attention_kernel", "cluster_weights", "cluster_centers")
        own = sum(math.prod(shapes[f"{stream}_nextvlad/{p}"][0]) for p in parts)
        own += (lam * n // g) * kk * h  # the stream's rows of the hidden kernel
        assert own == Fraction(lam * n) * (n + g + kk * (g + Fraction(h + 1, g)))
    pooled = shapes["hidden/kernel"][0][0]
    assert pooled == 256 * k + 64 * (k // 2)


def test_defaults_are_the_reference_best_single_model():
    model = frame_models.build("nextvlad", 10, tiny.FRAME_FEATURES)
    rgb, audio = model.get_layer("rgb_nextvlad"), model.get_layer("audio_nextvlad")
    assert (rgb.num_clusters, rgb.groups, rgb.expansion) == (112, 8, 2)
    assert (audio.num_clusters, audio.groups, audio.expansion) == (56, 4, 2)
    assert model.get_layer("vlad_dropout").rate == 0.5
    assert model.get_layer("hidden").hidden_size == 2048
    assert model.get_layer("hidden").gating is None
    assert model.get_layer("se_gating").reduction == 16
    assert model.get_layer("logistic").l2_penalty == 1e-5
    mix = frame_models.build("mix_nextvlad", 10, tiny.FRAME_FEATURES, hidden_size=16)
    distill = mix.get_layer("online_distillation")
    assert (distill.temperature, distill.weight) == (3.0, 9.0)
    assert mix.get_layer("gate").units == 3
    assert mix.get_layer("branch_3_rgb_nextvlad").num_clusters == 112


def test_hyper_parameters():
    shared = {"cluster_size", "groups", "expansion", "hidden_size", "gating_reduction"}
    shared |= {"drop_rate", "l2_penalty", "sample_frames"}
    assert set(frame_models.valid_hparams("nextvlad")) == shared | {
        "classifier",
        "num_mixtures",
        "moe_l2",
    }
    assert set(frame_models.valid_hparams("mix_nextvlad")) == shared | {
        "mix_number",
        "cl_temperature",
        "cl_lambda",
    }
    assert frame_models.input_mode("nextvlad")["sample"] == "random"
    assert frame_models.input_mode("mix_nextvlad", sample_frames=30)["num_samples"] == 30


@pytest.mark.parametrize(
    "name, hparams, flag",
    [
        ("nextvlad", {"groups": 3}, "groups"),  # 2 * 16 rgb dims in 3 groups
        ("nextvlad", {"groups": 0}, "groups"),
        ("nextvlad", {"expansion": 0}, "expansion"),
        ("nextvlad", {"drop_rate": 1.0}, "drop_rate"),
        ("nextvlad", {"drop_rate": -0.1}, "drop_rate"),
        ("nextvlad", {"gating_reduction": 9}, "gating_reduction"),  # hidden_size 8
        ("nextvlad", {"classifier": "svm"}, "classifier"),
        ("nextvlad", {"mix_number": 2}, "mix_number"),
        ("mix_nextvlad", {"classifier": "moe"}, "classifier"),
        ("mix_nextvlad", {"mix_number": 0}, "mix_number"),
        ("mix_nextvlad", {"cl_temperature": 0}, "cl_temperature"),
        ("mix_nextvlad", {"cl_lambda": -1}, "cl_lambda"),
        ("mix_nextvlad", {"l2_penalty": "lots"}, "l2_penalty"),
    ],
)
def test_bad_values_are_value_errors(name, hparams, flag):
    with pytest.raises(ValueError, match=flag):
        tiny.build(name, **hparams)


def test_small_sizes_keep_at_least_one_cluster_and_group():
    model = tiny.build("nextvlad", cluster_size=1, groups=1)
    audio = model.get_layer("audio_nextvlad")
    assert (audio.num_clusters, audio.groups) == (1, 1)
    single = frame_models.build("nextvlad", 10, [("rgb", 16)], **tiny.tiny_hparams("nextvlad"))
    assert single.get_layer("rgb_nextvlad").output.shape == (None, 16 * 4)


def test_moe_classifier():
    model = tiny.build("nextvlad", classifier="moe", num_mixtures=3)
    assert model.get_layer("moe").num_mixtures == 3
    out = np.asarray(model(tiny.frame_batch(np.random.default_rng(2)), training=False))
    assert out.shape == (3, tiny.NUM_CLASSES) and np.all((out >= 0) & (out <= 1))


def planted(rng, videos=96, steps=8):
    """Each video shows noisy frames of one class's prototype; its label is that class."""
    prototypes = {
        name: rng.normal(size=(tiny.NUM_CLASSES, size)) for name, size in tiny.FRAME_FEATURES
    }
    classes = rng.integers(0, tiny.NUM_CLASSES, size=videos)
    num_frames = rng.integers(2, steps + 1, size=videos).astype("int32")
    real = np.arange(steps)[None, :, None] < num_frames[:, None, None]
    batch = {"num_frames": num_frames}
    for name, size in tiny.FRAME_FEATURES:
        noise = 0.5 * rng.normal(size=(videos, steps, size))
        batch[name] = ((prototypes[name][classes][:, None, :] + noise) * real).astype("float32")
    return batch, np.eye(tiny.NUM_CLASSES, dtype="float32")[classes]


def test_tiny_nextvlad_learns_a_planted_problem_and_reloads(tmp_path):
    keras.utils.set_random_seed(3)
    batch, y = planted(np.random.default_rng(4))
    model = tiny.build("nextvlad", hidden_size=16)
    loss = CrossEntropyLoss()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss)
    before = float(loss(y, model(batch, training=False)))
    model.fit(batch, y, batch_size=32, epochs=30, verbose=0)
    after = float(loss(y, model(batch, training=False)))
    assert after < 0.5 * before, (before, after)
    path = tmp_path / "nextvlad.keras"
    model.save(path)
    revived = keras.models.load_model(path)
    np.testing.assert_allclose(
        np.asarray(revived(batch, training=False)),
        np.asarray(model(batch, training=False)),
        atol=1e-6,
    )


def test_mixture_inputs_are_the_branch_logits():
    model = tiny.build("mix_nextvlad", mix_number=3)
    [distill] = [layer for layer in model.layers if isinstance(layer, OnlineDistillation)]
    node = distill._inbound_nodes[0]
    producers = [t._keras_history.operation.name for t in node.input_tensors]
    assert producers == ["gate", "branch_1_logits", "branch_2_logits", "branch_3_logits"]
    # Numerically: mixture = sum_m gate_m z_m, output = sigmoid(mixture).
    probe = keras.Model(model.input, [*node.input_tensors, distill.output, model.output])
    batch = tiny.frame_batch(np.random.default_rng(7))
    gate, *logits, mixture, probabilities = [np.asarray(t) for t in probe(batch, training=False)]
    np.testing.assert_allclose(gate.sum(-1), 1.0, rtol=1e-5)
    expected = sum(gate[:, m : m + 1] * z for m, z in enumerate(logits))
    np.testing.assert_allclose(mixture, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probabilities, sigmoid(mixture), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(model(batch, training=False)), probabilities, atol=1e-6)
    assert np.isfinite(float(distill.distillation_loss(mixture, logits)))


def test_branches_are_independent_full_models():
    classes, features = tiny.NUM_CLASSES, tiny.FRAME_FEATURES
    mix = weight_shapes("mix_nextvlad", classes, features, **tiny.tiny_hparams("mix_nextvlad"))
    single = weight_shapes("nextvlad", classes, features, **tiny.tiny_hparams("nextvlad"))
    one_branch = trainable_count(single)
    for m in (1, 2):
        own = {p: s for p, s in mix.items() if p.startswith(f"branch_{m}_")}
        assert trainable_count(own) == one_branch
    gate = {p: s for p, s in mix.items() if not p.startswith("branch_")}
    assert sorted(p.split("/")[0] for p in gate) == ["gate"] * 2 + ["gate_bn"] * 4
    assert trainable_count(gate) == 2 * 24 + 24 * 2 + 2


@pytest.mark.parametrize("name", ["nextvlad", "mix_nextvlad"])
def test_mixed_precision_output_is_float32(name):
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = tiny.build(name)
        assert model.get_layer(f"{'branch_1_' if name == 'mix_nextvlad' else ''}rgb_nextvlad")
        out = model(tiny.frame_batch(np.random.default_rng(8)), training=False)
    finally:
        keras.config.set_dtype_policy(policy)
    assert out.dtype == "float32"
    assert np.all(np.isfinite(np.asarray(out)))


def test_layers_are_nextvlad_per_stream():
    model = tiny.build("nextvlad")
    pooling = [layer for layer in model.layers if isinstance(layer, NeXtVLAD)]
    assert [layer.name for layer in pooling] == ["rgb_nextvlad", "audio_nextvlad"]
    # TINY: K 4, G 2 on rgb 16 (d = 16); K 2, G 1 on audio 8 (d = 16).
    assert [layer.output.shape[-1] for layer in pooling] == [16 * 4, 16 * 2]
