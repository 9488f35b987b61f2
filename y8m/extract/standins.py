"""Seeded stand-ins for the official network and PCA files, in the official formats.

The real files cannot be shipped or downloaded here; tests and `y8m bench extract` need files
that load through exactly the same code paths. These give features of the right shapes and
timings, not meaningful ones.
"""

from __future__ import annotations

import os

import numpy as np


def write_inception_pca(folder: str, seed: int = 0) -> dict[str, np.ndarray]:
    """Random `mean.npy` (2048, 1), `eigenvals.npy` (2048, 1) and `eigenvecs.npy` (2048, 2048)
    in FOLDER, the shapes of yt8m_pca.tgz; returns the arrays by file name."""
    rng = np.random.default_rng(seed)
    eigenvals = np.sort(rng.uniform(0.0015, 14.7, (2048, 1)), axis=0)[::-1]
    arrays = {
        "mean.npy": rng.normal(0.3, 0.1, (2048, 1)).astype(np.float32),
        "eigenvals.npy": eigenvals.astype(np.float32),
        "eigenvecs.npy": (rng.normal(size=(2048, 2048)) / np.sqrt(2048)).astype(np.float32),
    }
    os.makedirs(folder, exist_ok=True)
    for name, array in arrays.items():
        np.save(os.path.join(folder, name), array)
    return arrays


def write_vggish_pca(path: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A random `vggish_pca_params.npz` (pca_eigen_vectors (128, 128), pca_means (128,))."""
    rng = np.random.default_rng(seed)
    eigen_vectors = rng.normal(0, 0.3, (128, 128))
    means = rng.normal(0, 1, 128)
    np.savez(path, pca_eigen_vectors=eigen_vectors, pca_means=means)
    return eigen_vectors, means


def write_inception_graph(
    path: str, *, seed: int = 0, align_corners=False, half_pixel_centers=False, extra_op=False
) -> str:
    """A TF1 frozen graph shaped like classify_image_graph_def.pb with a tiny body:
    DecodeJpeg (?, ?, 3) uint8 -> Cast -> ExpandDims -> ResizeBilinear (299, 299) -> Sub 128
    -> Mul 1/128 -> strided conv -> 1x1 conv to 2048 -> AvgPool `pool_3` (1, 1, 1, 2048) ->
    Reshape `pool_3/_reshape` to the constant [1, 2048]. `extra_op` breaks the chain the batched
    path recognises."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.uint8, (None, None, 3), name="DecodeJpeg")
        x = tf.expand_dims(tf.cast(image, tf.float32, name="Cast"), 0, name="ExpandDims")
        x = tf.raw_ops.ResizeBilinear(
            images=x,
            size=tf.constant([299, 299], name="ResizeBilinear/size"),
            align_corners=align_corners,
            half_pixel_centers=half_pixel_centers,
            name="ResizeBilinear",
        )
        x = tf.subtract(x, tf.constant(128.0, name="Sub/y"), name="Sub")
        if extra_op:
            x = tf.identity(x, name="Sub/copy")
        x = tf.multiply(x, tf.constant(1 / 128, tf.float32, name="Mul/y"), name="Mul")
        w1 = rng.normal(0, 0.5, (3, 3, 3, 8)).astype(np.float32)
        x = tf.nn.relu(tf.nn.conv2d(x, w1, strides=8, padding="VALID"))  # (1, 38, 38, 8)
        w2 = rng.normal(0, 0.5, (1, 1, 8, 2048)).astype(np.float32)
        x = tf.nn.relu(tf.nn.conv2d(x, w2, strides=1, padding="VALID"))  # (1, 38, 38, 2048)
        x = tf.nn.avg_pool2d(x, ksize=38, strides=1, padding="VALID", name="pool_3")
        tf.reshape(x, tf.constant([1, 2048], name="pool_3/_reshape/shape"), name="pool_3/_reshape")
    with open(path, "wb") as f:
        f.write(graph.as_graph_def(add_shapes=True).SerializeToString())
    return str(path)


def write_keras_inception(path: str, seed: int = 0) -> str:
    """Random InceptionV3 (no top, average pooling) weights in a `.weights.h5` at PATH."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.applications.InceptionV3(
        weights=None, include_top=False, pooling="avg", input_shape=(299, 299, 3)
    )
    model.save_weights(str(path))
    return str(path)


def write_vggish_weights(path: str, seed: int = 0) -> str:
    """Random VGGish weights (slim's truncated-normal init) in a `.weights.h5` at PATH."""
    from y8m.extract.vggish import build_vggish

    build_vggish(seed=seed).save_weights(str(path))
    return str(path)
