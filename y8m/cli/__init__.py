"""The roof: the `y8m` command (fire), its command table, the demo and the benches.

Nothing outside this package imports it.
"""

from y8m.cli.main import main

__all__ = ["main"]
