"""Keeping the server's memory small (issue 15: the whole app stays < 1 GB).

Four settings; the glibc calls are no-ops where the C library is not glibc. The first two must come
before TensorFlow is imported: `before_tensorflow()` makes both, at the top of app.py and of
`python -m cnnviz`.

- `limit_arenas()`, before TensorFlow starts its threads: glibc
  gives each thread that allocates its own malloc arena (up to 8 per core), each holding freed
  pages of its own; TensorFlow's thread pools, NumPy and Streamlit's threads thus keep many
  partly used arenas. `mallopt(M_ARENA_MAX, 2)` shares two, as `MALLOC_ARENA_MAX=2` in the
  environment would (measured earlier: 60-130 MB less after the default runs).
- `use_system_allocator()`, before TensorFlow is imported:
  TensorFlow's oneDNN build allocates tensors from its own pool, which keeps every byte it ever held (a forward pass
  over 2,048 images left 530 MB resident after the tensors were freed). With
  `TF_ONEDNN_USE_SYSTEM_ALLOCATOR=1` tensors come from malloc and go back when freed. Measured
  (LeNet vs ReLU, transfer and augmentation defaults in one process, one run each): 888 -> 828 MB,
  64.5 -> 59.6 s; the whole app after the default tour (bench/memory.py): 1,046-1,071 -> 1,020-1,026 MB
  steady, but peak 1,097-1,102 -> 1,178-1,213 MB, and its augmentation run 35.5-38.0 -> 41.0-43.7 s.
  It matters only with oneDNN on (TensorFlow's default on x86; not with TF_ENABLE_ONEDNN_OPTS=0).
- `trim_heap()`, after each background job: it first collects unreachable Python cycles (a
  finished run's Keras objects; Streamlit's collection after every script run is off, see
  .streamlit/config.toml). A training run allocates and frees many buffers, and
  malloc keeps the freed pages, so the resident size stays at the run's high-water mark although
  nothing uses them. ``malloc_trim(0)`` returns them. Measured (LeNet-vs-ReLU default in one
  process): 930 -> 845 MB. It only gives back memory that is already free, so it is safe while
  other threads hold models.
- `idle_trimmer`, poked by app.py after each run of the whole app: once the server has been quiet for a
  second, `release_free_pages()` (malloc_trim alone, 1-2 ms) returns what the page runs freed
  since. Without it, visits to the explain and classroom pages after the last job added 20-32 MB that
  nothing used (malloc's bytes in use unchanged). The whole app after the default tour
  (bench/memory.py, same VM, 2026-12-02): 1,007 MB before, then 947, 954 (--attribute) and 1,002 MB;
  with `budget.EVAL_BATCH` = 128 as well, 909-980 MB (5 runs, median 944; peak 1,067-1,130). While a
  class keeps the server busy it trims at least every 30 s (`max_wait`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import os
import sys
import threading
import time
from collections.abc import Callable

SYSTEM_ALLOCATOR = "TF_ONEDNN_USE_SYSTEM_ALLOCATOR"  # read by TensorFlow when it creates its CPU allocator
M_ARENA_MAX = -8  # glibc's mallopt parameter numbers (malloc.h).
ARENAS = 2


@functools.cache
def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.malloc_trim.restype = ctypes.c_int
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.mallopt.restype = ctypes.c_int
    except (OSError, AttributeError):  # Not glibc (musl, ...): nothing to tune.
        return None
    return libc


def trim_heap() -> bool:
    """Collect unreachable Python cycles, then return malloc's free pages to the operating system.

    The collection matters because Streamlit's full collection after each script run is off
    (`runner.postScriptGC = false` in .streamlit/config.toml): a finished run's Keras objects hold
    cycles. False where the pages cannot be returned (not glibc); the collection runs anyway.
    """
    gc.collect()
    return release_free_pages()


def release_free_pages() -> bool:
    """malloc_trim(0) alone: return malloc's free pages to the operating system (no collection,
    so it takes 1-2 ms and can run while pages are served). False where not glibc."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


class IdleTrimmer:
    """Calls `release` once the server has been quiet for `delay` seconds after the last `poke()`,
    and at least every `max_wait` seconds while pokes keep coming (a busy class never goes quiet).

    Every page run allocates and frees (figures, dataframes, Streamlit's messages); malloc keeps
    the freed pages resident until something returns them, so RSS crept up between training jobs
    although nothing held the memory (bench/memory.py: visiting the explain and classroom pages
    after the last job added 20-32 MB, with malloc's bytes in use unchanged). app.py pokes after each
    run of the whole app (a fragment's rerun alone does not run app.py, so it does not poke); one
    daemon thread waits for the quiet and trims once per quiet spell.
    """

    def __init__(self, delay: float = 1.0, max_wait: float = 30.0,
                 release: Callable[[], object] = release_free_pages) -> None:
        self.delay = delay
        self.max_wait = max_wait
        self.trims = 0
        self._release = release
        self._last_poke = 0.0
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def poke(self) -> None:
        """Note a page run; never raises (it runs in app.py's `finally`, beside Streamlit's own exceptions)."""
        try:
            with self._lock:
                self._last_poke = time.monotonic()
                if self._thread is None:
                    thread = threading.Thread(target=self._run, name="cnnviz-idle-trim", daemon=True)
                    thread.start()
                    self._thread = thread
            self._wake.set()
        except RuntimeError:  # No thread could be started: no trim, the page is unaffected.
            pass

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            spell_began = time.monotonic()
            while True:
                now = time.monotonic()
                remaining = min(self._last_poke + self.delay, spell_began + self.max_wait) - now
                if remaining <= 0:
                    break
                self._wake.wait(remaining)  # A poke meanwhile restarts the quiet spell.
                self._wake.clear()
            self.trims += 1
            self._release()


idle_trimmer = IdleTrimmer()


def before_tensorflow() -> None:
    """The settings that must precede TensorFlow's import and threads, in one place: app.py and
    `python -m cnnviz` (the warm-up, experiments and workers) call it first."""
    limit_arenas()
    use_system_allocator()


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Let all threads share at most `arenas` malloc arenas (glibc's mallopt); False where not possible.

    Arenas already created stay, so call it before threads allocate (`before_tensorflow`, at the top
    of app.py and of `python -m cnnviz`; repeating it on a rerun costs nothing). A MALLOC_ARENA_MAX in
    the environment is replaced by this value.
    """
    libc = _libc()
    if libc is None:
        return False
    return libc.mallopt(M_ARENA_MAX, arenas) == 1


def use_system_allocator() -> bool:
    """Make TensorFlow allocate its tensors with malloc rather than from its own pool, which never
    shrinks; True when that is the setting in force.

    It sets `TF_ONEDNN_USE_SYSTEM_ALLOCATOR=1` unless the environment already says otherwise, and
    only takes effect if TensorFlow is not imported yet (app.py and `python -m cnnviz` call it first).
    """
    if "tensorflow" not in sys.modules:
        os.environ.setdefault(SYSTEM_ALLOCATOR, "1")
    return os.environ.get(SYSTEM_ALLOCATOR) == "1"
