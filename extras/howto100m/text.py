"""Caption text to word-vector sequences: tokenise, drop stop-words, look up word2vec."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Sequence

import numpy as np

from extras.runtime.inputs import load_keyed_vectors
from y8m.errors import UsageError

_WORD = re.compile(r"[\w']+")
_SOUND_TAG = re.compile(r"\[[^\]]*\]")  # YouTube's [Music], [Applause]: not narration

# Spoken fillers that ASR transcribes but no clip shows (the reference's list adds these too),
# and the stems of contractions ("don't" -> "don") that the Glasgow list lacks.
ASR_FILLERS = frozenset(
    "um umm uh uhm hmm mm ah oh yeah yep okay ok gonna wanna gotta alright "
    "don didn doesn isn wasn aren won let".split()
)


@functools.lru_cache(maxsize=1)
def stop_words() -> frozenset[str]:
    """The Glasgow English stop-word list (as shipped by scikit-learn) plus ASR fillers."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS) | ASR_FILLERS


def tokenize(text: str, remove_stop_words: bool = True) -> list[str]:
    """Splits a caption into words (regex `[\\w']+`, case kept for GoogleNews vectors).

    Bracketed sound tags are dropped and, as in thesis 5.5.1, common English stop-words
    (compared case-insensitively, contractions by their stem) are removed.
    """
    words = _WORD.findall(_SOUND_TAG.sub(" ", str(text)))
    if remove_stop_words:
        stops = stop_words()
        # A contraction goes with its stem ("we'll", "it's"); a possessive noun stays.
        words = [w for w in words if w.lower().split("'")[0] not in stops]
    return words


class WordVectors:
    """A word2vec table (gensim `KeyedVectors`) that turns sentences into padded arrays.

    Args:
        vectors: a loaded `gensim.models.KeyedVectors`.
        remove_stop_words: drop stop-words before the look-up.

    Out-of-vocabulary words are dropped; a word missing as written is tried lower-cased.
    """

    def __init__(self, vectors, remove_stop_words: bool = True):
        self.vectors = vectors
        self.remove_stop_words = remove_stop_words

    @classmethod
    def load(cls, path: str, limit: int = 0, remove_stop_words: bool = True) -> WordVectors:
        """Loads a word2vec file: binary (`.bin`, `.bin.gz`) or text format, or a gensim `.kv`.

        Args:
            path: the file, e.g. GoogleNews-vectors-negative300.bin.
            limit: keep only the first `limit` words (0 = all); saves memory on big tables.
            remove_stop_words: see the class docstring.

        Raises:
            UsageError: missing or unreadable file.
        """
        from gensim.models import KeyedVectors

        if not path or not os.path.isfile(path):
            raise UsageError(
                f"word2vec file {path!r} not found; pass --word2vec=GoogleNews-vectors-negative300.bin"
            )
        try:
            if path.endswith(".kv"):
                # Memory-mapped: torchrun processes on one host share one copy of the table.
                # Read without running its pickle (`load_keyed_vectors`).
                kv = load_keyed_vectors(path, mmap="r")
            else:
                binary = ".bin" in os.path.basename(path)
                kv = KeyedVectors.load_word2vec_format(path, binary=binary, limit=limit or None)
        except (ValueError, EOFError, UnicodeDecodeError, OSError) as err:
            raise UsageError(f"cannot read word2vec file {path}: {err}") from err
        return cls(kv, remove_stop_words=remove_stop_words)

    @property
    def dim(self) -> int:
        return int(self.vectors.vector_size)

    def indices(self, text: str) -> list[int]:
        """Row indices in the table of the caption's kept words, in order."""
        index = self.vectors.key_to_index
        rows = []
        for word in tokenize(text, self.remove_stop_words):
            row = index.get(word)
            if row is None:
                row = index.get(word.lower())
            if row is not None:
                rows.append(row)
        return rows

    def encode(self, texts: Sequence[str], max_words: int = 20) -> np.ndarray:
        """Sentences to zero-padded word vectors.

        Args:
            texts: N captions.
            max_words: W; longer captions are truncated.

        Returns:
            float32 [N, W, D]; rows past a caption's last kept word are zero.
        """
        out = np.zeros((len(texts), max_words, self.dim), dtype=np.float32)
        table = self.vectors.vectors
        for i, text in enumerate(texts):
            rows = self.indices(text)[:max_words]
            if rows:
                out[i, : len(rows)] = table[rows]
        return out
