"""Test helpers: random weights, weight look-up, serialisation round trips, numpy references."""

from __future__ import annotations

import json

import keras
import numpy as np

from y8m.data import specs

BN_EPSILON = 1e-3  # keras.layers.BatchNormalization default
# The dataset's feature lists as the run layer passes them (frame_models holds no defaults).
FRAME_FEATURES = tuple((f.name, f.size) for f in specs.FRAME_FEATURES)  # rgb 1024, audio 128
VIDEO_FEATURES = tuple((f.name, f.size) for f in specs.VIDEO_FEATURES)  # mean_rgb, mean_audio


def randomize_weights(layer, rng: np.random.Generator) -> None:
    """Gives every weight of `layer` random values (positive ones for BN variances)."""
    for w in layer.weights:
        if w.path.endswith("moving_variance"):
            value = rng.uniform(0.5, 2.0, size=w.shape)
        else:
            value = rng.normal(0.0, 0.5, size=w.shape)
        w.assign(value.astype(w.dtype))


def weight(layer, suffix: str) -> np.ndarray:
    """The value of the one weight of `layer` whose path ends with `/suffix`."""
    found = [w for w in layer.weights if w.path.endswith("/" + suffix)]
    assert len(found) == 1, [w.path for w in layer.weights]
    return np.asarray(found[0].numpy(), np.float64)


def bn_params(layer, name: str) -> dict[str, np.ndarray]:
    """gamma, beta, moving_mean, moving_variance of the batch norm sublayer `name`."""
    keys = ("gamma", "beta", "moving_mean", "moving_variance")
    return {k: weight(layer, f"{name}/{k}") for k in keys}


def batch_norm_inference(z: np.ndarray, p: dict[str, np.ndarray]) -> np.ndarray:
    """Batch norm with moving statistics."""
    return (
        p["gamma"] * (z - p["moving_mean"]) / np.sqrt(p["moving_variance"] + BN_EPSILON) + p["beta"]
    )


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def l2n(v: np.ndarray, axis: int = -1) -> np.ndarray:
    """v / ||v||, zero vectors left at zero."""
    norm = np.sqrt((v**2).sum(axis=axis, keepdims=True))
    return v / np.maximum(norm, 1e-6)


def frames(rng, batch=3, steps=6, size=5):
    """Random frames and a num_frames vector with a full, a short and an empty video."""
    x = rng.normal(size=(batch, steps, size)).astype("float32")
    num_frames = np.array([steps, 2, 0][:batch], "int32")
    return x, num_frames


def mask_of(num_frames: np.ndarray, steps: int) -> np.ndarray:
    return np.arange(steps)[None, :] < num_frames[:, None]


def with_garbage(x: np.ndarray, num_frames: np.ndarray, value=np.nan) -> np.ndarray:
    """A copy of `x` whose padded rows hold `value` (NaN, inf, large numbers)."""
    out = x.copy()
    out[~mask_of(num_frames, x.shape[1])] = value
    return out


def check_config_round_trip(layer, *call_args, **call_kwargs) -> None:
    """from_config and JSON (de)serialisation give a layer with the same config and outputs."""
    config = layer.get_config()
    clone = layer.__class__.from_config(config)
    assert clone.get_config() == config
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(layer)))
    revived = keras.saving.deserialize_keras_object(serialized)
    assert type(revived) is type(layer)
    assert revived.get_config() == config
    expected = keras.tree.flatten(layer(*call_args, **call_kwargs))
    revived(*call_args, **call_kwargs)  # builds the weights
    revived.set_weights(layer.get_weights())
    got = keras.tree.flatten(revived(*call_args, **call_kwargs))
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
