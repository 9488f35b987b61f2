"""Tiny runs trained on the session's synthetic data, for tests that need trained run folders."""

from __future__ import annotations

# Sizes that build and train in about a second each.
TINY_GNV = {"cluster_size": 4, "hidden_size": 16, "sample_frames": 8, "num_mixtures": 2}
TINY_NEXTVLAD = {"cluster_size": 4, "hidden_size": 16, "sample_frames": 8, "groups": 2}


def train_tiny(synth_dir, train_dir, model: str, *, max_steps: int = 4, **hparams) -> str:
    """Trains MODEL for MAX_STEPS on synth_dir's frame-level training records (64 classes,
    statistics as trained) into TRAIN_DIR; returns the folder."""
    from y8m.run.train import train

    train(
        model=model,
        train_data_pattern=str(synth_dir / "frame" / "train*.tfrecord"),
        train_dir=str(train_dir),
        batch_size=16,
        max_steps=max_steps,
        precise_bn_batches=0,
        progress=False,
        num_classes=64,
        **hparams,
    )
    return str(train_dir)
