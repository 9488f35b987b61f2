"""Untrusted inputs: pickles that would run code, ids that leave their folder, caption times."""

import os
import pickle

import numpy as np
import pytest

from extras.runtime.inputs import (
    check_times,
    child_path,
    load_keyed_vectors,
    load_word_array,
    worker_error,
)
from y8m.errors import UsageError


class _Payload:
    """Unpickling this writes MARKER: what a hostile pickle would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_object_dictionary_with_a_payload_is_refused_and_does_not_run(tmp_path):
    marker = tmp_path / "ran"
    words = np.empty(2, dtype=object)
    words[:] = ["cut", _Payload(marker)]
    np.save(tmp_path / "dict.npy", words, allow_pickle=True)
    with pytest.raises(UsageError, match="not plain data.*could run code.*astype\\(str\\)"):
        load_word_array(str(tmp_path / "dict.npy"))
    assert not marker.exists()


def test_plain_and_object_word_arrays_load(tmp_path):
    np.save(tmp_path / "plain.npy", np.array(["a", "bb"]))
    released = np.array(["a", "bb"], dtype=object)  # the released s3d_dict.npy layout
    np.save(tmp_path / "object.npy", released, allow_pickle=True)
    assert load_word_array(str(tmp_path / "plain.npy")) == ["a", "bb"]
    assert load_word_array(str(tmp_path / "object.npy")) == ["a", "bb"]
    np.save(tmp_path / "numbers.npy", np.array([1, 2], dtype=object), allow_pickle=True)
    with pytest.raises(UsageError, match="not words"):
        load_word_array(str(tmp_path / "numbers.npy"))


def test_kv_file_with_a_payload_is_refused_and_does_not_run(tmp_path):
    marker = tmp_path / "ran"
    with open(tmp_path / "w.kv", "wb") as f:
        pickle.dump({"index_to_key": ["a"], "vectors": _Payload(marker)}, f)
    with pytest.raises(UsageError, match="not plain data.*save_word2vec_format"):
        load_keyed_vectors(str(tmp_path / "w.kv"))
    assert not marker.exists()


def test_kv_file_loads_with_separate_vectors_memory_mapped(tmp_path):
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vector_size=3)
    kv.add_vectors(["a", "b"], np.arange(6, dtype=np.float32).reshape(2, 3))
    kv.save(str(tmp_path / "w.kv"), sep_limit=0)  # vectors in w.kv.vectors.npy
    assert os.path.exists(tmp_path / "w.kv.vectors.npy")
    loaded = load_keyed_vectors(str(tmp_path / "w.kv"), mmap="r")
    assert isinstance(loaded.vectors, np.memmap)
    assert np.array_equal(loaded["b"], [3, 4, 5]) and loaded.key_to_index == {"a": 0, "b": 1}


@pytest.mark.parametrize("name", ["../x", "a/../../x", "/etc/passwd", "~/x", ""])
def test_ids_that_leave_their_folder_are_refused(name):
    with pytest.raises(UsageError, match="would point outside") as info:
        child_path("features", name, ".npy", "video id")
    assert repr(name) in str(info.value)


def test_ids_inside_their_folder_pass():
    assert child_path("root", "sub/v1", ".npy") == os.path.join("root", "sub/v1.npy")
    assert child_path("", "v..1") == "v..1"  # dots inside a name are fine


@pytest.mark.parametrize(
    "start,end,reason",
    [
        ([0, 5], [4, 3], "end is before the start"),
        ([0, -1], [4, 3], "negative start"),
        ([0, float("nan")], [4, 3], "not a finite number"),
    ],
)
def test_bad_caption_times_name_the_place(start, end, reason):
    with pytest.raises(UsageError, match=f"f.csv, line 3: .*{reason}"):
        check_times(start, end, "f.csv", line_offset=2)
    with pytest.raises(UsageError, match=f"caption 1: .*{reason}"):
        check_times(start, end, "f.json")


def test_worker_error_keeps_only_the_message():
    wrapped = UsageError(
        "Caught UsageError in DataLoader worker process 0.\nOriginal Traceback (most recent "
        'call last):\n  File "x.py", line 1\ny8m.errors.UsageError: bad.csv, line 2: oops\n'
    )
    assert worker_error(wrapped) == "bad.csv, line 2: oops"
    assert worker_error(UsageError("plain")) == "plain"
