"""Command flags declared once, as dataclass fields, and the fire command derived from them.

A field made with `flag(default, help)` is a flag: its name, default and help line are
written there only. `command(*configs)` turns a method `def train(self, **flags)` into the
command fire sees: a `__signature__` with one parameter per flag (what fire parses and what
`y8m.cli.commands.check_flags` inspects) and a docstring whose Args section is the help lines
(what `--help` shows). A field without a default is a required flag; the command shows it
with default "" so that it can name what is missing instead of failing in fire.

Imports nothing heavy: command modules use it at import time.
"""

from __future__ import annotations

import dataclasses
import inspect
import textwrap
from collections.abc import Callable
from typing import Any

from y8m.errors import UsageError

# Fire hands over whatever the command line parses to (`--lr=1` is an int), so numbers and
# booleans are converted to the field's type; strings pass through unchanged.
_CONVERT: dict[str, Callable[[Any], Any]] = {"int": int, "float": float, "bool": bool}


def flag(default: Any = dataclasses.MISSING, help: str = "") -> Any:
    """A dataclass field that is also a command flag (no `default`: a required flag)."""
    return dataclasses.field(default=default, metadata={"help": help})


def flag_fields(*configs: type) -> list[dataclasses.Field]:
    """The flag fields of the dataclasses, in declaration order; other fields are left out."""
    return [f for config in configs for f in dataclasses.fields(config) if "help" in f.metadata]


def required(config: type) -> list[str]:
    """Names of the flags that have no default."""
    return [f.name for f in flag_fields(config) if f.default is dataclasses.MISSING]


def signature(*configs: type) -> inspect.Signature:
    """`(self, flag=default, ...)` for the flag fields of `configs`."""
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    for f in flag_fields(*configs):
        default = "" if f.default is dataclasses.MISSING else f.default
        params.append(
            inspect.Parameter(
                f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default, annotation=f.type
            )
        )
    return inspect.Signature(params)


def args_section(*configs: type) -> str:
    """The Google-style `Args:` section of the flags' help lines."""
    lines = ["Args:"]
    for f in flag_fields(*configs):
        lines.append(
            textwrap.fill(
                f"{f.name}: {f.metadata['help']}",
                width=96,
                initial_indent="    ",
                subsequent_indent="        ",
                break_on_hyphens=False,
            )
        )
    return "\n".join(lines)


def convert(fields: list[dataclasses.Field], values: dict) -> dict:
    """`values` with each number or boolean flag converted to its field's type.

    Raises:
        UsageError: a value that is not of the flag's type.
    """
    converted = dict(values)
    for f in fields:
        type_name = getattr(f.type, "__name__", f.type)  # a string under postponed annotations
        to_type = _CONVERT.get(type_name)
        if to_type is None or f.name not in values:
            continue
        try:
            converted[f.name] = to_type(values[f.name])
        except (TypeError, ValueError):
            raise UsageError(f"--{f.name} must be {type_name}, got {values[f.name]!r}") from None
    return converted


def build(config: type, values: dict):
    """An instance of the dataclass `config` from the flag values that are its fields."""
    names = {f.name for f in dataclasses.fields(config)}
    return config(**{k: v for k, v in values.items() if k in names})


def command(*configs: type) -> Callable[[Callable], Callable]:
    """Decorator: `def name(self, **flags)` becomes a command taking the configs' flags.

    The method receives every flag (defaults filled in, types converted); its own docstring
    (summary and description) gets the Args section appended.
    """
    fields = flag_fields(*configs)
    sig = signature(*configs)

    def decorate(fn: Callable) -> Callable:
        def method(self, *args, **kwargs):
            bound = sig.bind(self, *args, **kwargs)  # TypeError for unknown flags, as usual
            bound.apply_defaults()
            values = dict(bound.arguments)
            del values["self"]
            return fn(self, **convert(fields, values))

        method.__name__ = fn.__name__
        method.__qualname__ = fn.__qualname__
        method.__module__ = fn.__module__
        method.__doc__ = inspect.cleandoc(fn.__doc__ or "") + "\n\n" + args_section(*configs)
        method.__signature__ = sig
        return method

    return decorate
