"""Checks for model hyper-parameters and feature lists: user values to typed values.

Values often come as strings from a command line (`"128"`, `"true"`). Every check raises a
`ValueError` whose one-line message names the option and shows the value received.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off", "none"}
# The frame-level input holding each video's frame count; no feature may take its name.
NUM_FRAMES = "num_frames"


class Feature(NamedTuple):
    """One input stream of a model: its input name and its dimension D."""

    name: str
    size: int


def positive_int(flag: str, value: Any) -> int:
    """`value` as an int >= 1; ValueError naming `flag` otherwise."""
    try:
        number = int(value)
        if number != float(value) or number < 1:
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"--{flag} must be a positive integer, received {value!r}") from None
    return number


def non_negative_float(flag: str, value: Any) -> float:
    """`value` as a float >= 0; ValueError naming `flag` otherwise."""
    try:
        number = float(value)
        if not number >= 0:
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(f"--{flag} must be a number >= 0, received {value!r}") from None
    return number


def boolean(flag: str, value: Any) -> bool:
    """`value` as a bool (also "true"/"false", 1/0); ValueError naming `flag` otherwise."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"--{flag} must be true or false, received {value!r}")


def choice(flag: str, value: Any, choices: tuple[str, ...]) -> str:
    """`value` as one of `choices` (case-insensitive); ValueError listing them otherwise."""
    text = str(value).strip().lower()
    if text not in choices:
        raise ValueError(f"--{flag} must be one of {', '.join(choices)}, received {value!r}")
    return text


def features(value: Any) -> tuple[Feature, ...]:
    """The model's input streams, checked, as `Feature(name, size)` tuples in order.

    Args:
        value: a non-empty sequence of `(name, size)` pairs, or of objects with `name` and
            `size` attributes, or a mapping from name to size. Sizes may be strings ("1024").

    Raises:
        ValueError: an empty or malformed list, a name that is not a non-empty string, repeated
            names or the name `num_frames`, or a size that is not a positive integer.
    """
    malformed = ValueError(
        f"features must be a non-empty sequence of (name, size) pairs, received {value!r}"
    )
    if isinstance(value, Mapping):
        value = list(value.items())
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise malformed
    parsed = []
    for item in value:
        if hasattr(item, "name") and hasattr(item, "size") and not isinstance(item, tuple):
            name, size = item.name, item.size
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            name, size = item
        else:
            raise malformed
        if not isinstance(name, str) or not name:
            raise ValueError(f"feature names must be non-empty strings, received {name!r}")
        try:
            size = positive_int("feature_sizes", size)
        except ValueError:
            raise ValueError(
                f"the size of feature {name!r} must be a positive integer, received {size!r}"
            ) from None
        parsed.append(Feature(name, size))
    if not parsed:
        raise malformed
    names = [f.name for f in parsed]
    if len(set(names)) != len(names) or NUM_FRAMES in names:
        raise ValueError(f"feature names must be distinct and not {NUM_FRAMES!r}, received {names}")
    return tuple(parsed)
