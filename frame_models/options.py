"""Checks for model overrides: user values (often strings from a command line) to typed values."""

from __future__ import annotations

from typing import Any

from y8m.data import specs
from y8m.errors import UsageError

_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off", "none"}


def positive_int(flag: str, value: Any) -> int:
    """`value` as an int >= 1; UsageError naming `flag` otherwise."""
    try:
        number = int(value)
        if number != float(value) or number < 1:
            raise ValueError
    except (TypeError, ValueError):
        raise UsageError(f"--{flag} must be a positive integer, received {value!r}") from None
    return number


def non_negative_float(flag: str, value: Any) -> float:
    """`value` as a float >= 0; UsageError naming `flag` otherwise."""
    try:
        number = float(value)
        if not number >= 0:
            raise ValueError
    except (TypeError, ValueError):
        raise UsageError(f"--{flag} must be a number >= 0, received {value!r}") from None
    return number


def boolean(flag: str, value: Any) -> bool:
    """`value` as a bool (also "true"/"false", 1/0); UsageError naming `flag` otherwise."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise UsageError(f"--{flag} must be true or false, received {value!r}")


def choice(flag: str, value: Any, choices: tuple[str, ...]) -> str:
    """`value` as one of `choices` (case-insensitive); UsageError listing them otherwise."""
    text = str(value).strip().lower()
    if text not in choices:
        raise UsageError(f"--{flag} must be one of {', '.join(choices)}, received {value!r}")
    return text


def features(
    feature_names: Any, feature_sizes: Any, defaults: tuple[specs.Feature, ...]
) -> tuple[specs.Feature, ...]:
    """Feature streams from `--feature_names` / `--feature_sizes` (lists or comma strings).

    Names default to `defaults`' names; sizes default to the known size of each name.

    Raises:
        UsageError: mismatched lengths, a name without known size, a bad size, or a name that
            clashes with the `num_frames` input.
    """
    if feature_names is None:
        feature_names = [f.name for f in defaults]
    try:
        parsed = specs.parse_feature_list(feature_names, feature_sizes)
    except UsageError:
        raise
    except ValueError:
        raise UsageError(
            f"--feature_sizes must be integers, one per feature, received {feature_sizes!r}"
        ) from None
    names = [f.name for f in parsed]
    if len(set(names)) != len(names) or "num_frames" in names:
        raise UsageError(f"--feature_names must be distinct and not 'num_frames', received {names}")
    for feature in parsed:
        positive_int("feature_sizes", feature.size)
    return parsed
