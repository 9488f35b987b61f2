"""OnlineDistillation against numpy: the gated mixture of logits and the KL distillation term."""

import keras
import numpy as np
import pytest

from frame_models.layers.online_distillation import OnlineDistillation
from tests.frame_models.helpers import check_config_round_trip, softmax

B, M, C = 4, 3, 7


@pytest.fixture
def inputs():
    rng = np.random.default_rng(21)
    gate = softmax(rng.normal(size=(B, M))).astype("float32")
    logits = [(3 * rng.normal(size=(B, C))).astype("float32") for _ in range(M)]
    return gate, logits


def kl_term(mixture, branches, temperature, weight):
    """weight * mean_b sum_m sum_c p_e (log(p_e + 1e-8) - log(p_m + 1e-8)), in float64."""
    p_e = softmax(np.asarray(mixture, np.float64) / temperature)
    total = np.zeros(len(p_e))
    for z in branches:
        p_m = softmax(np.asarray(z, np.float64) / temperature)
        total += (p_e * (np.log(p_e + 1e-8) - np.log(p_m + 1e-8))).sum(-1)
    return weight * total.mean()


def test_mixture_is_the_gated_sum_of_logits(inputs):
    gate, logits = inputs
    layer = OnlineDistillation()
    got = np.asarray(layer([gate, *logits]))
    expected = sum(gate[:, m : m + 1] * logits[m] for m in range(M))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert layer.compute_output_shape([(B, M)] + [(B, C)] * M) == (B, C)
    # One-hot gates pick one branch.
    one_hot = np.eye(M, dtype="float32")[[0, 2, 1, 2]]
    got = np.asarray(layer([one_hot, *logits]))
    np.testing.assert_allclose(got, np.stack([logits[m][b] for b, m in enumerate([0, 2, 1, 2])]))


@pytest.mark.parametrize("temperature, weight", [(3.0, 9.0), (1.0, 1.0), (20.0, 400.0)])
def test_distillation_loss_matches_kl_formula(inputs, temperature, weight):
    gate, logits = inputs
    layer = OnlineDistillation(temperature=temperature, weight=weight)
    mixture = layer([gate, *logits])
    got = float(layer.distillation_loss(mixture, logits))
    expected = kl_term(np.asarray(mixture), logits, temperature, weight)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-7)
    assert got >= 0


def test_distillation_loss_edge_cases(inputs):
    gate, logits = inputs
    layer = OnlineDistillation(temperature=2.0, weight=5.0)
    # Branches equal to the mixture have nothing to learn from it.
    assert abs(float(layer.distillation_loss(logits[0], [logits[0], logits[0]]))) < 1e-6
    assert float(OnlineDistillation(weight=0.0).distillation_loss(logits[0], logits[1:])) == 0.0
    # KL(mixture || branch), not the other way round.
    forward = kl_term(logits[0], [logits[1]], 2.0, 5.0)
    backward = kl_term(logits[1], [logits[0]], 2.0, 5.0)
    assert not np.isclose(forward, backward)
    got = float(layer.distillation_loss(logits[0], [logits[1]]))
    np.testing.assert_allclose(got, forward, rtol=1e-4)
    # float16 logits (mixed precision) are computed in float32.
    half = [z.astype("float16") for z in logits]
    assert layer.distillation_loss(half[0], half[1:]).dtype == "float32"


def test_no_stop_gradient(inputs):
    """The term's gradient reaches the mixture's gate and every branch, as in the reference."""
    import tensorflow as tf  # the test backend; the library itself never imports it

    gate, logits = inputs
    layer = OnlineDistillation()
    variables = [tf.Variable(gate)] + [tf.Variable(z) for z in logits]
    with tf.GradientTape() as tape:
        mixture = layer(variables)
        loss = layer.distillation_loss(mixture, variables[1:])
    for grad in tape.gradient(loss, variables):
        assert grad is not None and np.all(np.isfinite(grad)) and np.any(np.asarray(grad) != 0)


def test_arguments_are_checked():
    for kwargs in ({"temperature": 0.0}, {"temperature": -1.0}, {"temperature": float("nan")}):
        with pytest.raises(ValueError, match="temperature"):
            OnlineDistillation(**kwargs)
    with pytest.raises(ValueError, match="weight"):
        OnlineDistillation(weight=-1.0)


def test_config_round_trip(inputs):
    gate, logits = inputs
    layer = OnlineDistillation(temperature=2.5, weight=6.25, name="distill")
    check_config_round_trip(layer, [gate, *logits])
    assert layer.get_config()["temperature"] == 2.5 and layer.get_config()["weight"] == 6.25


def test_in_functional_model(inputs, tmp_path):
    gate, logits = inputs
    gate_in = keras.Input((M,), name="gate")
    branch_in = [keras.Input((C,), name=f"z_{m}") for m in range(M)]
    mixed = OnlineDistillation(temperature=3.0, weight=9.0, name="od")([gate_in, *branch_in])
    model = keras.Model([gate_in, *branch_in], mixed)
    path = tmp_path / "od.keras"
    model.save(path)
    revived = keras.models.load_model(path)
    np.testing.assert_allclose(
        np.asarray(revived([gate, *logits])), np.asarray(model([gate, *logits])), atol=1e-6
    )
    assert revived.get_layer("od").get_config() == model.get_layer("od").get_config()
