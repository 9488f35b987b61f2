"""Tokenizer, dictionaries and the sentence encoder."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from extras.milnce.text import (  # noqa: E402
    SentenceEmbedding,
    Tokenizer,
    build_dictionary,
    load_dictionary,
    load_word_vectors,
    save_dictionary,
    split_words,
)
from y8m.errors import UsageError  # noqa: E402


def test_split_words_keeps_apostrophes():
    assert split_words("Cut the tomato's skin, then-slice!") == [
        "Cut",
        "the",
        "tomato's",
        "skin",
        "then",
        "slice",
    ]
    assert split_words("Cut IT", lowercase=True) == ["cut", "it"]


def test_tokenizer_ids_padding_truncation_and_oov():
    tok = Tokenizer(["cut", "the", "tomato"], max_words=4)
    assert tok.vocab_size == 4
    np.testing.assert_array_equal(tok.encode("cut the big tomato"), [1, 2, 3, 0])
    np.testing.assert_array_equal(tok.encode("the the the the the cut"), [2, 2, 2, 2])
    np.testing.assert_array_equal(tok.encode("nothing known"), [0, 0, 0, 0])
    # Case matters unless asked otherwise, as in the MIL-NCE training code.
    np.testing.assert_array_equal(tok.encode("Cut"), [0, 0, 0, 0])
    lower = Tokenizer(["cut"], max_words=2, lowercase=True)
    np.testing.assert_array_equal(lower.encode("CUT"), [1, 0])
    batch = tok(["cut", "tomato the"], max_words=3)
    assert batch.dtype == torch.int64
    assert batch.tolist() == [[1, 0, 0], [3, 2, 0]]
    with pytest.raises(UsageError):
        Tokenizer(["a"], max_words=0)


def test_build_save_load_dictionary(tmp_path):
    words = build_dictionary(["b a b", "c b a", "d"], min_count=1)
    assert words == ["b", "a", "c", "d"]  # by count, ties alphabetical
    assert build_dictionary(["b a b", "c b a", "d"], min_count=2) == ["b", "a"]
    assert build_dictionary(["B b"], lowercase=True) == ["b"]
    assert build_dictionary(["x y z"], max_size=2) == ["x", "y"]
    path = str(tmp_path / "dict.npy")
    save_dictionary(words, path)
    assert load_dictionary(path) == words
    # The released dictionaries are pickled object arrays.
    legacy = tmp_path / "legacy.npy"
    np.save(legacy, np.array(["x", "y"], dtype=object), allow_pickle=True)
    assert load_dictionary(str(legacy)) == ["x", "y"]
    with pytest.raises(UsageError):
        load_dictionary(str(tmp_path / "missing.npy"))


def _reference_sentence(module, ids, mask):
    """Loop implementation of embed -> ReLU(fc1) -> max over words -> fc2."""
    rows = []
    for sentence in ids:
        hidden = []
        for token in sentence.tolist():
            if mask and token == 0:
                continue
            vector = module.word_embd.weight[token]
            hidden.append(torch.relu(module.fc1.weight @ vector + module.fc1.bias))
        pooled = (
            torch.stack(hidden).max(dim=0).values
            if hidden
            else torch.zeros(module.fc1.out_features)
        )
        rows.append(module.fc2.weight @ pooled + module.fc2.bias)
    return torch.stack(rows)


@pytest.mark.parametrize("mask", [False, True])
def test_sentence_embedding_matches_formula(mask):
    torch.manual_seed(0)
    module = SentenceEmbedding(
        num_embeddings=7, word_embedding_dim=5, hidden_dim=6, embedding_dim=3, mask_padding=mask
    )
    ids = torch.tensor([[1, 2, 0, 0], [3, 3, 6, 5], [0, 0, 0, 0]])
    out = module(ids)["text_embedding"]
    assert out.shape == (3, 3)
    with torch.no_grad():
        torch.testing.assert_close(out, _reference_sentence(module, ids, mask))


def test_padding_row_matters_unless_masked():
    torch.manual_seed(0)
    module = SentenceEmbedding(
        num_embeddings=4, word_embedding_dim=3, hidden_dim=8, embedding_dim=2
    )
    short, padded = torch.tensor([[1, 2]]), torch.tensor([[1, 2, 0, 0]])
    with torch.no_grad():
        module.word_embd.weight[0] = 5.0  # a padding row that wins the max
        assert not torch.allclose(module(short)["text_embedding"], module(padded)["text_embedding"])
        module.mask_padding = True
        torch.testing.assert_close(
            module(short)["text_embedding"], module(padded)["text_embedding"]
        )


def test_word_vectors_from_word2vec_text(tmp_path):
    path = tmp_path / "vectors.txt"
    path.write_text("2 3\ncut 1 2 3\nslice 4 5 6\n")
    table, found = load_word_vectors(str(path), ["slice", "unknown", "cut"], 3)
    assert found == 2
    np.testing.assert_allclose(table.numpy(), [[0, 0, 0], [4, 5, 6], [0, 0, 0], [1, 2, 3]])
    with pytest.raises(UsageError):
        load_word_vectors(str(path), ["cut"], 4)
