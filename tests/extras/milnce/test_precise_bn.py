"""Precise BatchNorm statistics in MIL-NCE: the README's toy run gives distinct embeddings,
checkpoints keep training's running averages for resuming, and checkpoints saved without
re-estimated statistics get them in embed (unless --precise_bn_batches=0)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("av")

from extras.milnce.commands import Commands  # noqa: E402
from y8m.errors import UsageError  # noqa: E402

# The README's toy run (docs/extras_milnce.md), without decoding processes or bars.
README_TRAIN = dict(
    epochs=12,
    batch_size=4,
    lr=1e-4,
    warmup_steps=0,
    num_candidates=2,
    num_frames=8,
    video_size=64,
    min_time=2.0,
    num_workers=0,
    progress=False,
)
README_EMBED = dict(num_frames=8, video_size=64, num_workers=0, progress=False)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    return Commands().toy(output_dir=str(root / "toy"), num_videos=4)


def _train(toy, train_dir, **overrides):
    flags = dict(
        train_dir=str(train_dir),
        videos=f"{toy['videos']}/*.mp4",
        captions=toy["captions"],
        dictionary=toy["dict"],
        **README_TRAIN,
    )
    flags.update(overrides)
    return Commands().train(**flags)


def _max_cosine(path) -> float:
    x = np.load(path)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    cosine = x @ x.T
    return float(cosine[~np.eye(len(x), dtype=bool)].max())


@pytest.fixture(scope="module")
def readme_run(toy, tmp_path_factory):
    train_dir = tmp_path_factory.mktemp("runs") / "toy"
    _train(toy, train_dir)
    return train_dir


def test_readme_toy_run_gives_distinct_video_embeddings(readme_run, toy, tmp_path):
    Commands().embed(
        checkpoint=str(readme_run),
        videos=f"{toy['videos']}/*.mp4",
        output=str(tmp_path / "videos.npy"),
        **README_EMBED,
    )
    # With training's running averages all four were identical (cosine 1.0000).
    assert _max_cosine(tmp_path / "videos.npy") < 0.99
    state = torch.load(readme_run / "epoch0012.pth.tar", weights_only=True)
    assert state["precise_bn"] == {"batches": 1, "clips_per_batch": 4}  # 4 videos: 1 batch
    kept = state["bn_training_stats"]
    key = "mixed_5c.conv_b0.bn1.running_var"
    assert key in kept and not torch.equal(kept[key], state["state_dict"][key])


def test_checkpoint_without_precise_statistics_gets_them_in_embed(
    readme_run, toy, tmp_path, capsys
):
    # What a checkpoint written before the feature holds: training's running averages.
    state = torch.load(readme_run / "epoch0012.pth.tar", weights_only=True)
    state["state_dict"].update(state.pop("bn_training_stats"))
    del state["precise_bn"], state["world_size"]
    old = tmp_path / "epoch0012.pth.tar"
    torch.save(state, old)
    flags = dict(checkpoint=str(old), videos=f"{toy['videos']}/*.mp4", **README_EMBED)
    Commands().embed(output=str(tmp_path / "stored.npy"), precise_bn_batches=0, **flags)
    assert _max_cosine(tmp_path / "stored.npy") > 0.9999  # the problem
    assert "re-estimated" not in capsys.readouterr().out
    Commands().embed(output=str(tmp_path / "fixed.npy"), **flags)
    assert "re-estimated BatchNorm statistics over 1 training batches" in capsys.readouterr().out
    assert _max_cosine(tmp_path / "fixed.npy") < 0.99
    # The same estimate as train's: the same 4 clips (draws depend on seed, epoch and video).
    flags["checkpoint"] = str(readme_run)
    Commands().embed(output=str(tmp_path / "train.npy"), **flags)
    fixed, train = np.load(tmp_path / "fixed.npy"), np.load(tmp_path / "train.npy")
    # Equal up to float rounding, which 1-batch statistics of 4 clips amplify: the
    # channels-last kernels round differently per batch shape (percent-level per element).
    cosines = (fixed * train).sum(1) / np.linalg.norm(fixed, axis=1) / np.linalg.norm(train, axis=1)
    assert cosines.min() > 0.9999  # 0.99999 seen
    assert np.linalg.norm(fixed - train) < 0.02 * np.linalg.norm(train)  # 0.005 seen


class _Interrupted(Exception):
    pass


def _stop_at_step(step):
    def after_step(run, loss):
        if run.step == step:
            raise _Interrupted

    return after_step


def test_resume_continues_from_the_training_statistics(toy, tmp_path):
    """A run interrupted after epoch 1's checkpoint and resumed ends as an uninterrupted one:
    the model trains on with its running averages, never the re-estimated ones."""
    from extras.milnce.config import ModelConfig, TrainConfig
    from extras.milnce.train import train
    from extras.runtime.hooks import Hooks

    flags = dict(epochs=2, checkpoint_every=1)
    straight = tmp_path / "straight"
    _train(toy, straight, **flags)
    resumed = tmp_path / "resumed"
    config = TrainConfig(
        train_dir=str(resumed),
        videos=f"{toy['videos']}/*.mp4",
        captions=toy["captions"],
        dictionary=toy["dict"],
        **{**README_TRAIN, **flags},
    )
    with pytest.raises(_Interrupted):  # in epoch 2, after epoch 1's checkpoint
        train(config, ModelConfig(), Hooks(after_step=_stop_at_step(2)))
    assert _train(toy, resumed, **flags)["resumed_from"].endswith("epoch0001.pth.tar")
    a = torch.load(straight / "epoch0002.pth.tar", weights_only=True)
    b = torch.load(resumed / "epoch0002.pth.tar", weights_only=True)
    for part in ("state_dict", "bn_training_stats"):
        assert a[part].keys() == b[part].keys()
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), (part, key)


def test_disabled_keeps_the_running_averages(toy, tmp_path):
    run = tmp_path / "plain"
    _train(toy, run, epochs=1, precise_bn_batches=0)
    state = torch.load(run / "epoch0001.pth.tar", weights_only=True)
    assert state["precise_bn"] is None and state["bn_training_stats"] == {}
    from extras.milnce.precise_bn import needs_precise_bn

    assert needs_precise_bn(state)
    with pytest.raises(UsageError, match="precise_bn_batches must be >= 0"):
        _train(toy, tmp_path / "bad", epochs=1, precise_bn_batches=-1)
