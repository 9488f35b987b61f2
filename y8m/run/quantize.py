"""Weight-only quantisation of a run's Keras model (float16, int8 per output channel), as the
2018 winner's quantize.py did, for ensembles under a byte budget (issue 17).

Only the stored weights change: the model still computes in float32 on the decoded values.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

from frame_models.quantization import (
    INT8_MAX,  # noqa: F401  (part of this module's interface)
    MIN_ELEMENTS,
    PRECISIONS,
    decode_int8,
    encode_int8,
    is_int8,
    stored_bytes,
)
from y8m.errors import UsageError

__all__ = [
    "MIN_ELEMENTS",
    "PRECISIONS",
    "apply",
    "check_precision",
    "model_bytes",
    "quantize_array",
    "quantized_weights",
]


def check_precision(precision: str) -> str:
    """PRECISION if it is one of `PRECISIONS`, else a one-line UsageError."""
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    return precision


def quantize_array(
    w: np.ndarray, precision: str, min_elements: int = MIN_ELEMENTS
) -> tuple[np.ndarray, int]:
    """One weight tensor as the model would see it after storage at PRECISION.

    - "float32": as is, 4 bytes per element.
    - "float16": rounded to half precision, 2 bytes per element, whatever its size (as
      `y8m export --dtype=float16` stores every floating tensor).
    - "int8": symmetric per output channel (the last axis): scale_c = max|w[..., c]| / 127
      (1 for an all-zero channel), q = round(w / scale_c) clipped to [-127, 127], decoded
      q * scale_c; bytes = elements + 4 * channels (the int8 codes and a float32 scale per
      channel). Each element is then within scale_c / 2 of its float32 value. Tensors with
      fewer than MIN_ELEMENTS elements or fewer than 2 axes (biases, batch-norm statistics,
      whose per-channel scales would outweigh their codes) stay float32.

    Non-floating arrays (seed states, counters) are kept as they are, at their own size.

    Args:
        w: the tensor, any shape.
        precision: "float32", "float16" or "int8".
        min_elements: the smallest tensor int8 quantises.

    Returns:
        (decoded float32 array of w's shape, stored bytes).
    """
    check_precision(precision)
    w = np.asarray(w)
    size = stored_bytes(w, precision, min_elements)
    if w.dtype.kind != "f":
        return w, size
    w = w.astype(np.float32, copy=False)
    if precision == "float16":
        return w.astype(np.float16).astype(np.float32), size
    if not is_int8(w, precision, min_elements):
        return w, size
    return decode_int8(*encode_int8(w)), size


def quantized_weights(
    model, precision: str, min_elements: int = MIN_ELEMENTS
) -> tuple[list[np.ndarray], int]:
    """Every weight of MODEL (`model.get_weights()` order) decoded after storage at PRECISION.

    Returns:
        (list of arrays for `model.set_weights`, total stored bytes).
    """
    decoded, total = [], 0
    for w in model.get_weights():
        array, size = quantize_array(w, precision, min_elements)
        decoded.append(array.astype(np.asarray(w).dtype, copy=False))
        total += size
    return decoded, total


def model_bytes(model, precision: str, min_elements: int = MIN_ELEMENTS) -> int:
    """The bytes MODEL's weights take stored at PRECISION (no file overhead)."""
    check_precision(precision)
    return sum(stored_bytes(np.asarray(w), precision, min_elements) for w in model.get_weights())


@contextlib.contextmanager
def apply(model, precision: str, min_elements: int = MIN_ELEMENTS) -> Iterator[int]:
    """Within the block MODEL holds its weights as stored at PRECISION; they are restored after.

    Yields the stored bytes. To keep the quantised weights (a model loaded only to predict),
    call `model.set_weights(quantized_weights(model, precision)[0])` instead.

    Example:
        >>> with apply(model, "int8") as size:
        ...     p = model.predict(x)
    """
    original = model.get_weights()
    decoded, size = quantized_weights(model, precision, min_elements)
    model.set_weights(decoded)
    try:
        yield size
    finally:
        model.set_weights(original)
