"""The `y8m` command: python-fire over the functions in y8m.commands."""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import fire

    from y8m import commands
    from y8m.errors import UsageError

    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        table = commands._command_table()
        commands.check_flags(table, argv)
        fire.Fire(table, command=_help_for_fire(argv), name="y8m")
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)


def _help_for_fire(argv: list[str]) -> list[str]:
    """`y8m train --help` -> `y8m train -- --help`: a command taking **kwargs (model
    hyper-parameters) would otherwise receive `help=True` instead of showing its help."""
    for flag in ("--help", "-h"):
        if flag in argv and "--" not in argv:
            i = argv.index(flag)
            return argv[:i] + argv[i + 1 :] + ["--", "--help"]
    return argv


if __name__ == "__main__":
    main()
