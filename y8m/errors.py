"""The one exception type for user errors: the CLI prints it as `error: ...` and exits 2."""


class UsageError(ValueError):
    """Bad input from the user (flag, path, file format) rather than a bug.

    The message is one line that says what was wrong and how to fix it.
    """
