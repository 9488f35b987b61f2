"""Sentence encoder (word vectors -> per-word MLP -> max over words) and its tokenizer."""

from __future__ import annotations

import collections
import os
import re
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from extras.runtime.inputs import load_keyed_vectors, load_word_array
from y8m.errors import UsageError
from y8m.fileio import atomic_path

_WORD_RE = re.compile(r"[\w']+")


class SentenceEmbedding(nn.Module):
    """Bag-of-words sentence encoder of MIL-NCE (thesis Table 6.1, right).

    word ids -> Embedding (`word_embd`) -> Linear + ReLU (`fc1`) -> max over words -> Linear
    (`fc2`). Id 0 is padding. By default padding is not masked: its row of the word table goes
    through `fc1` and takes part in the max, exactly as the released checkpoint was trained.
    With `mask_padding=True` padded positions are left out of the max (an all-padding sentence
    then pools to zeros).

    Args:
        num_embeddings: rows of the word table (dictionary size + 1).
        word_embedding_dim: word vector size.
        hidden_dim: width of `fc1`.
        embedding_dim: output size.
        mask_padding: leave padding tokens out of the max.

    Call arguments:
        token_ids: int64 [N, L].

    Returns:
        `{"text_embedding": float [N, embedding_dim]}` (not normalised).
    """

    def __init__(
        self,
        num_embeddings: int = 66250,
        word_embedding_dim: int = 300,
        hidden_dim: int = 2048,
        embedding_dim: int = 512,
        mask_padding: bool = False,
    ):
        super().__init__()
        self.mask_padding = mask_padding
        self.word_embd = nn.Embedding(num_embeddings, word_embedding_dim)
        self.fc1 = nn.Linear(word_embedding_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, embedding_dim)

    def forward(self, token_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        hidden = torch.relu(self.fc1(self.word_embd(token_ids)))  # (N, L, H)
        if self.mask_padding:
            # Hidden units are >= 0 after the ReLU, so zeroing padded positions leaves the max
            # over real words unchanged and gives 0 for a sentence with no known word.
            hidden = hidden * (token_ids != 0).unsqueeze(-1).to(hidden.dtype)
        pooled = hidden.max(dim=1).values  # (N, H)
        return {"text_embedding": self.fc2(pooled)}


def split_words(sentence: str, lowercase: bool = False) -> list[str]:
    """Words of `sentence` by the regex [\\w']+ (the released tokenisation)."""
    text = str(sentence)
    return _WORD_RE.findall(text.lower() if lowercase else text)


class Tokenizer:
    """Maps sentences to fixed-length int64 word ids with a dictionary (id = index + 1).

    Unknown words are dropped; sentences are truncated or zero-padded to `max_words`.

    Args:
        words: the dictionary, in id order (words[0] has id 1).
        max_words: output length L.
        lowercase: lower-case sentences before splitting (the S3D release does; the MIL-NCE
            training code does not).
    """

    def __init__(self, words: Sequence[str], max_words: int = 16, lowercase: bool = False):
        if max_words < 1:
            raise UsageError(f"max_words must be >= 1, got {max_words}")
        self.words = [str(w) for w in words]
        self.max_words = int(max_words)
        self.lowercase = bool(lowercase)
        self._ids = {w: i + 1 for i, w in enumerate(self.words)}

    @property
    def vocab_size(self) -> int:
        """Rows the word table needs: dictionary size + 1 (padding)."""
        return len(self.words) + 1

    @classmethod
    def from_file(cls, path: str, max_words: int = 16, lowercase: bool = False) -> Tokenizer:
        """Reads a dictionary saved as a numpy array of words (`.npy`)."""
        return cls(load_dictionary(path), max_words=max_words, lowercase=lowercase)

    def ids(self, sentence: str) -> list[int]:
        """Dictionary ids of the known words of `sentence`, unpadded and untruncated."""
        return [self._ids[w] for w in split_words(sentence, self.lowercase) if w in self._ids]

    def encode(self, sentence: str, max_words: int | None = None) -> np.ndarray:
        """int64 [L] ids of one sentence, zero-padded (L = max_words)."""
        length = self.max_words if max_words is None else int(max_words)
        out = np.zeros(length, dtype=np.int64)
        ids = self.ids(sentence)[:length]
        out[: len(ids)] = ids
        return out

    def __call__(self, sentences: Iterable[str], max_words: int | None = None) -> torch.Tensor:
        """int64 [N, L] ids of several sentences."""
        rows = [self.encode(s, max_words) for s in sentences]
        length = self.max_words if max_words is None else int(max_words)
        if not rows:
            return torch.zeros((0, length), dtype=torch.int64)
        return torch.from_numpy(np.stack(rows))


def load_dictionary(path: str) -> list[str]:
    """Words of a dictionary file: a 1-d numpy array of strings saved with `np.save`.

    Raises:
        UsageError: a missing file, or one that is not an array of words (a pickle that
            would run code is refused, with how to convert a trusted one).
    """
    if not os.path.isfile(path):
        raise UsageError(
            f"dictionary {path!r} not found: build one with `y8m extras milnce dictionary`"
        )
    # The released dictionaries are object arrays, which numpy stores as a pickle: those are
    # read by an unpickler that builds arrays of strings and nothing else, so none runs code.
    return load_word_array(path, "dictionary")


def build_dictionary(
    sentences: Iterable[str],
    min_count: int = 1,
    max_size: int | None = None,
    lowercase: bool = False,
) -> list[str]:
    """Dictionary of a caption corpus: words by decreasing count (ties alphabetical).

    Args:
        sentences: the corpus.
        min_count: keep words seen at least this often.
        max_size: keep at most this many words (the released table holds 66249).
        lowercase: lower-case before counting (use the same setting in the tokenizer).

    Returns:
        The words in id order (id = position + 1).
    """
    counts: collections.Counter[str] = collections.Counter()
    for sentence in sentences:
        counts.update(split_words(sentence, lowercase))
    words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    return words[:max_size] if max_size else words


def save_dictionary(words: Sequence[str], path: str) -> None:
    """Writes a dictionary as a numpy unicode array (loads without pickle)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, np.asarray(list(words), dtype=str))


def load_word_vectors(path: str, words: Sequence[str], dim: int) -> tuple[torch.Tensor, int]:
    """Rows of a word table initialised from word2vec vectors.

    Args:
        path: a word2vec file readable by gensim (`.bin` binary, else text format), a gensim
            `KeyedVectors` file (`.kv`, read without running its pickle), or a torch tensor
            file (`.pth`/`.pt`) of shape [len(words) + 1, dim] already aligned with the
            dictionary.
        words: the dictionary in id order.
        dim: expected vector size.

    Returns:
        (table float32 [len(words) + 1, dim] with row 0 = zeros and unknown words = zeros,
        number of dictionary words found).
    """
    if not os.path.isfile(path):
        raise UsageError(f"word vectors {path!r} not found")
    if path.endswith((".pth", ".pt")):
        table = torch.load(path, map_location="cpu", weights_only=True)
        if tuple(table.shape) != (len(words) + 1, dim):
            raise UsageError(
                f"{path!r} has shape {tuple(table.shape)}, expected {(len(words) + 1, dim)}"
            )
        return table.float(), len(words)
    from gensim.models import KeyedVectors

    if path.endswith(".kv"):
        vectors = load_keyed_vectors(path)
    else:
        vectors = KeyedVectors.load_word2vec_format(path, binary=path.endswith(".bin"))
    if vectors.vector_size != dim:
        raise UsageError(f"{path!r} has {vectors.vector_size}-d vectors, the model wants {dim}")
    table = torch.zeros(len(words) + 1, dim)
    found = 0
    for i, word in enumerate(words):
        if word in vectors.key_to_index:
            table[i + 1] = torch.tensor(np.asarray(vectors[word]), dtype=torch.float32)
            found += 1
    return table, found
