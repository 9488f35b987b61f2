import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

CHECK = """
import sys
import extras.howto100m
from extras.howto100m.commands import Commands
Commands().captions(subtitles=sys.argv[1], output=sys.argv[2])
assert "torch" not in sys.modules, "torch was imported"
print("ok")
"""


def test_package_and_captions_command_do_not_import_torch(tmp_path):
    (tmp_path / "subs").mkdir()
    (tmp_path / "subs" / "v.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n")
    done = subprocess.run(
        [sys.executable, "-c", CHECK, str(tmp_path / "subs"), str(tmp_path / "c.json")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("ok")
