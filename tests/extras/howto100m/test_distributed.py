import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from extras.howto100m import checkpoint as ckpt  # noqa: E402

REPO = Path(__file__).resolve().parents[3]


def test_torchrun_two_processes_on_cpu(data, tmp_path):
    """The documented launch: a DistributedSampler splits the videos, rank 0 checkpoints."""
    run = tmp_path / "run"
    flags = dict(
        captions=data["captions"],
        features_2d=data["features_2d"],
        features_3d=data["features_3d"],
        word2vec=data["word2vec"],
        output_dir=str(run),
        videos=data["train_videos"],
        epochs=2,
        videos_per_batch=4,
        pairs_per_video=4,
        embd_dim=16,
        num_workers=0,
        device="cpu",
    )
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "extras.howto100m.launch", *[f"--{k}={v}" for k, v in flags.items()],
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("trained 2 epochs") == 1  # rank 0 only
    payload = torch.load(ckpt.list_checkpoints(str(run))[-1], weights_only=True)
    # 24 videos / 2 processes / 4 per batch = 3 steps per epoch.
    assert payload["global_step"] == 6 and payload["epoch"] == 2
    assert payload["config"]["embd_dim"] == 16
    assert not any(k.startswith("module.") for k in payload["state_dict"])

    # A user error under torchrun: one line, exit status 2.
    bad = [*command[:-1], "--hard_negative_rate=1.5"]
    done = subprocess.run(bad, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "error: --hard_negative_rate" in done.stderr
