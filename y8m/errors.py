"""The one exception type for user errors, and the checks every command's flags go through.

The CLI prints a `UsageError` as `error: ...` and exits 2. Flags are checked at the edge, in
the command, with the functions below, so a bad value is one line naming the flag instead of
a traceback from deep inside TensorFlow or torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


class UsageError(ValueError):
    """Bad input from the user (flag, path, file format) rather than a bug.

    The message is one line that says what was wrong and how to fix it.
    """


def integer(flag: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """VALUE as an int within [minimum, maximum]; a UsageError naming --FLAG otherwise.

    Accepts ints, integral floats (fire parses `--n=1e3` as 1000.0) and digit strings; refuses
    booleans, fractions, NaN and text.
    """
    number = _number(flag, value, "an integer")
    if not float(number).is_integer():
        raise UsageError(f"--{flag} must be an integer, got {value!r}")
    number = int(number)
    _within(flag, number, minimum, maximum)
    return number


def number(flag: str, value: Any, minimum: float | None = None, maximum: float | None = None,
           *, above: float | None = None, below: float | None = None) -> float:  # fmt: skip
    """VALUE as a finite float within the bounds (inclusive; `above`/`below` exclusive)."""
    result = float(_number(flag, value, "a number"))
    _within(flag, result, minimum, maximum)
    if above is not None and not result > above:
        raise UsageError(f"--{flag} must be greater than {above}, got {value!r}")
    if below is not None and not result < below:
        raise UsageError(f"--{flag} must be less than {below}, got {value!r}")
    return result


def choice(flag: str, value: Any, choices: Iterable[Any]) -> Any:
    """VALUE if it is one of CHOICES; a UsageError listing them otherwise."""
    options = list(choices)
    if value not in options:
        raise UsageError(
            f"--{flag} must be one of {', '.join(str(o) for o in options)}, got {value!r}"
        )
    return value


def _number(flag: str, value: Any, what: str) -> float | int:
    if isinstance(value, bool) or value is None:
        raise UsageError(f"--{flag} must be {what}, got {value!r}")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise UsageError(f"--{flag} must be {what}, got {value!r}") from None
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UsageError(f"--{flag} must be {what}, got {value!r}")
    return value


def _within(flag: str, value, minimum, maximum) -> None:
    if minimum is not None and value < minimum:
        raise UsageError(f"--{flag} must be at least {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise UsageError(f"--{flag} must be at most {maximum}, got {value!r}")
