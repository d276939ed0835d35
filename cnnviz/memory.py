"""Giving freed memory back to the system after a run (issue 15: the server stays < 1 GB).

A training run allocates and frees many buffers from several threads (TensorFlow's kernels,
NumPy batches); glibc's malloc keeps the freed pages in its arenas, so the process's resident
size stays at the run's high-water mark although nothing uses them. `trim_heap()` asks glibc to
return them (``malloc_trim(0)``). Measured (LeNet-vs-ReLU default in one process): 930 -> 845 MB.
It only gives back memory that is already free, so it is safe while other threads hold models.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys


@functools.cache
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # Not glibc (musl, ...): nothing to trim with.
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def trim_heap() -> bool:
    """Return malloc's free pages to the operating system; False where that is not possible."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True

