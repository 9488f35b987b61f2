"""Small builders shared by the submission tests."""

import numpy as np


def random_ids(rng: np.random.Generator, n: int) -> list[str]:
    """n distinct 4-character ids like the 2018 release's."""
    alphabet = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))
    ids: set[str] = set()
    while len(ids) < n:
        ids.add("".join(rng.choice(alphabet, 4)))
    return sorted(ids)


def distinct_scores(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Distinct scores with at most 6 decimals, so "%f" and "%g" text keeps their order exactly."""
    size = int(np.prod(shape))
    return (rng.choice(10**6, size, replace=False) / 1e6).reshape(shape)


def write_text(path, text: str) -> str:
    path.write_text(text)
    return str(path)
