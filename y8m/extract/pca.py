"""The official PCA and whitening of Inception pool_3 features (2048 -> 1024), read from the
files of yt8m_pca.tgz, and the two 8-bit quantisers (winners_facts.md 6.2, 6.3, 7.3)."""

from __future__ import annotations

import os

import numpy as np

from y8m.data import specs
from y8m.errors import UsageError

__all__ = [
    "EPSILON",
    "InceptionPCA",
    "dequantize",
    "load_inception_pca",
    "quantize_floor",
    "quantize_round",
]

INPUT_SIZE = 2048
OUTPUT_SIZE = specs.RGB.size
# Added to the eigenvalues before the square root ([G] feature_extractor.py apply_pca).
EPSILON = 1e-4
RELEASE = "yt8m_pca.tgz (http://data.yt8m.org/yt8m_pca.tgz, the YouTube-8M feature extractor's)"
# The official files and their shapes as released; _load_pca slices them.
FILE_SHAPES = {
    "mean.npy": (INPUT_SIZE, 1),
    "eigenvals.npy": (INPUT_SIZE, 1),
    "eigenvecs.npy": (INPUT_SIZE, INPUT_SIZE),
}

dequantize = specs.dequantize


class InceptionPCA:
    """Projects Inception-v3 pool_3 features onto the official 1024 principal axes, whitened.

    f = ((x - mean) @ eigenvecs) / sqrt(eigenvals + 1e-4), the official `apply_pca`, with no
    L2 normalisation and no clipping (quantisation clips).

    The arithmetic is float64 (the official code runs it in the files' float32): the result is
    then the same whatever the batch size or BLAS (float32 GEMM rounding depends on both), so
    a frame's quantised code never flips with its batch; the float32 output differs from the
    official float32 path by ~1e-6, far under a quantisation step (4/255).

    Args:
        mean: (2048,) mean of the pool_3 features.
        eigenvals: (1024,) eigenvalues of the kept axes, largest first.
        eigenvecs: (2048, 1024) the kept axes as columns.

    Input shape: (..., 2048) float features. Output shape: (..., 1024) float32.
    """

    def __init__(self, mean, eigenvals, eigenvecs):
        self.mean = np.asarray(mean, np.float64)
        self.eigenvals = np.asarray(eigenvals, np.float64)
        self.eigenvecs = np.asarray(eigenvecs, np.float64)
        expected = {
            "mean": (self.mean, (INPUT_SIZE,)),
            "eigenvals": (self.eigenvals, (OUTPUT_SIZE,)),
            "eigenvecs": (self.eigenvecs, (INPUT_SIZE, OUTPUT_SIZE)),
        }
        for name, (array, shape) in expected.items():
            if array.shape != shape:
                raise ValueError(f"{name} must have shape {shape}, got {array.shape}")
        self._scale = np.sqrt(self.eigenvals + EPSILON)

    def __call__(self, x) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if x.shape[-1:] != (INPUT_SIZE,):
            raise ValueError(f"features must end in {INPUT_SIZE}, got shape {x.shape}")
        projected = (x - self.mean) @ self.eigenvecs  # (..., 1024)
        return (projected / self._scale).astype(np.float32)


def load_inception_pca(pca_dir: str) -> InceptionPCA:
    """The official PCA from `pca_dir`, which holds mean.npy, eigenvals.npy and eigenvecs.npy.

    The files keep their released shapes and are sliced as the official `_load_pca` does:
    mean (2048, 1) -> [:, 0]; eigenvals (2048, 1) -> [:1024, 0]; eigenvecs (2048, 2048) ->
    .T[:, :1024] (the file holds the axes as rows). Files are read with pickling refused.

    Raises:
        UsageError: a file is missing, unreadable, not a numeric array of its official shape,
            or holds non-finite values or negative eigenvalues.
    """
    if not pca_dir or not os.path.isdir(pca_dir):
        raise UsageError(
            f"PCA folder {pca_dir!r} does not exist: unpack {RELEASE} into a folder and pass it"
        )
    arrays = {
        name: _read(os.path.join(pca_dir, name), shape) for name, shape in FILE_SHAPES.items()
    }
    eigenvals = arrays["eigenvals.npy"][:OUTPUT_SIZE, 0]
    if (eigenvals + EPSILON <= 0).any():
        raise UsageError(
            f"{os.path.join(pca_dir, 'eigenvals.npy')} has negative eigenvalues: "
            f"it is not the official file of {RELEASE}"
        )
    return InceptionPCA(
        arrays["mean.npy"][:, 0], eigenvals, arrays["eigenvecs.npy"].T[:, :OUTPUT_SIZE]
    )


def _read(path: str, shape: tuple[int, ...]) -> np.ndarray:
    name = os.path.basename(path)
    if not os.path.isfile(path):
        raise UsageError(f"missing {path}: {name} is an official PCA file of {RELEASE}")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        reason = " ".join(str(err).split())
        raise UsageError(
            f"cannot read {path} as a .npy array ({reason}): expected {name} of {RELEASE}"
        ) from None
    if not isinstance(array, np.ndarray) or array.shape != shape:
        got = array.shape if isinstance(array, np.ndarray) else "an .npz archive"
        raise UsageError(f"{path} must have shape {shape} (official {name}), got {got}")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise UsageError(
            f"{path} must hold real numbers (official {name}), got dtype {array.dtype}"
        )
    if not np.isfinite(array).all():
        raise UsageError(f"{path} holds NaN or infinite values: it is not the official {name}")
    return array


def quantize_round(f) -> np.ndarray:
    """Features -> uint8 codes as the official visual extractor: clip to [-2, 2], then
    round((f + 2) * 255 / 4) (= `y8m.data.specs.quantize`)."""
    return specs.quantize(f)


def quantize_floor(f) -> np.ndarray:
    """Features -> uint8 codes as VGGish's post-processor: clip to [-2, 2], then
    (f + 2) * 255 / 4 truncated by `astype(uint8)` (floor, since the value is >= 0)."""
    clipped = np.clip(
        np.asarray(f, np.float64), specs.MIN_QUANTIZED_VALUE, specs.MAX_QUANTIZED_VALUE
    )
    return ((clipped - specs.MIN_QUANTIZED_VALUE) * (255.0 / specs.QUANTIZE_RANGE)).astype(np.uint8)
