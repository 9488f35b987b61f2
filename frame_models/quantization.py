"""Weight storage at a precision (float32, float16, int8 per output channel), numpy only: the
one implementation behind `y8m.run.quantize` and the packed ensemble's stored weights."""

from __future__ import annotations

import numpy as np

__all__ = [
    "INT8_MAX",
    "MIN_ELEMENTS",
    "PRECISIONS",
    "decode_int8",
    "encode_int8",
    "is_int8",
    "shape_bytes",
    "stored_bytes",
    "stores_int8",
]

PRECISIONS = ("float32", "float16", "int8")
# The 2018 winner's quantize.py transformed only variables with more than this many elements:
# biases, batch-norm statistics and gates are a sliver of the bytes and the most sensitive.
MIN_ELEMENTS = 17000
INT8_MAX = 127


def is_int8(w: np.ndarray, precision: str, min_elements: int = MIN_ELEMENTS) -> bool:
    """Whether W is stored as int8 codes at PRECISION: a floating tensor of at least 2 axes
    and MIN_ELEMENTS elements (smaller ones' per-channel scales would outweigh their codes)."""
    w = np.asarray(w)
    return stores_int8(w.shape, w.dtype, precision, min_elements)


def stores_int8(shape, dtype, precision: str, min_elements: int = MIN_ELEMENTS) -> bool:
    """`is_int8` from a tensor's shape and dtype alone (a variable not yet read)."""
    shape = tuple(int(d) for d in shape)
    return (
        precision == "int8"
        and np.dtype(dtype).kind == "f"
        and len(shape) >= 2
        and int(np.prod(shape)) >= int(min_elements)
    )


def encode_int8(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 codes of W per channel of its last axis.

    scale_c = max|w[..., c]| / 127 (1 for an all-zero channel), q = round(w / scale_c)
    clipped to [-127, 127]; `decode_int8` gives each element within scale_c / 2 of W.

    Args:
        w: floating tensor (..., C).

    Returns:
        (codes int8 of W's shape, scales float32 (C,)).
    """
    w = np.asarray(w, np.float32)
    peak = np.max(np.abs(w), axis=tuple(range(w.ndim - 1)))  # (C,)
    # A zero channel gets scale 1: its codes are all 0 and decode to exact zeros.
    scale = np.where(peak > 0, peak / INT8_MAX, 1.0).astype(np.float32)
    codes = np.clip(np.rint(w / scale), -INT8_MAX, INT8_MAX).astype(np.int8)
    return codes, scale


def decode_int8(codes: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """float32 codes * scale, the product `PackedEnsemble` computes in its graph too."""
    return np.asarray(codes).astype(np.float32) * np.asarray(scale, np.float32)


def stored_bytes(w: np.ndarray, precision: str, min_elements: int = MIN_ELEMENTS) -> int:
    """The bytes W takes stored at PRECISION: int8 codes plus a float32 scale per channel,
    2 per element in float16, 4 otherwise (2 for a tensor already float16, as a packed
    ensemble holds them); non-floating arrays (seed states, int8 codes) their own size."""
    w = np.asarray(w)
    return shape_bytes(w.shape, w.dtype, precision, min_elements)


def shape_bytes(shape, dtype, precision: str, min_elements: int = MIN_ELEMENTS) -> int:
    """`stored_bytes` of a tensor of SHAPE and DTYPE (a variable not yet read)."""
    dtype, count = np.dtype(dtype), int(np.prod(tuple(int(d) for d in shape)))
    if dtype.kind != "f":
        return count * dtype.itemsize
    if precision == "float16":
        return 2 * count
    if not stores_int8(shape, dtype, precision, min_elements):
        return 4 * count if dtype.itemsize >= 4 else count * dtype.itemsize  # as stored
    return count + 4 * int(shape[-1])
