"""`python -m y8m.cli`: the same as the `y8m` console script."""

from y8m.cli.main import main

main()
