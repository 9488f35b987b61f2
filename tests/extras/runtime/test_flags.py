"""Flags declared once: the command's signature, help and values come from dataclass fields."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from extras.runtime.flags import build, command, flag, flag_fields, required
from y8m.errors import UsageError


@dataclasses.dataclass
class _Config:
    name: str = flag(help="required: no default.")
    steps: int = flag(3, "how many steps.")
    rate: float = flag(0.5, "a rate.")
    fast: bool = flag(True, "go fast.")
    internal: int = 7  # not a flag


class _Commands:
    @command(_Config)
    def run(self, **flags):
        """Runs it.

        Longer description.
        """
        return build(_Config, flags)


def test_signature_and_help_come_from_the_fields():
    sig = inspect.signature(_Commands().run)
    assert [(p.name, p.default) for p in sig.parameters.values()] == [
        ("name", ""),
        ("steps", 3),
        ("rate", 0.5),
        ("fast", True),
    ]
    doc = _Commands.run.__doc__
    assert doc.startswith("Runs it.\n\nLonger description.\n\nArgs:\n")
    assert "    steps: how many steps." in doc and "internal" not in doc
    assert required(_Config) == ["name"]
    assert [f.name for f in flag_fields(_Config)] == ["name", "steps", "rate", "fast"]


def test_values_are_completed_and_converted():
    config = _Commands().run(name="x", steps="4", rate=1)
    assert config == _Config(name="x", steps=4, rate=1.0, fast=True, internal=7)
    assert isinstance(config.rate, float)
    assert _Commands().run("y", 2).steps == 2  # fire passes flags positionally
    with pytest.raises(UsageError, match="--steps must be int"):
        _Commands().run(name="x", steps="many")
    with pytest.raises(TypeError):
        _Commands().run(name="x", bogus=1)


def test_check_flags_of_the_roof_reads_the_derived_signature():
    from y8m.cli.commands import check_flags

    tree = {"run": _Commands().run}
    check_flags(tree, ["run", "--name=x", "--steps=2", "--nofast"])
    with pytest.raises(UsageError, match="unknown flag --bogus"):
        check_flags(tree, ["run", "--bogus=1"])
