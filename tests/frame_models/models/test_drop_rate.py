"""drop_rate: every registered model takes it; dropout acts in training only."""

import numpy as np
import pytest

import frame_models
from tests.frame_models.models.tiny import batch_for, build

# Models documented not to take drop_rate (none so far).
WITHOUT_DROPOUT: dict[str, str] = {}
ALL = frame_models.names()


@pytest.fixture
def rng():
    return np.random.default_rng(90)


@pytest.mark.parametrize("name", ALL)
def test_every_model_takes_drop_rate(name):
    takes = "drop_rate" in frame_models.valid_hparams(name)
    assert takes != (name in WITHOUT_DROPOUT), WITHOUT_DROPOUT.get(name, name)


@pytest.mark.parametrize("name", [n for n in ALL if n not in WITHOUT_DROPOUT])
def test_dropout_changes_training_outputs_only(name, rng):
    dropped = build(name, drop_rate=0.5)
    plain = build(name, drop_rate=0.0)
    plain.set_weights(dropped.get_weights())  # dropout has no weights: the same parameters
    batch = batch_for(name, rng)
    np.testing.assert_allclose(
        np.asarray(dropped(batch, training=False)),
        np.asarray(plain(batch, training=False)),
        atol=1e-6,
    )
    # Batch-norm training outputs use batch statistics, the same for both models.
    with_dropout = np.asarray(dropped(batch, training=True))
    assert np.all(np.isfinite(with_dropout))
    assert not np.allclose(with_dropout, np.asarray(plain(batch, training=True)), atol=1e-6)


@pytest.mark.parametrize("name", ["moe", "average_logistic", "gated_netvlad", "gru", "dbof"])
def test_bad_drop_rates_are_value_errors(name):
    for bad in (1.0, 1.5, -0.2, "half"):
        with pytest.raises(ValueError, match="drop_rate"):
            build(name, drop_rate=bad)
    build(name, drop_rate="0.25")  # command-line strings are numbers too


def test_head_dropout_layer_only_when_asked():
    names = {layer.name for layer in build("moe", drop_rate=0.3).layers}
    assert "head_dropout" in names
    assert "head_dropout" not in {layer.name for layer in build("moe").layers}
    assert build("moe", drop_rate=0.3).get_layer("head_dropout").rate == 0.3
