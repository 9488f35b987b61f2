"""`y8m ensemble`: `ensembles.commands.ensemble`, plus `--runs`, where the run layer first
predicts every run at every `--precisions` on the validation (and test) records, cached as
stores beside the runs, and the greedy selection (under `--max_mb`) runs over those stores.

The flags are `ensemble`'s own and the four below, in one signature built from both, so fire's
`--help` and the unknown-flag check see them all.
"""

from __future__ import annotations

import inspect

RUN_FLAGS = {
    "runs": (None, "glob (or comma-separated list) of run directories to ensemble"),
    "precisions": (
        "float32",
        "with --runs, comma-separated weight precisions to consider per "
        "run: float32, float16, int8 (predicted once, cached in RUN/precisions/)",
    ),  # fmt: skip
    "validate_data_pattern": (None, "with --runs, the labelled validation TFRecords"),
    "test_data_pattern": (None, "with --runs, the test TFRecords the submission is made from"),
}


def ensemble_command(**flags):
    """The ensemble command; see `ensembles.commands.ensemble`."""
    from ensembles.commands import ensemble
    from y8m.errors import UsageError

    runs = flags.pop("runs", None)
    precisions = flags.pop("precisions", "float32")
    validate = flags.pop("validate_data_pattern", None)
    test = flags.pop("test_data_pattern", None)
    if runs:
        if flags.get("validation") or flags.get("test"):
            raise UsageError("--runs makes the stores: drop --validation and --test")
        if not validate:
            raise UsageError(
                "--runs needs --validate_data_pattern: the labelled validation records"
            )
        from y8m.run.precision_stores import precision_stores

        stores = precision_stores(runs, precisions, validate, test)
        flags["validation"] = ",".join(s["validation"] for s in stores)
        flags["test"] = ",".join(s["test"] for s in stores) if test else None
    elif validate or test or precisions != "float32":
        raise UsageError(
            "--validate_data_pattern, --test_data_pattern and --precisions go with --runs"
        )
    return ensemble(**flags)


def _signature_and_doc():
    from ensembles.commands import ensemble

    keyword = inspect.Parameter.KEYWORD_ONLY
    params = [p.replace(kind=keyword) for p in inspect.signature(ensemble).parameters.values()]
    params += [inspect.Parameter(n, keyword, default=d) for n, (d, _) in RUN_FLAGS.items()]
    doc = inspect.getdoc(ensemble)
    head, _, tail = doc.partition("\n\nReturns:")
    extra = "".join(f"\n    {name}: {text}" for name, (_, text) in RUN_FLAGS.items())
    return inspect.Signature(params), f"{head}{extra}\n\nReturns:{tail}"


ensemble_command.__signature__, ensemble_command.__doc__ = _signature_and_doc()
