import json
import os

import pytest

torch = pytest.importorskip("torch")

from extras.howto100m import checkpoint as ckpt  # noqa: E402
from extras.howto100m.captions import load_captions, read_video_list  # noqa: E402
from extras.howto100m.data import EvalPairs, PairMaker, PairOptions, TrainPairs  # noqa: E402
from extras.howto100m.evaluate import DataSource, evaluate_retrieval  # noqa: E402
from extras.howto100m.features import FeatureStore  # noqa: E402
from extras.howto100m.inference import embed_pairs  # noqa: E402
from extras.howto100m.model import Net  # noqa: E402
from extras.howto100m.retrieval import retrieval_metrics  # noqa: E402
from extras.howto100m.text import WordVectors  # noqa: E402
from extras.howto100m.train import fit  # noqa: E402
from tests.extras.howto100m.synthetic import train_config as config  # noqa: E402
from y8m.errors import UsageError  # noqa: E402


def test_train_pairs_are_v_by_k_and_reproducible(data):
    captions = load_captions(data["captions"])
    store = FeatureStore(data["features_2d"], data["features_3d"])
    words = WordVectors.load(data["word2vec"])
    maker = PairMaker(captions, store, words, PairOptions(min_time=5, max_words=6))
    dataset = TrainPairs(maker, read_video_list(data["train_videos"]), pairs_per_video=4)
    item = dataset[3]
    assert item["video"].shape == (4, 8 + 6) and item["text"].shape == (4, 6, 16)
    norms = item["video"][:, :8].norm(dim=1)
    assert torch.allclose(norms, torch.ones(4))  # each stream is L2-normalised
    assert torch.equal(dataset[3]["text"], item["text"])
    dataset.set_epoch(1)
    assert not torch.equal(dataset[3]["video"], item["video"])
    pairs = EvalPairs(maker, ["test000"])
    assert len(pairs) == 6 and pairs.describe(0)[1:3] == (0.0, 5.0)


def test_training_reduces_loss_and_improves_recall(data, trained):
    run, summary = trained
    losses = [h["loss"] for h in summary["history"]]
    assert len(losses) == 14
    assert losses[-1] < 0.6 * losses[0]

    net, payload = ckpt.load_net(str(run))
    source = DataSource(
        data["test_captions"], data["features_2d"], data["word2vec"], data["features_3d"]
    )
    after = evaluate_retrieval(str(run), source, progress=False)

    torch.manual_seed(1)  # the untrained start of the same run
    untrained = Net(embd_dim=32, video_dim=14, we_dim=16)
    words = WordVectors.load(data["word2vec"])
    store = FeatureStore(data["features_2d"], data["features_3d"])
    maker = PairMaker(load_captions(data["test_captions"]), store, words, PairOptions())
    text, video = embed_pairs(
        untrained, EvalPairs(maker, read_video_list(data["test_videos"])), progress=False
    )
    before = retrieval_metrics(text, video)

    assert after["num_pairs"] == before["num_pairs"] == 60
    for direction in ("text_to_video", "video_to_text"):
        assert after[direction]["r5"] > before[direction]["r5"] + 0.25
        assert after[direction]["median_rank"] < before[direction]["median_rank"] / 2


def test_checkpoints_carry_config_and_are_pruned(trained):
    run, summary = trained
    files = ckpt.list_checkpoints(str(run))
    assert len(files) == 3  # keep_checkpoints default
    payload = torch.load(files[-1], weights_only=True)
    assert payload["config"]["embd_dim"] == 32
    assert payload["epoch"] == 14 and payload["step"] == 0
    assert payload["data"]["min_time"] == 5.0 and payload["data"]["two_streams"]
    assert json.loads((run / "config.json").read_text())["embd_dim"] == 32
    assert not [f for f in os.listdir(run) if f.startswith(".tmp")]


def test_rerun_with_all_epochs_done_does_nothing(data, trained):
    run, summary = trained
    again = fit(config(data, run, epochs=14))
    assert again["epochs_done"] == 14 and again["pairs_per_s"] is None
    with pytest.raises(UsageError, match="embd_dim"):
        fit(config(data, run, epochs=15, embd_dim=64))


def test_resume_inside_and_between_epochs_matches_one_run(data, tmp_path):
    straight = fit(config(data, tmp_path / "straight", epochs=2))
    # Interrupted: checkpoints after every step, then the newest ones lost mid-epoch 2.
    fit(config(data, tmp_path / "resumed", epochs=2, checkpoint_every=1, keep_checkpoints=0))
    files = ckpt.list_checkpoints(str(tmp_path / "resumed"))
    assert len(files) == 6  # 3 batches per epoch
    for path in files[4:]:
        os.remove(path)  # back to epoch 2, step 1
    resumed = fit(
        config(data, tmp_path / "resumed", epochs=2, checkpoint_every=1, keep_checkpoints=0)
    )
    a = torch.load(straight["checkpoint"], weights_only=True)
    b = torch.load(resumed["checkpoint"], weights_only=True)
    assert b["global_step"] == a["global_step"] == 6
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    assert b["history"][-1]["loss"] == pytest.approx(a["history"][-1]["loss"])


def test_bad_flags(data, tmp_path):
    with pytest.raises(UsageError, match="hard_negative_rate"):
        fit(config(data, tmp_path, hard_negative_rate=1.0))
    with pytest.raises(UsageError, match="not found"):
        fit(config(data, tmp_path, word2vec=str(tmp_path / "none.bin")))
