"""Reading files from users without trusting them: pickles, ids used in paths, caption times.

- `restricted_unpickle`: a pickle stream that may build only a short list of data classes
  (numpy arrays and dtypes, gensim's `KeyedVectors` as a plain record); any other global,
  which is how a pickle runs code, is refused. Used for numpy object arrays (the released
  MIL-NCE dictionary) and gensim `.kv` files, which are both pickles.
- `load_word_array`: a `.npy` of words, plain (no pickle) or an object array read as above.
- `load_keyed_vectors`: a gensim `.kv` file (and its `.vectors.npy`, memory-mapped) without
  running gensim's own unpickling.
- `child_path`: `<root>/<id><suffix>` for an id read from a file, refusing ids that would
  leave `root` (`../x`, absolute paths).
- `check_times`: caption start/end times, refusing NaN, negative and backwards spans.
- `worker_error`: the one-line message of a UsageError raised in a DataLoader worker.

Imports nothing heavy at module level.
"""

from __future__ import annotations

import io
import math
import os
import pickle
from collections.abc import Sequence

import numpy as np

from y8m.errors import UsageError

# Globals a data pickle of the formats below needs; nothing here runs code when called with
# attacker-chosen arguments (they build arrays, dtypes, scalars or plain containers).
_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("collections", "OrderedDict"),
}
_KEYED_VECTORS = ("gensim.models.keyedvectors", "KeyedVectors")


class _Record:
    """What a pickled gensim KeyedVectors becomes: its attributes, and no behaviour."""

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise pickle.UnpicklingError("KeyedVectors state is not a dict")
        self.__dict__.update(state)


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, allowed: set[tuple[str, str]], what: str):
        super().__init__(file, encoding="latin1")
        self.allowed = allowed
        self.what = what

    def find_class(self, module: str, name: str):
        if (module, name) == _KEYED_VECTORS and _KEYED_VECTORS in self.allowed:
            return _Record
        if (module, name) in self.allowed:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it calls {module}.{name}, which is not plain data")


def restricted_unpickle(file, what: str, hint: str, keyed_vectors: bool = False):
    """The object pickled in FILE (a binary file object), built from data classes only.

    Args:
        file: the pickle stream.
        what: the file, as the message names it.
        hint: how to convert a refused file to a plain format (for the message).
        keyed_vectors: also allow gensim's KeyedVectors (built as a plain record).

    Raises:
        UsageError: the pickle refers to any other class or function (it would run code).
    """
    allowed = set(_NUMPY_GLOBALS) | ({_KEYED_VECTORS} if keyed_vectors else set())
    try:
        return _Unpickler(file, allowed, what).load()
    except pickle.UnpicklingError as err:
        raise UsageError(
            f"{what} is a pickle that is not plain data ({err}): refused, since loading it "
            f"could run code; {hint}"
        ) from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as err:
        raise UsageError(f"{what} is not a readable pickle: {err}") from None


_WORDS_HINT = (
    'if you trust it, convert it once to a plain array: python -c "import numpy as np; '
    "np.save('words.npy', np.load('IN.npy', allow_pickle=True).astype(str))\""
)
_KV_HINT = (
    'if you trust it, convert it once to word2vec binary: python -c "from gensim.models import '
    "KeyedVectors as K; K.load('IN.kv').save_word2vec_format('OUT.bin', binary=True)\""
)


def load_word_array(path: str, what: str = "dictionary") -> list[str]:
    """Words of a 1-d `.npy` string array: a plain unicode array, or an object array of str
    (numpy pickles those; read with `restricted_unpickle`, so it cannot run code).

    Raises:
        UsageError: not a .npy, a pickle that is not an array of words, or any other content.
    """
    label = f"{what} {path!r}"
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                _, _, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                _, _, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy version {version}")
            if not dtype.hasobject:
                f.seek(0)
                array = np.load(f, allow_pickle=False)
            else:
                array = restricted_unpickle(io.BytesIO(f.read()), label, _WORDS_HINT)
    except UsageError:
        raise
    except OSError as err:
        raise UsageError(f"cannot read {label}: {err.strerror or err}") from None
    except ValueError as err:
        raise UsageError(f"{label} is not a .npy array of words: {err}") from None
    if not isinstance(array, np.ndarray):
        raise UsageError(f"{label} holds a {type(array).__name__}, not an array of words")
    words = array.reshape(-1).tolist()
    if not all(isinstance(w, str) for w in words):
        raise UsageError(f"{label} holds values that are not words (strings)")
    return words


