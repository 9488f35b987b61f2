"""The `y8m` command: python-fire over the functions in y8m.cli.commands."""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    from y8m.errors import UsageError

    argv = sys.argv[1:] if argv is None else list(argv)
    try:  # Ctrl-C while TensorFlow starts is an interruption like any other
        import fire

        from y8m.cli import commands

        if argv and argv[0] in _TENSORFLOW_COMMANDS and "--help" not in argv:
            _start_tensorflow_quietly()
        table = commands._command_table()
        commands.check_flags(table, argv)
        fire.Fire(table, command=_help_for_fire(argv), name="y8m")
    except UsageError as err:
        _fail(str(err), 2)
    except OSError as err:  # a file the command reads or writes: one line, no traceback
        where = f"{err.filename}: " if getattr(err, "filename", None) else ""
        _fail(f"{where}{err.strerror or err}", 2)
    except KeyboardInterrupt:
        _fail("interrupted", 130)


def _fail(message: str, code: int) -> None:
    # One line, whatever the message carried (a path with a newline, a wrapped library error).
    print("error: " + " ".join(str(message).split()), file=sys.stderr)
    sys.exit(code)


_TENSORFLOW_COMMANDS = {
    "synth",
    "inspect",
    "models",
    "train",
    "eval",
    "predict",
    "export",
    "average",
    "demo",
    "bench",
    "split",
}


def _start_tensorflow_quietly() -> None:
    """Imports TensorFlow with the C++ start-up chatter (oneDNN, CUDA probing) discarded.

    Those lines are written to file descriptor 2 before TF_CPP_MIN_LOG_LEVEL applies; Python
    errors raised later still reach stderr.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow as tf

            tf.config.list_physical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _help_for_fire(argv: list[str]) -> list[str]:
    """`y8m train --help` -> `y8m train -- --help`: a command taking **kwargs (model
    hyper-parameters) would otherwise receive `help=True` instead of showing its help."""
    for flag in ("--help", "-h"):
        if flag in argv and "--" not in argv:
            i = argv.index(flag)
            return argv[:i] + argv[i + 1 :] + ["--", "--help"]
    return argv
