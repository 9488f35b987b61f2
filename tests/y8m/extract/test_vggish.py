"""VGGish: the Keras network against a numpy forward pass written from winners_facts.md 7.2,
its weights from Keras files and from TF1 checkpoints with the official variable names, and the
PCA + 8-bit post-processing of 7.3 on random matrices in the official npz format."""

import pickle
import shutil
import types

import numpy as np
import pytest

from y8m.errors import UsageError
from y8m.extract import audio, vggish

# The official checkpoint's variable scopes (slim.repeat names conv3/conv3_1, fc1/fc1_2, ...).
OFFICIAL_SCOPES = {
    "conv1": "vggish/conv1",
    "conv2": "vggish/conv2",
    "conv3_1": "vggish/conv3/conv3_1",
    "conv3_2": "vggish/conv3/conv3_2",
    "conv4_1": "vggish/conv4/conv4_1",
    "conv4_2": "vggish/conv4/conv4_2",
    "fc1_1": "vggish/fc1/fc1_1",
    "fc1_2": "vggish/fc1/fc1_2",
    "fc2": "vggish/fc2",
}
CONV_SHAPES = {  # (in, out) channels of the 3x3 convolutions
    "conv1": (1, 64),
    "conv2": (64, 128),
    "conv3_1": (128, 256),
    "conv3_2": (256, 256),
    "conv4_1": (256, 512),
    "conv4_2": (512, 512),
}
FLAT = (96 // 16) * (64 // 16) * 512  # four 2x2 pools: (6, 4, 512)
DENSE_SHAPES = {"fc1_1": (FLAT, 4096), "fc1_2": (4096, 4096), "fc2": (4096, 128)}


def _random_params(seed=0):
    """He-scaled kernels (HWIO / (in, out)) and small biases, so activations keep their size."""
    rng = np.random.default_rng(seed)
    params = {}
    shapes = {**{k: (3, 3, *v) for k, v in CONV_SHAPES.items()}, **DENSE_SHAPES}
    for name, shape in shapes.items():
        fan_in = int(np.prod(shape[:-1]))
        kernel = rng.standard_normal(shape, dtype=np.float32) * np.float32(np.sqrt(2 / fan_in))
        params[name] = (kernel, rng.normal(0, 0.1, shape[-1]).astype(np.float32))
    return params


def _official_tensors(params, skip=()):
    names, tensors = [], []
    for layer, (kernel, bias) in params.items():
        for suffix, value in (("weights", kernel), ("biases", bias)):
            name = f"{OFFICIAL_SCOPES[layer]}/{suffix}"
            if name not in skip:
                names.append(name)
                tensors.append(value)
    return names, tensors


def _save_v2(prefix, names, tensors):
    import tensorflow as tf

    tf.raw_ops.SaveV2(
        prefix=str(prefix), tensor_names=names, shape_and_slices=[""] * len(names), tensors=tensors
    )


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """One seeded VGGish saved as .weights.h5, legacy .h5, and TF1 checkpoints V1 and V2."""
    import tensorflow as tf

    directory = tmp_path_factory.mktemp("vggish")
    model = vggish.build_vggish(use_random_init=False)
    params = _random_params()
    for name, values in params.items():
        model.get_layer(name).set_weights(list(values))
    paths = {
        "keras": directory / "vggish.weights.h5",
        "legacy_h5": directory / "vggish.h5",
        "ckpt_v1": directory / "vggish_model.ckpt",  # one file, as the release ships it
        "ckpt_v2": directory / "v2" / "vggish_model.ckpt",
        "ckpt_dir": directory / "v2",
    }
    model.save_weights(paths["keras"])
    model.save(paths["legacy_h5"])
    names, tensors = _official_tensors(params)
    # What a training run leaves beside the weights; the loader must ignore it.
    names += ["global_step", "vggish/conv1/weights/Adam"]
    tensors += [np.int64(1000), np.zeros((3, 3, 1, 64), np.float32)]
    tf.raw_ops.Save(filename=str(paths["ckpt_v1"]), tensor_names=names, data=tensors)
    _save_v2(paths["ckpt_v2"], names, tensors)
    (paths["ckpt_dir"] / "checkpoint").write_text('model_checkpoint_path: "vggish_model.ckpt"\n')
    rng = np.random.default_rng(5)
    waveform = 0.3 * np.sin(2 * np.pi * 440 * np.arange(40_000) / 16_000) + 0.05 * rng.normal(
        size=40_000
    )
    examples = np.concatenate([audio.log_mel_examples(waveform), rng.normal(size=(5, 96, 64))])
    examples = examples.astype(np.float32)  # (7, 96, 64)
    yield types.SimpleNamespace(
        model=model,
        params=params,
        paths=paths,
        examples=examples,
        embeddings=vggish.AudioNetwork(model)(examples),
    )
    shutil.rmtree(directory, ignore_errors=True)  # about 1.2 GB of weights


def test_parameter_count_from_the_layer_shapes(weights):
    count = sum(9 * i * o + o for i, o in CONV_SHAPES.values())
    count += sum(i * o + o for i, o in DENSE_SHAPES.values())
    assert count == 72_141_184 and round(count / 1e6, 1) == 72.1
    assert weights.model.count_params() == count


def test_layers_follow_the_facts(weights):
    model = weights.model
    assert model.input_shape == (None, 96, 64) and model.output_shape == (None, 128)
    pools = [model.get_layer(f"pool{i}").output.shape[1:] for i in range(1, 5)]
    assert pools == [(48, 32, 64), (24, 16, 128), (12, 8, 256), (6, 4, 512)]
    assert model.get_layer("flatten").output.shape[1:] == (FLAT,)
    for name in CONV_SHAPES:
        layer = model.get_layer(name)
        assert layer.kernel.shape == (3, 3, *CONV_SHAPES[name])
        assert (layer.strides, layer.padding, layer.activation.__name__) == ((1, 1), "same", "relu")
    assert model.get_layer("fc1_2").activation.__name__ == "relu"
    assert model.get_layer("fc2").activation.__name__ == "linear"  # pre-activation embedding
    assert set(vggish.CHECKPOINT_SCOPES.items()) == set(OFFICIAL_SCOPES.items())


def _numpy_vggish(example, params):
    """One (96, 64) example through the network of 7.2 in float64: SAME 3x3 convs via im2col."""

    def conv(x, kernel, bias):
        h, w, c = x.shape
        padded = np.pad(x, ((1, 1), (1, 1), (0, 0)))
        patches = np.stack([padded[i : i + h, j : j + w] for i in range(3) for j in range(3)], 2)
        out = patches.reshape(h * w, 9 * c) @ kernel.reshape(9 * c, -1) + bias
        return np.maximum(out, 0).reshape(h, w, -1)

    def pool(x):
        h, w, c = x.shape
        return x.reshape(h // 2, 2, w // 2, 2, c).max(axis=(1, 3))

    p = {
        k: (kernel.astype(np.float64), bias.astype(np.float64))
        for k, (kernel, bias) in params.items()
    }
    x = example.astype(np.float64)[:, :, None]
    for group in (["conv1"], ["conv2"], ["conv3_1", "conv3_2"], ["conv4_1", "conv4_2"]):
        for name in group:
            x = conv(x, *p[name])
        x = pool(x)
    x = x.reshape(-1)  # (h, w, c) row-major
    x = np.maximum(x @ p["fc1_1"][0] + p["fc1_1"][1], 0)
    x = np.maximum(x @ p["fc1_2"][0] + p["fc1_2"][1], 0)
    return x @ p["fc2"][0] + p["fc2"][1]


def test_network_matches_the_numpy_forward_pass(weights):
    for index in (0, 3):
        expected = _numpy_vggish(weights.examples[index], weights.params)
        got = weights.embeddings[index]
        assert np.abs(expected).max() > 0.1  # the He-scaled weights keep the signal
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("kind", ["keras", "legacy_h5", "ckpt_v1", "ckpt_v2", "ckpt_dir"])
def test_every_weights_format_gives_identical_embeddings(weights, kind):
    network = vggish.load_vggish(str(weights.paths[kind]))
    np.testing.assert_array_equal(network(weights.examples), weights.embeddings)


def test_batches_give_the_same_embeddings(weights):
    small = vggish.AudioNetwork(weights.model, batch_size=3)
    got = small(weights.examples)
    assert got.shape == (7, 128) and got.dtype == np.float32
    scale = np.abs(weights.embeddings).max()
    np.testing.assert_allclose(got, weights.embeddings, rtol=0, atol=1e-5 * scale)
    assert small(np.zeros((0, 96, 64), np.float32)).shape == (0, 128)
    with pytest.raises(ValueError, match="96, 64"):
        small(np.zeros((2, 64, 96), np.float32))


def test_seeded_random_init_is_slims_truncated_normal():
    model = vggish.build_vggish(seed=0)
    kernel = model.get_layer("conv4_2").kernel.numpy()
    assert np.abs(kernel).max() <= 0.02 + 1e-6  # truncated at two standard deviations
    assert np.std(kernel) == pytest.approx(0.0088, rel=0.05)  # 0.01 * std of N(0,1) cut at 2
    assert not model.get_layer("conv4_2").bias.numpy().any()
    other = model.get_layer("conv4_1").kernel.numpy()
    # Each layer has its own seed: one shared seed would start every layer with the same draws.
    assert not np.array_equal(kernel.ravel()[:100], other.ravel()[:100])


def test_missing_or_misshapen_checkpoint_variables_are_named(weights, tmp_path):
    # conv1 and conv2's biases only: small, and conv2/weights is the first variable missing.
    few = {name: weights.params[name] for name in ("conv1", "conv2")}
    names, tensors = _official_tensors(few, skip={"vggish/conv2/weights"})
    _save_v2(tmp_path / "partial.ckpt", names, tensors)
    with pytest.raises(UsageError, match="has no variable vggish/conv2/weights"):
        vggish.load_vggish(str(tmp_path / "partial.ckpt"))
    _save_v2(
        tmp_path / "narrow.ckpt",
        ["vggish/conv1/weights", "vggish/conv1/biases"],
        [np.zeros((3, 3, 1, 32), np.float32), np.zeros(32, np.float32)],
    )
    with pytest.raises(UsageError, match=r"vggish/conv1/weights has shape \(3, 3, 1, 32\)"):
        vggish.load_vggish(str(tmp_path / "narrow.ckpt"))


def test_missing_and_foreign_weight_files_are_usage_errors(tmp_path):
    import keras

    with pytest.raises(UsageError, match="vggish_model.ckpt"):
        vggish.load_vggish(str(tmp_path / "vggish_model.ckpt"))
    with pytest.raises(UsageError, match="not found"):
        vggish.load_vggish(str(tmp_path / "absent.weights.h5"))
    other = keras.Sequential([keras.Input((96, 64)), keras.layers.Flatten(), keras.layers.Dense(3)])
    other.save_weights(tmp_path / "other.weights.h5")
    with pytest.raises(UsageError, match="does not hold Keras VGGish weights"):
        vggish.load_vggish(str(tmp_path / "other.weights.h5"))
    (tmp_path / "junk.ckpt").write_bytes(b"\x00junk" * 64)
    with pytest.raises(UsageError, match="not a readable TensorFlow checkpoint"):
        vggish.load_vggish(str(tmp_path / "junk.ckpt"))


def _official_pca(path, seed=0, column=False):
    rng = np.random.default_rng(seed)
    eigen_vectors = rng.normal(0, 0.3, (128, 128))
    means = rng.normal(0, 1, (128, 1) if column else 128)
    np.savez(path, pca_eigen_vectors=eigen_vectors, pca_means=means)
    return eigen_vectors, means.reshape(128)


@pytest.mark.parametrize("column", [False, True])
def test_pca_and_quantisation_follow_the_postprocessor(tmp_path, column):
    eigen_vectors, means = _official_pca(tmp_path / "vggish_pca_params.npz", column=column)
    pca = vggish.load_vggish_pca(str(tmp_path / "vggish_pca_params.npz"))
    x = np.random.default_rng(1).normal(0, 1, (9, 128)).astype(np.float32)
    expected = np.dot(eigen_vectors, x.T - means[:, None]).T  # vggish_postprocess, y = E (x - mu)
    np.testing.assert_allclose(pca.project(x), expected, rtol=1e-12, atol=1e-12)
    codes = pca(x)
    assert codes.dtype == np.uint8 and codes.shape == (9, 128)
    reference = np.floor((np.clip(expected, -2, 2) + 2) * 255 / 4)
    np.testing.assert_array_equal(codes, reference)
    assert (codes == 0).any() and (codes == 255).any()  # both clips are exercised


def test_quantisation_truncates():
    halves = (np.arange(255) + 0.5) * 4 / 255 - 2  # exactly between code k and k + 1
    np.testing.assert_array_equal(vggish.VGGishPCA.quantize(halves), np.arange(255))
    ends = vggish.VGGishPCA.quantize(np.array([-7.0, -2.0, 2.0, 9.0, 2.0 - 1e-9]))
    np.testing.assert_array_equal(ends, [0, 0, 255, 255, 254])


def test_audio_features_chain_the_stages(weights, tmp_path):
    _official_pca(tmp_path / "pca.npz")
    pca = vggish.load_vggish_pca(str(tmp_path / "pca.npz"))
    network = vggish.AudioNetwork(weights.model)
    waveform = np.random.default_rng(2).normal(0, 0.1, 40_000)
    codes = vggish.audio_features(waveform, network, pca)
    np.testing.assert_array_equal(codes, pca(network(audio.log_mel_examples(waveform))))
    assert codes.shape == (2, 128) and codes.dtype == np.uint8
    aligned = vggish.audio_features(np.zeros(35_000), network, pca, hop_seconds=1.0)
    assert aligned.shape == (2, 128)
    assert vggish.audio_features(np.zeros(8000), network, pca).shape == (0, 128)


class _Planted:
    """Unpickling this creates a file: proof that code would have run."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (self.marker, "w")


def test_pca_files_never_run_code(tmp_path):
    marker = str(tmp_path / "ran")
    objects = np.empty(1, dtype=object)
    objects[0] = _Planted(marker)
    np.savez(tmp_path / "evil.npz", pca_eigen_vectors=objects, pca_means=np.zeros(128))
    with pytest.raises(UsageError, match="unpickling"):
        vggish.load_vggish_pca(str(tmp_path / "evil.npz"))
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(_Planted(marker)))
    with pytest.raises(UsageError, match="not a readable npz"):
        vggish.load_vggish_pca(str(tmp_path / "evil.pkl"))
    assert not (tmp_path / "ran").exists()


def test_bad_pca_files_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="vggish_pca_params.npz"):
        vggish.load_vggish_pca(str(tmp_path / "vggish_pca_params.npz"))
    np.savez(tmp_path / "keys.npz", eigen=np.zeros((128, 128)), pca_means=np.zeros(128))
    with pytest.raises(UsageError, match="no pca_eigen_vectors"):
        vggish.load_vggish_pca(str(tmp_path / "keys.npz"))
    np.savez(tmp_path / "shape.npz", pca_eigen_vectors=np.zeros((128, 64)), pca_means=np.zeros(128))
    with pytest.raises(UsageError, match=r"\(128, 64\)"):
        vggish.load_vggish_pca(str(tmp_path / "shape.npz"))
    np.save(tmp_path / "single.npy", np.zeros((128, 128)))
    with pytest.raises(UsageError, match="single .npy"):
        vggish.load_vggish_pca(str(tmp_path / "single.npy"))
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(UsageError, match="not a readable npz"):
        vggish.load_vggish_pca(str(tmp_path / "junk.npz"))
