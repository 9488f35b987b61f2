"""VGGish in Keras, its weights from the official checkpoint or a Keras file, and its PCA with
8-bit quantisation (winners_facts.md 7.2-7.3; tensorflow/models research/audioset/vggish)."""

from __future__ import annotations

import os
import warnings
import zipfile

import numpy as np

from y8m.data import specs
from y8m.errors import UsageError
from y8m.extract.audio import NUM_BANDS, NUM_FRAMES, log_mel_examples

__all__ = [
    "EMBEDDING_SIZE",
    "CHECKPOINT_SCOPES",
    "AudioNetwork",
    "VGGishPCA",
    "audio_features",
    "build_vggish",
    "load_vggish",
    "load_vggish_pca",
]

EMBEDDING_SIZE = 128
CHECKPOINT_FILE = "vggish_model.ckpt"
PCA_FILE = "vggish_pca_params.npz"
PCA_EIGEN_VECTORS_KEY = "pca_eigen_vectors"
PCA_MEANS_KEY = "pca_means"
_RELEASE = "tensorflow/models research/audioset/vggish"
_INIT_STDDEV = 0.01  # vggish_params.INIT_STDDEV

# Keras layer name -> variable scope in vggish_model.ckpt (slim.repeat names conv3/conv3_1 etc.).
CHECKPOINT_SCOPES = {
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
# Convolution groups, each followed by a 2x2 max-pool: (filters, layer names).
_CONV_GROUPS = (
    (64, ("conv1",)),
    (128, ("conv2",)),
    (256, ("conv3_1", "conv3_2")),
    (512, ("conv4_1", "conv4_2")),
)


def build_vggish(seed: int | None = None, *, use_random_init: bool = True):
    """VGGish (`vggish_slim.define_vggish_slim`) as a Keras functional model.

    3x3 stride-1 SAME ReLU convolutions with 2x2 stride-2 max-pools after conv1, conv2, conv3_2
    and conv4_2, then fc1_1, fc1_2 (4096, ReLU) and fc2 (128, no activation: the current
    release's embedding is fc2's pre-activation, MediaPipe's `vggish/fc2/BiasAdd`). 72,141,184
    parameters. Layer names are the checkpoint scopes' last parts (`CHECKPOINT_SCOPES`).

    Args:
        seed: seeds the initial weights (truncated normal, stddev 0.01; biases 0, as slim).
        use_random_init: False starts every weight at 0, which is faster (drawing 72M
            truncated normals takes seconds) when weights are loaded next.

    Input shape: (B, 96, 64) float32 log-mel examples. Output shape: (B, 128) float32.
    """
    import keras

    def init(name: str):
        if not use_random_init:
            return "zeros"
        # One seed per layer: a shared seeded initializer would draw the same numbers twice.
        layer_seed = None if seed is None else seed * 100 + list(CHECKPOINT_SCOPES).index(name)
        return keras.initializers.TruncatedNormal(stddev=_INIT_STDDEV, seed=layer_seed)

    inputs = keras.Input((NUM_FRAMES, NUM_BANDS), name="input_features")
    x = keras.layers.Reshape((NUM_FRAMES, NUM_BANDS, 1), name="reshape")(inputs)  # (B, 96, 64, 1)
    for group, (filters, names) in enumerate(_CONV_GROUPS, start=1):
        for name in names:
            conv = keras.layers.Conv2D(
                filters,
                3,
                padding="same",
                activation="relu",
                kernel_initializer=init(name),
                name=name,
            )
            x = conv(x)
        x = keras.layers.MaxPooling2D(2, 2, padding="same", name=f"pool{group}")(x)
    x = keras.layers.Flatten(name="flatten")(x)  # (B, 6 * 4 * 512): NHWC row-major, as slim
    for name in ("fc1_1", "fc1_2"):
        dense = keras.layers.Dense(
            4096, activation="relu", kernel_initializer=init(name), name=name
        )
        x = dense(x)
    fc2 = keras.layers.Dense(EMBEDDING_SIZE, kernel_initializer=init("fc2"), name="fc2")
    outputs = fc2(x)  # (B, 128), no activation
    return keras.Model(inputs, outputs, name="vggish")


class AudioNetwork:
    """VGGish embeddings of log-mel examples, in batches.

    Args:
        model: a `build_vggish()` model with its weights.
        batch_size: examples per forward pass.

    Call arguments: examples (N, 96, 64) float32. Returns (N, 128) float32 embeddings.
    """

    def __init__(self, model, batch_size: int = 64):
        import tensorflow as tf

        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.model = model
        self.batch_size = batch_size
        # One traced graph for every batch length (the last batch is shorter).
        spec = tf.TensorSpec((None, NUM_FRAMES, NUM_BANDS), tf.float32)
        self._forward = tf.function(lambda x: model(x, training=False), input_signature=[spec])

    def __call__(self, examples: np.ndarray) -> np.ndarray:
        examples = np.asarray(examples, np.float32)
        if examples.ndim != 3 or examples.shape[1:] != (NUM_FRAMES, NUM_BANDS):
            raise ValueError(f"examples must be (N, 96, 64), got {examples.shape}")
        out = np.empty((len(examples), EMBEDDING_SIZE), np.float32)
        for begin in range(0, len(examples), self.batch_size):
            batch = examples[begin : begin + self.batch_size]
            out[begin : begin + len(batch)] = self._forward(batch).numpy()
        return out


def load_vggish(vggish_weights: str, batch_size: int = 64) -> AudioNetwork:
    """An `AudioNetwork` with weights from a Keras file or the official TF1 checkpoint.

    Args:
        vggish_weights: `.weights.h5` / `.h5` (Keras weights of `build_vggish`), or the official
            `vggish_model.ckpt` (a TF1 checkpoint: the file itself, a `.index`/`.data` prefix,
            or a directory with a `checkpoint` state file).
        batch_size: examples per forward pass.

    Raises:
        UsageError: the file is missing, unreadable, or not VGGish (a variable is missing or
            has another shape).
    """
    path = os.fspath(vggish_weights)
    model = build_vggish(use_random_init=False)
    if path.endswith((".h5", ".hdf5")):
        if not os.path.isfile(path):
            raise UsageError(
                f"VGGish weights not found: {path} (a Keras .weights.h5 of build_vggish, or the "
                f"official {CHECKPOINT_FILE} from {_RELEASE})"
            )
        _load_keras_weights(model, path)
    else:
        _assign_checkpoint(model, _checkpoint_prefix(path))
    return AudioNetwork(model, batch_size=batch_size)


def _load_keras_weights(model, path: str) -> None:
    problem = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(path)
        except (ValueError, OSError, KeyError, TypeError) as err:
            problem = _one_line(err)
    # Keras only warns when it skips part of a file, leaving those weights at their initial
    # values: for a network that is loaded to be used, that is an error.
    skipped = [str(w.message) for w in caught if "skipping" in str(w.message).lower()]
    if problem or skipped:
        raise UsageError(
            f"{path} does not hold Keras VGGish weights ({problem or _one_line(skipped[0])}); "
            f"pass a .weights.h5 saved from build_vggish or the official {CHECKPOINT_FILE}"
        )


def _checkpoint_prefix(path: str) -> str:
    import tensorflow as tf

    if os.path.isdir(path):
        prefix = tf.train.latest_checkpoint(path)
        if prefix:
            return prefix
    elif os.path.isfile(path) or os.path.isfile(path + ".index"):
        return path  # a V1 single file (as released) or a V2 prefix
    raise UsageError(
        f"VGGish weights not found: {path} (the official release calls it {CHECKPOINT_FILE}, "
        f"from {_RELEASE}; a Keras .weights.h5 also works)"
    )


def _assign_checkpoint(model, prefix: str) -> None:
    """Copies `vggish/<scope>/weights` and `.../biases` into the Keras layers (HWIO both)."""
    import tensorflow as tf

    try:
        reader = tf.train.load_checkpoint(prefix)
        shapes = reader.get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError, OSError) as err:
        raise UsageError(
            f"{prefix} is not a readable TensorFlow checkpoint ({_one_line(err)}); pass the "
            f"official {CHECKPOINT_FILE} or a Keras .weights.h5"
        ) from None
    for layer_name, scope in CHECKPOINT_SCOPES.items():
        layer = model.get_layer(layer_name)
        for suffix, variable in (("weights", layer.kernel), ("biases", layer.bias)):
            name = f"{scope}/{suffix}"
            if name not in shapes:
                raise UsageError(
                    f"{prefix} has no variable {name}: it is not the VGGish checkpoint "
                    f"({CHECKPOINT_FILE} from {_RELEASE})"
                )
            if tuple(shapes[name]) != tuple(variable.shape):
                raise UsageError(
                    f"{prefix}: variable {name} has shape {tuple(shapes[name])}, VGGish needs "
                    f"{tuple(variable.shape)}; pass {CHECKPOINT_FILE} from {_RELEASE}"
                )
            variable.assign(reader.get_tensor(name).astype(np.float32))


