"""Clip-caption pairs from caption.json + features + word2vec, and the v x k batch sampler.

Training draws v videos per batch and k caption indices per video, uniformly with
replacement (thesis 5.4.1); each caption is grown over its neighbours to `min_time` seconds.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler, RandomSampler

from extras.howto100m.captions import VideoCaptions
from extras.howto100m.features import FeatureStore, clip_vector, grow_window
from extras.howto100m.text import WordVectors, tokenize
from y8m.errors import UsageError


@dataclasses.dataclass(frozen=True)
class PairOptions:
    """How a caption becomes a (clip vector, word vectors) pair; saved in checkpoints."""

    min_time: float = 5.0
    min_words: int = 0
    max_words: int = 20


class PairMaker:
    """Turns (video, caption index) into a clip vector and padded word vectors.

    Args:
        captions: caption.json contents.
        store: the feature files.
        words: the word2vec table.
        options: window and text options.
    """

    def __init__(
        self,
        captions: dict[str, VideoCaptions],
        store: FeatureStore,
        words: WordVectors,
        options: PairOptions = PairOptions(),
    ):
        self.captions = captions
        self.store = store
        self.words = words
        self.options = options
        self._num_words: dict[str, list[int]] = {}

    def _words_per_caption(self, video_id: str) -> list[int]:
        if video_id not in self._num_words:
            texts = self.captions[video_id].text
            remove = self.words.remove_stop_words
            self._num_words[video_id] = [len(tokenize(t, remove)) for t in texts]
        return self._num_words[video_id]

    def window(self, video_id: str, index: int) -> tuple[float, float, str]:
        """The clip interval and text of caption `index` once grown to the minimum length."""
        caps = self.captions[video_id]
        num_words = self._words_per_caption(video_id) if self.options.min_words else None
        first, last = grow_window(
            caps.start, caps.end, index, self.options.min_time, num_words, self.options.min_words
        )
        start = float(caps.start[first : last + 1].min())
        end = float(caps.end[first : last + 1].max())
        return start, end, " ".join(caps.text[first : last + 1])

    def pairs(self, video_id: str, indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Pairs of one video.

        Returns:
            video float32 [n, video_dim], text float32 [n, max_words, we_dim].
        """
        streams = self.store.load(video_id)
        clips, texts = [], []
        for index in indices:
            start, end, text = self.window(video_id, int(index))
            clips.append(clip_vector(streams, start, end))
            texts.append(text)
        return np.stack(clips), self.words.encode(texts, self.options.max_words)


def usable_videos(
    captions: dict[str, VideoCaptions], store: FeatureStore, video_ids: Sequence[str] | None = None
) -> list[str]:
    """Videos with captions and feature files, in a fixed order.

    Args:
        video_ids: restrict to these (a split); each must have captions and features.

    Raises:
        UsageError: a listed video lacks captions or features, or no video is usable.
    """
    if video_ids is None:
        found = sorted(v for v in captions if store.has(v))
    else:
        missing = [v for v in video_ids if v not in captions or not store.has(v)]
        if missing:
            raise UsageError(
                f"{len(missing)} listed videos lack captions or feature files, e.g. {missing[:3]}"
            )
        found = list(video_ids)
    if not found:
        raise UsageError("no video has both captions and feature files; check the folders")
    return found


class TrainPairs(Dataset):
    """One item per video: k pairs drawn uniformly with replacement from its captions.

    The draw depends only on (seed, epoch, item index), so runs are reproducible with any
    number of loader workers and resume at the same place.

    Args:
        maker: the pair builder.
        video_ids: the training videos.
        pairs_per_video: k.
        seed: random seed.

    Items: {"video": float32 [k, video_dim], "text": float32 [k, W, we_dim], "caption": int64
    [k]}: the caption index of each pair, so that a caption drawn twice is known as a repeat
    (built once here, embedded once by the training step).
    """

    def __init__(
        self, maker: PairMaker, video_ids: Sequence[str], pairs_per_video: int, seed: int = 1
    ):
        self.maker = maker
        self.video_ids = list(video_ids)
        self.pairs_per_video = pairs_per_video
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.video_ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        video_id = self.video_ids[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        picks = rng.integers(0, len(self.maker.captions[video_id]), self.pairs_per_video)
        distinct, repeat = np.unique(picks, return_inverse=True)
        video, text = self.maker.pairs(video_id, distinct)
        return {
            "video": torch.from_numpy(video[repeat]),
            "text": torch.from_numpy(text[repeat]),
            "caption": torch.from_numpy(picks.astype(np.int64)),
        }


class EvalPairs(Dataset):
    """Every caption of every listed video as one pair, in order (for eval and embed).

    Items: {"video": float32 [video_dim], "text": float32 [W, we_dim], "index": int}.
    """

    def __init__(self, maker: PairMaker, video_ids: Sequence[str]):
        self.maker = maker
        self.items = [(vid, i) for vid in video_ids for i in range(len(maker.captions[vid]))]

    def __len__(self) -> int:
        return len(self.items)

    def describe(self, index: int) -> tuple[str, float, float, str]:
        """(video id, clip start, clip end, text) of pair `index`."""
        video_id, caption = self.items[index]
        return (video_id, *self.maker.window(video_id, caption))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        video_id, caption = self.items[index]
        video, text = self.maker.pairs(video_id, [caption])
        return {
            "video": torch.from_numpy(video[0]),
            "text": torch.from_numpy(text[0]),
            "index": index,
        }


class _SkipBatches:
    """A batch sampler without its first `skip` batches (to resume inside an epoch)."""

    def __init__(self, batches: BatchSampler, skip: int):
        self.batches = batches
        self.skip = skip

    def __iter__(self):
        return itertools.islice(iter(self.batches), self.skip, None)

    def __len__(self) -> int:
        return max(len(self.batches) - self.skip, 0)


def train_loader(
    dataset: TrainPairs,
    videos_per_batch: int,
    epoch: int,
    seed: int = 1,
    skip_batches: int = 0,
    num_workers: int = 0,
    distributed: bool = False,
    pin_memory: bool = False,
) -> DataLoader:
    """Batches of v videos x k pairs: video [v, k, video_dim], text [v, k, W, we_dim].

    Under torchrun (`distributed`) a DistributedSampler gives each process its own share of
    the videos; otherwise a RandomSampler seeded by (seed, epoch) shuffles them. The last
    batch may hold fewer videos; the loss takes v from each batch.
    """
    dataset.set_epoch(epoch)
    if distributed:
        sampler = DistributedSampler(dataset, shuffle=True, seed=seed)
        sampler.set_epoch(epoch)
    else:
        generator = torch.Generator()
        generator.manual_seed(seed * 100_003 + epoch)
        sampler = RandomSampler(dataset, generator=generator)
    batches = BatchSampler(sampler, videos_per_batch, drop_last=False)
    return DataLoader(
        dataset,
        batch_sampler=_SkipBatches(batches, skip_batches),
        num_workers=num_workers,
        pin_memory=pin_memory,
    )


def batches_per_epoch(num_videos: int, videos_per_batch: int, world_size: int = 1) -> int:
    per_process = -(-num_videos // world_size)
    return -(-per_process // videos_per_batch)
