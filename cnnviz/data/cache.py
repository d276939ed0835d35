"""cnnviz's disk cache of decoded datasets (memory-mapped .npy files).

Decoding 60,000 JPEGs takes minutes; the result is saved once under `cache_dir()` and then
memory-mapped (copy-on-write, never written), so a later load costs a directory scan and the
operating system can share and drop the pages.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from cnnviz import settings
from cnnviz.data.dataset import Arrays


def cache_dir() -> Path:
    """cnnviz's disk cache: ``$CNNVIZ_CACHE_DIR``, or ``~/.cache/cnnviz`` when that is not set."""
    return settings.cache_dir()


CACHE_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


def read_array_cache(folder: Path) -> Arrays | None:
    """The four arrays of a cache folder, memory-mapped, or None if absent or damaged.

    The mapping is copy-on-write (``mmap_mode="c"``): the files are never changed, the pages
    are the operating system's (shared, dropped under pressure) until something writes, and
    nothing does (`make_dataset` hands out read-only views). Unlike a read-only mapping it lets
    TensorFlow read the images in place instead of copying them
    (`cnnviz.training.inputs.image_tensor`).
    """
    try:
        loaded = [np.asarray(np.load(folder / f"{name}.npy", mmap_mode="c", allow_pickle=False))
                  for name in CACHE_ARRAYS]
    except (OSError, ValueError, EOFError):
        return None
    return loaded[0], loaded[1], loaded[2], loaded[3]


META_FILE = "meta.json"


def write_array_cache(folder: Path, *, meta: dict[str, Any] | None = None, **arrays: np.ndarray) -> None:
    """Save arrays as .npy files in `folder` (and `meta` as its meta.json), atomically; a cache
    that cannot be written is skipped."""
    temporary: Path | None = None
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        temporary = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
        for name, array in arrays.items():
            np.save(temporary / f"{name}.npy", array, allow_pickle=False)
        if meta is not None:
            (temporary / META_FILE).write_text(json.dumps(meta))
        os.rename(temporary, folder)  # Fails if another process finished first; theirs is kept.
        temporary = None
    except OSError:
        pass
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)


def read_cache_meta(folder: Path) -> dict[str, Any] | None:
    """The meta.json that `write_array_cache` saved in `folder`, or None if absent or damaged."""
    try:
        value = json.loads((folder / META_FILE).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def datasets_cache_dir() -> Path:
    """Where decoded datasets are cached: ``cache_dir() / "datasets"``."""
    return cache_dir() / "datasets"
