"""The core never imports torch: the PyTorch extras are optional."""

import subprocess
import sys


def test_core_leaves_torch_unloaded():
    code = (
        "import sys\n"
        "import y8m, y8m.cli.commands, y8m.run.train, y8m.run.predict, y8m.run.evaluate, frame_models, ensembles, submissions\n"
        "import extras.milnce.commands, extras.howto100m.commands, extras.bcfw.commands\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