def load_keyed_vectors(path: str, mmap: str | None = None):
    """A gensim `KeyedVectors` from a `.kv` file, without letting the pickle run code.

    The file is read with `restricted_unpickle`; the vectors are taken from it or from the
    `<path>.vectors.npy` beside it (plain .npy, memory-mapped with `mmap="r"`), and a new
    KeyedVectors is built from the words and vectors only.

    Raises:
        UsageError: unreadable file, refused pickle or a layout other than gensim 4's.
    """
    from gensim.models import KeyedVectors

    label = f"word vectors {path!r}"
    try:
        with open(path, "rb") as f:
            record = restricted_unpickle(f, label, _KV_HINT, keyed_vectors=True)
    except OSError as err:
        raise UsageError(f"cannot read {label}: {err.strerror or err}") from None
    state = getattr(record, "__dict__", None) if isinstance(record, _Record) else None
    if state is None or not isinstance(state.get("index_to_key"), list):
        raise UsageError(
            f"{label} is not a gensim 4 KeyedVectors file: re-save it with gensim 4 "
            "(KeyedVectors.load(...).save(...)) or use the word2vec .bin"
        )
    if state.get("__scipys") or state.get("__recursive_saveloads"):
        raise UsageError(f"{label} stores extra objects beside the vectors; only vectors load")
    vectors = state.get("vectors")
    if "vectors" in (state.get("__numpys") or []):
        try:
            vectors = np.load(f"{path}.vectors.npy", mmap_mode=mmap, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise UsageError(f"cannot read {path}.vectors.npy: {err}") from None
    words = state["index_to_key"]
    if (
        not isinstance(vectors, np.ndarray)
        or vectors.ndim != 2
        or len(vectors) != len(words)
        or not all(isinstance(w, str) for w in words)
    ):
        raise UsageError(f"{label}: its words and vectors do not match (not a KeyedVectors file)")
    kv = KeyedVectors(vector_size=int(vectors.shape[1]))
    kv.index_to_key = list(words)
    kv.key_to_index = {w: i for i, w in enumerate(words)}
    kv.vectors = vectors
    return kv


def child_path(root: str, name, suffix: str = "", what: str = "id") -> str:
    """`root/<name><suffix>`, for a NAME read from a file (a video id, a relative path).

    Raises:
        UsageError: NAME is absolute, empty, or leads outside ROOT (`..`), naming it.
    """
    text = str(name)
    parts = text.replace("\\", "/").split("/")
    if not text or os.path.isabs(text) or text.startswith("~") or ".." in parts:
        raise UsageError(
            f"{what} {text!r} would point outside {root or '.'!r}: ids and paths in data "
            "files must be relative and stay inside their folder"
        )
    return os.path.join(root, text + suffix)


def check_times(start: Sequence[float], end: Sequence[float], where: str, line_offset=None):
    """Caption times as float64 arrays, after checking every span.

    Args:
        start, end: the times (seconds).
        where: the file (and video) they come from, for the message.
        line_offset: if given, captions are reported as `line i + line_offset` of the file;
            otherwise as `caption i`.

    Raises:
        UsageError: a NaN or infinite time, a negative one, or an end before its start.
    """
    try:
        starts = np.asarray(start, dtype=np.float64).reshape(-1)
        ends = np.asarray(end, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise UsageError(f"{where}: caption times must be numbers ({err})") from None
    if starts.shape != ends.shape:
        raise UsageError(f"{where}: {len(starts)} start times but {len(ends)} end times")
    bad = ~np.isfinite(starts) | ~np.isfinite(ends) | (starts < 0) | (ends < starts)
    if bad.any():
        i = int(np.argmax(bad))
        place = f"line {i + line_offset}" if line_offset is not None else f"caption {i}"
        s, e = float(starts[i]), float(ends[i])
        if not (math.isfinite(s) and math.isfinite(e)):
            reason = "a time is not a finite number"
        elif s < 0:
            reason = "negative start time"
        else:
            reason = "the end is before the start"
        raise UsageError(f"{where}, {place}: {reason} (start {s}, end {e})")
    return starts, ends


def worker_error(err: Exception) -> str:
    """The user's message of a UsageError, without the traceback a DataLoader worker adds."""
    text = str(err)
    marker = "UsageError: "
    if "Original Traceback" in text and marker in text:
        return text.rsplit(marker, 1)[1].strip()
    return text


def batches(loader):
    """The batches of a DataLoader; a UsageError a worker raised (a bad caption file) comes
    out as its own one-line message instead of the worker's traceback."""
    iterator = iter(loader)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except UsageError as err:
            raise UsageError(worker_error(err)) from None
        yield batch


def check_loss(loss: float, step: int, kept: str | None, flag: str = "--lr") -> None:
    """Stops a run whose loss is NaN or infinite, saying which checkpoint is kept.

    Raises:
        UsageError: `loss became nan at step N; stopped without saving, the last good
            checkpoint (PATH) is kept: ...`.
    """
    if not math.isfinite(loss):
        raise UsageError(
            f"loss became {loss} at step {step}; stopped without saving, the last good "
            f"checkpoint ({kept or 'none'}) is kept: look for NaN or infinite values in the "
            f"features or captions, or lower {flag}"
        )
