"""The middle floor (ensembles, submissions) and the prediction store stay free of the layers
they must not load: TensorFlow, Keras, torch, frame_models, y8m.run, y8m.cli."""

import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
MAX_BODY_LINES = 80

MIDDLE = (
    "ensembles, ensembles.commands, ensembles.greedy, ensembles.inputs, ensembles.recipe, "
    "submissions, submissions.commands, submissions.truth, submissions.score, "
    "submissions.validate, submissions.formats, submissions.segments"
)
FORBIDDEN = (
    "bad = [m for m in sys.modules if m.split('.')[0] in "
    "('tensorflow', 'keras', 'torch', 'frame_models') or m.startswith(('y8m.run', 'y8m.cli'))]\n"
    "assert not bad, bad\n"
)


def _run(code: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_ensembles_and_submissions_import_no_framework():
    _run(f"import sys\nimport {MIDDLE}\n{FORBIDDEN}")


def test_ensemble_run_loads_no_framework(tmp_path):
    """Imports inside functions too: a greedy ensemble of a store and a CSV, then scoring."""
    code = f"""
import sys, warnings
import numpy as np
from ensembles.commands import ensemble
from submissions.commands import Commands
from y8m.predictions import PredictionWriter

tmp = {str(tmp_path)!r}
rng = np.random.default_rng(0)
ids = [f"v{{i}}" for i in range(20)]
labels = rng.random((20, 5)) < 0.3
for split in ("validate", "test"):
    for name in ("a", "b"):
        with PredictionWriter(f"{{tmp}}/{{split}}/{{name}}", model_name=name, split=split,
                              num_classes=5, top_k=3) as w:
            w.add_batch(ids, rng.random((20, 5)), labels)
with open(f"{{tmp}}/truth.csv", "w") as f:
    f.write("".join(f"{{v}},{{' '.join(map(str, np.flatnonzero(r)))}}\\n" for v, r in zip(ids, labels)))
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    ensemble(validation=f"{{tmp}}/validate/*.parquet", test=f"{{tmp}}/test/*.parquet",
             greedy=2, output_file=f"{{tmp}}/sub.csv")
    ensemble(test=f"{{tmp}}/sub.csv", method="mean", output_file=f"{{tmp}}/again.csv")
Commands().validate(f"{{tmp}}/sub.csv", ids_from=f"{{tmp}}/truth.csv")
Commands().score(f"{{tmp}}/sub.csv", solution=f"{{tmp}}/truth.csv")
{FORBIDDEN}"""
    _run(code)


def test_prediction_store_is_foundation():
    _run("import sys, y8m.predictions\nassert 'submissions' not in sys.modules\n")


def _sources():
    yield from sorted((ROOT / "ensembles").rglob("*.py"))
    yield from sorted((ROOT / "submissions").rglob("*.py"))
    yield ROOT / "y8m" / "predictions.py"


@pytest.mark.parametrize("path", list(_sources()), ids=lambda p: str(p.relative_to(ROOT)))
def test_function_bodies_are_short(path):
    long = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        body = node.body
        if (
            len(body) > 1
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
        ):
            body = body[1:]  # the docstring does not count
        lines = body[-1].end_lineno - body[0].lineno + 1
        if lines > MAX_BODY_LINES:
            long.append(f"{node.name} (line {node.lineno}): {lines} lines")
    assert not long, f"function bodies over {MAX_BODY_LINES} lines in {path.name}: {long}"
