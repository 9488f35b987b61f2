"""A pair drawn twice in a batch is embedded once: same scores, loss, gradients and steps."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from extras.howto100m.bench import _batch  # noqa: E402
from extras.howto100m.captions import load_captions, read_video_list  # noqa: E402
from extras.howto100m.data import PairMaker, PairOptions, TrainPairs  # noqa: E402
from extras.howto100m.features import FeatureStore  # noqa: E402
from extras.howto100m.model import Net, distinct_rows  # noqa: E402
from extras.howto100m.text import WordVectors  # noqa: E402
from extras.howto100m.train import pair_keys  # noqa: E402
from tests.extras.howto100m.test_bench import repeated_batch  # noqa: E402

TOL = dict(atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("seed", range(5))
def test_distinct_rows_finds_the_first_of_each_key_in_batch_order(seed):
    keys = torch.randint(0, 7, (40,), generator=torch.Generator().manual_seed(seed))
    first, inverse = distinct_rows(keys)
    expected = [i for i, key in enumerate(keys.tolist()) if key not in keys[:i].tolist()]
    assert first.tolist() == expected
    assert torch.equal(keys[first][inverse], keys)


def test_distinct_rows_of_distinct_and_empty_keys():
    first, inverse = distinct_rows(torch.tensor([5, 3, 9]))
    assert first.tolist() == [0, 1, 2] and inverse.tolist() == [0, 1, 2]
    first, inverse = distinct_rows(torch.zeros(0, dtype=torch.long))
    assert first.numel() == 0 and inverse.numel() == 0


def test_pair_keys_tell_videos_apart():
    keys = pair_keys(torch.tensor([[0, 1, 0], [0, 2, 2]]))
    assert keys[0] == keys[2] and keys[4] == keys[5]
    assert keys[0] != keys[3]  # caption 0 of two videos: different pairs
    assert len(set(keys.tolist())) == 4


@pytest.mark.parametrize("mask_padding", [False, True])
@pytest.mark.parametrize("use_packing", [True, False])
def test_scores_and_gradients_equal_embedding_every_pair(mask_padding, use_packing):
    batch = repeated_batch()
    video, text = batch["video"].flatten(0, 1), batch["text"].flatten(0, 1)
    ids = pair_keys(batch["caption"])
    assert torch.unique(ids).numel() < ids.numel()  # the batch has repeats
    grads = {}
    for name, pair_ids in (("all", None), ("once", ids)):
        torch.manual_seed(0)
        net = Net(embd_dim=16, video_dim=10, we_dim=6, mask_padding=mask_padding)
        net.text_pooling.use_packing = use_packing
        scores = net(video, text, pair_ids)
        weights = torch.rand(scores.shape, generator=torch.Generator().manual_seed(1))
        (scores * weights).sum().backward()  # every entry's gradient differs
        grads[name] = (scores.detach(), {n: p.grad for n, p in net.named_parameters()})
    torch.testing.assert_close(grads["once"][0], grads["all"][0], **TOL)
    for name, grad in grads["all"][1].items():
        if grad is not None:
            torch.testing.assert_close(grads["once"][1][name], grad, **TOL, msg=name)


def test_bench_batches_repeat_pairs_as_training_draws_them():
    sizes = {
        "videos_per_batch": 4,
        "pairs_per_video": 64,
        "captions_per_video": 112,
        "video_dim": 8,
        "max_words": 20,
        "we_dim": 6,
        "mean_words": 4.0,
    }
    batch = _batch(sizes, torch.Generator().manual_seed(0))
    first, inverse = distinct_rows(pair_keys(batch["caption"]))
    # 64 draws from 112: 112 (1 - (111/112)^64) / 64 = 76% distinct expected.
    assert 0.68 < first.numel() / 256 < 0.84
    video = batch["video"].flatten(0, 1)
    assert torch.equal(video[first][inverse], video)  # same id, same clip
    batch = _batch({**sizes, "captions_per_video": 0}, torch.Generator().manual_seed(0))
    assert torch.unique(pair_keys(batch["caption"])).numel() == 256


def test_train_pairs_carry_caption_indices_and_build_each_pair_once(data, monkeypatch):
    captions = load_captions(data["captions"])
    store = FeatureStore(data["features_2d"], data["features_3d"])
    maker = PairMaker(captions, store, WordVectors.load(data["word2vec"]), PairOptions(max_words=6))
    dataset = TrainPairs(maker, read_video_list(data["train_videos"]), pairs_per_video=12)
    built = []
    pairs = maker.pairs
    monkeypatch.setattr(maker, "pairs", lambda vid, idx: built.append(list(idx)) or pairs(vid, idx))
    item = dataset[0]
    picks = item["caption"].numpy()
    assert item["caption"].dtype == torch.int64 and picks.shape == (12,)
    assert len(np.unique(picks)) < 12  # a few captions per video: repeats
    assert built == [sorted(set(picks.tolist()))]  # each drawn caption built once
    video, text = pairs(dataset.video_ids[0], picks)  # every pick built on its own
    assert torch.equal(item["video"], torch.from_numpy(video))
    assert torch.equal(item["text"], torch.from_numpy(text))