class VGGishPCA:
    """VGGish's post-processing (`vggish_postprocess.Postprocessor`): PCA, clip, 8 bits.

    y = E (x - mu) (E includes the whitening), clipped to [-2, 2], then
    q = floor((y + 2) * 255 / 4) as uint8: truncation, unlike the visual features' rounding.

    Args:
        eigen_vectors: (128, 128) E, rows are components (`pca_eigen_vectors`).
        means: (128,) mu (`pca_means`; a (128, 1) column is accepted).

    Call arguments: embeddings (N, 128). Returns (N, 128) uint8 codes.
    """

    def __init__(self, eigen_vectors: np.ndarray, means: np.ndarray):
        eigen_vectors = np.asarray(eigen_vectors, np.float64)
        means = np.asarray(means, np.float64)
        if eigen_vectors.shape != (EMBEDDING_SIZE, EMBEDDING_SIZE) or means.size != EMBEDDING_SIZE:
            raise ValueError(
                f"need (128, 128) eigen vectors and 128 means, got {eigen_vectors.shape} and "
                f"{means.shape}"
            )
        self.eigen_vectors = eigen_vectors
        self.means = means.reshape(EMBEDDING_SIZE)

    def project(self, embeddings: np.ndarray) -> np.ndarray:
        """(N, 128) embeddings -> (N, 128) float64 y = E (x - mu), before clipping."""
        embeddings = np.asarray(embeddings).reshape(-1, EMBEDDING_SIZE)
        return (embeddings - self.means) @ self.eigen_vectors.T  # (N, 128)

    @staticmethod
    def quantize(projected: np.ndarray) -> np.ndarray:
        """(N, 128) float -> uint8 codes floor((clip(y, -2, 2) + 2) * 255 / 4)."""
        low, high = specs.MIN_QUANTIZED_VALUE, specs.MAX_QUANTIZED_VALUE
        clipped = np.clip(projected, low, high)
        # The official's operations in its order; astype truncates toward zero = floor here.
        return ((clipped - low) * (255.0 / (high - low))).astype(np.uint8)

    def __call__(self, embeddings: np.ndarray) -> np.ndarray:
        return self.quantize(self.project(embeddings))


