"""Keeping freed memory in the process, so large tensors are not page-faulted in every step.

glibc's malloc serves every block over 32 MiB (most activations of a video network: one
[4, 192, 8, 56, 56] float32 tensor is 77 MB) with a fresh `mmap` and returns it to the kernel
on `free`. The next step allocates the same sizes again and touches every page anew: on the
project's VM a 77 MB elementwise product took 110 ms into a fresh tensor and 6 ms into one
whose pages were already mapped, and the S3D training step spent about a third of its time in
those page faults. With `mmap` off and trimming raised, freed blocks stay in the heap and the
next step reuses them. The cost: the process keeps its peak memory until it exits.

Only glibc has `mallopt`; elsewhere (macOS, musl) these are no-ops and report False.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_TRIM_NEVER = 2**31 - 1  # the largest value mallopt takes: 2 GiB of free heap kept
# glibc's defaults, restored by `release_freed_memory`
_DEFAULT_TRIM_THRESHOLD = 128 * 1024
_DEFAULT_MMAP_MAX = 65536

_state = {"kept": False}


@functools.lru_cache(maxsize=1)
def _libc():
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        return libc if hasattr(libc, "mallopt") else None
    except OSError:
        return None


def _mallopt(trim_threshold: int, mmap_max: int) -> bool:
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_MMAP_MAX, mmap_max)) and bool(
        libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold)
    )


def keep_freed_memory() -> bool:
    """Makes malloc keep freed blocks for reuse (process-wide). True when it took effect."""
    _state["kept"] = _mallopt(_TRIM_NEVER, 0)
    return _state["kept"]


def release_freed_memory() -> bool:
    """Back to glibc's defaults (`mmap` for large blocks, trim at 128 KiB); the bench uses it to
    time the plain step as an ordinary process runs it."""
    done = _mallopt(_DEFAULT_TRIM_THRESHOLD, _DEFAULT_MMAP_MAX)
    if done:
        _state["kept"] = False
        libc = _libc()
        if hasattr(libc, "malloc_trim"):
            libc.malloc_trim(0)
    return done


def keeping_freed_memory() -> bool:
    """Whether `keep_freed_memory` is in effect."""
    return _state["kept"]
