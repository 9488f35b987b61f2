"""CrossEntropyLoss: the official formula, reduction and serialisation."""

import json

import keras
import numpy as np

from frame_models.losses import CrossEntropyLoss


def reference(labels, probabilities, epsilon=1e-5):
    per_class = -(
        labels * np.log(probabilities + epsilon)
        + (1 - labels) * np.log(1 - probabilities + epsilon)
    )
    return per_class.sum(axis=1).mean()


def test_matches_official_formula():
    rng = np.random.default_rng(20)
    labels = (rng.random((5, 7)) < 0.3).astype("float32")
    probabilities = rng.random((5, 7)).astype("float32")
    probabilities[0, 0], probabilities[1, 1] = 0.0, 1.0  # saturated outputs stay finite
    got = float(CrossEntropyLoss()(labels, probabilities))
    np.testing.assert_allclose(got, reference(labels, probabilities), rtol=1e-5)


def test_float16_predictions_and_custom_epsilon():
    labels = np.array([[1.0, 0.0]], "float32")
    probabilities = np.array([[0.5, 0.25]], "float16")
    got = float(CrossEntropyLoss(epsilon=0.1)(labels, probabilities))
    np.testing.assert_allclose(
        got, reference(labels, probabilities.astype("float64"), 0.1), rtol=1e-5
    )


def test_serialisation_round_trip():
    loss = CrossEntropyLoss(epsilon=1e-4, name="xent")
    revived = keras.saving.deserialize_keras_object(
        json.loads(json.dumps(keras.saving.serialize_keras_object(loss)))
    )
    assert isinstance(revived, CrossEntropyLoss)
    assert revived.epsilon == 1e-4 and revived.name == "xent"
