"""Tiny generated HowTo100M-style data: caption.json, 2-D/3-D features, a trained word2vec.

Each caption names two concept words among stop-words; during its interval the video's
feature rows carry the sum of the two concepts' patterns on top of a per-video background,
so the text-video pairing is learnable and same-video clips share a distractor.
"""

from __future__ import annotations

import itertools
import json
import os

import numpy as np

CONCEPTS = [
    "apple", "bread", "carrot", "dough", "engine", "fabric",
    "garlic", "hammer", "icing", "jacket", "knife", "lemon",
]  # fmt: skip
FILLER = ["the", "and", "we", "then", "um", "it"]
DIM_2D = 8
DIM_3D = 6
CAPTION_SECONDS = 6.0  # each caption lasts 5 s and starts every 6 s


def train_word2vec(path: str, binary: bool = True, vector_size: int = 16, seed: int = 0) -> str:
    """Trains gensim Word2Vec on generated sentences and saves it in word2vec format."""
    from gensim.models import Word2Vec

    rng = np.random.default_rng(seed)
    vocab = CONCEPTS + FILLER
    sentences = [list(rng.choice(vocab, size=6)) for _ in range(300)]
    model = Word2Vec(
        sentences, vector_size=vector_size, min_count=1, window=2, epochs=3, seed=seed, workers=1
    )
    model.wv.save_word2vec_format(path, binary=binary)
    return path


def concept_patterns(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative peaky patterns [C, D] per concept for each stream."""
    rng = np.random.default_rng(seed + 1000)
    return (
        rng.random((len(CONCEPTS), DIM_2D)) ** 3,
        rng.random((len(CONCEPTS), DIM_3D)) ** 3,
    )


def write_videos(
    root: str,
    video_ids: list[str],
    concept_pairs: list[list[tuple[int, int]]],
    seed: int = 0,
    noise: float = 0.05,
    captions: dict | None = None,
) -> dict:
    """Writes features for videos whose i-th caption shows `concept_pairs[v][i]`.

    Returns:
        The caption.json mapping (merged into `captions` if given).
    """
    rng = np.random.default_rng(seed)
    p2, p3 = concept_patterns()
    os.makedirs(os.path.join(root, "f2d"), exist_ok=True)
    os.makedirs(os.path.join(root, "f3d"), exist_ok=True)
    captions = {} if captions is None else captions
    for vid, pairs in zip(video_ids, concept_pairs):
        seconds = CAPTION_SECONDS * len(pairs)
        rows2, rows3 = int(seconds * 1.0), int(seconds * 1.5)
        f2 = 0.3 * rng.random(DIM_2D) + noise * rng.random((rows2, DIM_2D))
        f3 = 0.3 * rng.random(DIM_3D) + noise * rng.random((rows3, DIM_3D))
        entry = {"start": [], "end": [], "text": []}
        for i, (a, b) in enumerate(pairs):
            start, end = CAPTION_SECONDS * i, CAPTION_SECONDS * i + 5.0
            f2[int(start) : int(end)] += p2[a] + p2[b]
            f3[int(start * 1.5) : int(end * 1.5)] += p3[a] + p3[b]
            filler = rng.choice(FILLER, size=2)
            entry["start"].append(start)
            entry["end"].append(end)
            entry["text"].append(f"{filler[0]} {CONCEPTS[a]} {filler[1]} {CONCEPTS[b]}")
        np.save(os.path.join(root, "f2d", f"{vid}.npy"), f2.astype(np.float32))
        np.save(os.path.join(root, "f3d", f"{vid}.npy"), f3.astype(np.float32))
        captions[vid] = entry
    return captions


def make_dataset(
    root: str, num_train: int = 24, num_test: int = 10, per_video: int = 6, seed: int = 0
):
    """Train and test splits in one caption.json; test pairs use distinct concept pairs.

    Returns:
        dict of paths: captions, features_2d, features_3d, word2vec, train_videos, test_videos.
    """
    rng = np.random.default_rng(seed)
    combos = list(itertools.combinations(range(len(CONCEPTS)), 2))
    train_ids = [f"train{i:03d}" for i in range(num_train)]
    test_ids = [f"test{i:03d}" for i in range(num_test)]
    train_pairs = [[combos[j] for j in rng.integers(0, len(combos), per_video)] for _ in train_ids]
    order = rng.permutation(len(combos))[: num_test * per_video]
    test_pairs = [
        [combos[j] for j in order[i * per_video : (i + 1) * per_video]] for i in range(num_test)
    ]
    captions = write_videos(root, train_ids, train_pairs, seed=seed)
    write_videos(root, test_ids, test_pairs, seed=seed + 1, captions=captions)
    paths = {
        "captions": os.path.join(root, "caption.json"),
        "test_captions": os.path.join(root, "test_caption.json"),
        "features_2d": os.path.join(root, "f2d"),
        "features_3d": os.path.join(root, "f3d"),
        "word2vec": train_word2vec(os.path.join(root, "w2v.bin")),
        "train_videos": os.path.join(root, "train.txt"),
        "test_videos": os.path.join(root, "test.txt"),
    }
    with open(paths["captions"], "w") as f:
        json.dump(captions, f)
    with open(paths["test_captions"], "w") as f:
        json.dump({v: captions[v] for v in test_ids}, f)
    with open(paths["train_videos"], "w") as f:
        f.write("\n".join(train_ids) + "\n")
    with open(paths["test_videos"], "w") as f:
        f.write("\n".join(test_ids) + "\n")
    return paths


def train_config(data: dict, output_dir, **overrides):
    """A TrainConfig for the generated data: tiny model, CPU, no loader workers or progress bar."""
    from extras.howto100m.train import TrainConfig

    base = dict(
        captions=data["captions"],
        features_2d=data["features_2d"],
        features_3d=data["features_3d"],
        word2vec=data["word2vec"],
        output_dir=str(output_dir),
        videos=data["train_videos"],
        epochs=2,
        videos_per_batch=8,
        pairs_per_video=4,
        embd_dim=32,
        lr=3e-3,
        lr_decay=1.0,
        num_workers=0,
        device="cpu",
        progress=False,
    )
    base.update(overrides)
    return TrainConfig(**base)
