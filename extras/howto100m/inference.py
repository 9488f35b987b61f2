"""Embedding clip-caption pairs, sentences and clip vectors with a trained Net."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from extras.howto100m.data import EvalPairs
from extras.howto100m.model import Net
from extras.howto100m.text import WordVectors


def embed_pairs(
    net: Net,
    dataset: EvalPairs,
    batch_size: int = 512,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Embeds every pair of `dataset` in order.

    Returns:
        (text float32 [N, E], video float32 [N, E]), unit rows, row i = pair i.
    """
    net = net.to(device).eval()
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    texts, videos = [], []
    with torch.no_grad():
        for batch in tqdm(loader, desc="embed", unit="batch", disable=not progress):
            texts.append(net.embed_text(batch["text"].to(device)).cpu())
            videos.append(net.embed_video(batch["video"].to(device)).cpu())
    return torch.cat(texts).numpy(), torch.cat(videos).numpy()


def embed_sentences(
    net: Net,
    words: WordVectors,
    sentences: Sequence[str],
    max_words: int = 20,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """[N] sentences -> [N, E] unit embeddings on `device`."""
    vectors = torch.from_numpy(words.encode(list(sentences), max_words)).to(device)
    with torch.no_grad():
        return net.to(device).eval().embed_text(vectors)


def embed_clips(
    net: Net, clips: np.ndarray, device: str | torch.device = "cpu", batch_size: int = 4096
) -> torch.Tensor:
    """[N, video_dim] clip vectors -> [N, E] unit embeddings on `device`."""
    net = net.to(device).eval()
    out = []
    with torch.no_grad():
        for lo in range(0, len(clips), batch_size):
            out.append(net.embed_video(torch.from_numpy(clips[lo : lo + batch_size]).to(device)))
    return torch.cat(out) if out else torch.zeros(0, net.embd_dim, device=device)
