"""The flag checks every command uses: one line naming the flag."""

import pytest

from y8m.errors import UsageError, choice, integer, number


@pytest.mark.parametrize("value", ["abc", None, True, 1.5, float("nan"), "1e999", [1]])
def test_integer_refuses_what_is_not_one(value):
    with pytest.raises(UsageError, match="--batch_size must be an integer"):
        integer("batch_size", value)


def test_integer_bounds_and_forms():
    assert integer("n", "12") == 12 and integer("n", 1e3) == 1000 and integer("n", 3, 1) == 3
    with pytest.raises(UsageError, match="--top_k must be at least 1, got 0"):
        integer("top_k", 0, minimum=1)
    with pytest.raises(UsageError, match="at most 10"):
        integer("k", 11, maximum=10)


def test_number_and_choice():
    assert number("lr", "0.5", above=0) == 0.5
    with pytest.raises(UsageError, match="--lr must be greater than 0"):
        number("lr", 0, above=0)
    with pytest.raises(UsageError, match="--lr must be a number"):
        number("lr", "inf")
    assert choice("level", "frame", ("frame", "video")) == "frame"
    with pytest.raises(UsageError, match="--level must be one of frame, video, got 'x'"):
        choice("level", "x", ("frame", "video"))
