"""The torchrun entry shared by the extras: fire over one command, user errors as one line.

Imports nothing heavy; each extra's `launch` module passes its own `train` command.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from y8m.errors import UsageError


def torchrun_main(command: Callable, argv: list[str] | None = None) -> None:
    """Runs `command` with the flags of this process's command line, as every torchrun rank
    does; a UsageError prints `error: ...` and exits with status 2."""
    import fire

    try:
        # The command prints its own summary; fire would echo the dict on every rank.
        fire.Fire(command, command=argv, serialize=lambda _: None)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
