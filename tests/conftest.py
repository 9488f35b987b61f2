"""Shared fixtures: a tiny synthetic dataset written once per session."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    """A 2018-layout dataset of 64 classes: 96 train / 32 validate / 32 test videos of 10-30 frames."""
    from y8m.data.synth import synthesize

    out = tmp_path_factory.mktemp("synth2018")
    synthesize(
        str(out),
        version=2018,
        videos=96,
        validate_videos=32,
        test_videos=32,
        shards=2,
        min_frames=10,
        max_frames=30,
        active_classes=12,
        verticals=3,
        seed=1,
        num_classes=64,
        progress=False,
    )
    return out