def load_vggish_pca(path: str) -> VGGishPCA:
    """`VGGishPCA` from the official `vggish_pca_params.npz` (never unpickles: untrusted files).

    Raises:
        UsageError: the file is missing, not an npz, or lacks the keys or shapes VGGish uses.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UsageError(
            f"VGGish PCA file not found: {path} (the official release calls it {PCA_FILE}, "
            f"from {_RELEASE})"
        )
    eigen_vectors, means = _read_npz(path)
    if not (
        np.issubdtype(eigen_vectors.dtype, np.number) and np.issubdtype(means.dtype, np.number)
    ):
        raise UsageError(f"{path}: the PCA arrays must be numeric; pass the official {PCA_FILE}")
    try:
        pca = VGGishPCA(eigen_vectors, means)
    except ValueError as err:
        raise UsageError(f"{path}: {err}; pass the official {PCA_FILE}") from None
    if not (np.isfinite(pca.eigen_vectors).all() and np.isfinite(pca.means).all()):
        raise UsageError(
            f"{path}: the PCA arrays hold NaN or infinity; pass the official {PCA_FILE}"
        )
    return pca


def _read_npz(path: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise UsageError(
            f"{path} is not a readable npz ({_one_line(err)}); pass the official {PCA_FILE}"
        ) from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise UsageError(f"{path} is a single .npy array, not an npz; pass the official {PCA_FILE}")
    with data:
        missing = [k for k in (PCA_EIGEN_VECTORS_KEY, PCA_MEANS_KEY) if k not in data.files]
        if missing:
            raise UsageError(
                f"{path} has no {missing[0]} array: pass the official {PCA_FILE} "
                f"(keys {PCA_EIGEN_VECTORS_KEY}, {PCA_MEANS_KEY})"
            )
        try:
            return data[PCA_EIGEN_VECTORS_KEY], data[PCA_MEANS_KEY]
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
            # Object arrays land here: allow_pickle=False refuses to unpickle them.
            raise UsageError(
                f"{path} holds an array that cannot be read without unpickling or is damaged "
                f"({_one_line(err)}); pass the official {PCA_FILE}"
            ) from None


def audio_features(
    waveform: np.ndarray,
    network: AudioNetwork,
    pca: VGGishPCA,
    *,
    hop_seconds: float = 0.96,
) -> np.ndarray:
    """16 kHz mono waveform -> (N, 128) uint8 codes: log-mel -> VGGish -> PCA -> 8 bits.

    `hop_seconds` is `log_mel_examples`'s: 0.96 (VGGish) or 1.0 (one example per second).
    """
    examples = log_mel_examples(waveform, hop_seconds=hop_seconds)
    if not len(examples):
        return np.zeros((0, EMBEDDING_SIZE), np.uint8)
    return pca(network(examples))


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())[:300] or type(err).__name__
