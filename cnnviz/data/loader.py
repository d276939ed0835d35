"""`load`: a dataset by name, from the first source that has it, optionally as a stratified subset.

Full datasets are kept in a small in-memory cache shared by every session of the process
(Streamlit serves sessions from threads, so every access goes through a lock); one lock per
dataset makes concurrent first loads read the files once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from cnnviz.data import folders, sources, subsets
from cnnviz.data.dataset import Arrays, Dataset, make_dataset
from cnnviz.data.dataset_spec import DatasetSpec
from cnnviz.data.registry import DATASETS
from cnnviz.data.registry import spec as spec_of
from cnnviz.errors import DatasetUnavailable

_MEMORY_CACHE_ENTRIES = 4

_STATE_LOCK = threading.Lock()
_LOAD_LOCKS: dict[str, threading.Lock] = {name: threading.Lock() for name in DATASETS}
_MEMORY_CACHE: OrderedDict[tuple[str, str, str], Dataset] = OrderedDict()


def load(name: str, *, limit_train: int | None = None, limit_test: int | None = None, seed: int = 0,
         allow_download: bool = True) -> Dataset:
    """Load a dataset by name ("fashion_mnist", "mnist" or "cifar10") from the first source that has it.

    A class-folder dataset read by `load_image_folder` in this process is read back by its name
    from the disk cache (`DatasetUnavailable` once that was cleared).

    `limit_train`/`limit_test` take a stratified subset (as equal per class as possible),
    deterministic for a `seed` and in shuffled order; None keeps the whole split in file order.
    With `allow_download=False` nothing is downloaded and TensorFlow is never imported.
    Raises `DatasetUnavailable` (with a message to show as-is) when no source has the dataset,
    and `DatasetFormatError` when the files that were found are malformed.
    """
    spec = spec_of(name)
    subsets.check_limit(limit_train, "limit_train")
    subsets.check_limit(limit_test, "limit_test")
    subsets.check_seed(seed)
    full = folders.cached_dataset(spec) if spec.class_folders else _load_full(spec, allow_download=allow_download)
    if limit_train is None and limit_test is None:
        return full
    return subsets.subset(full, limit_train=limit_train, limit_test=limit_test, seed=seed)


def clear_caches() -> None:
    """Forget cached arrays and failed downloads (for tests, or after the data folder changed)."""
    with _STATE_LOCK:
        _MEMORY_CACHE.clear()
    sources.forget()
    folders.forget()


def _load_full(spec: DatasetSpec, *, allow_download: bool) -> Dataset:
    with _LOAD_LOCKS[spec.name]:
        plan = sources.plan(spec, allow_download=allow_download)
        dataset = _memory_get(_memory_key(spec, plan))
        if dataset is None and plan.kind == "download":
            try:
                dataset = _make(spec, sources.download(spec), plan)
            except sources.DownloadFailed:
                plan = sources.plan(spec, allow_download=allow_download)  # The next source, or none.
                dataset = _memory_get(_memory_key(spec, plan))
            else:
                _memory_put(_memory_key(spec, plan), dataset)
        if plan.source is None:
            raise DatasetUnavailable(plan.note)
        if dataset is None:
            dataset = _make(spec, sources.read(spec, plan), plan)
            _memory_put(_memory_key(spec, plan), dataset)
        if dataset.note != plan.note:
            # Same arrays, but the reason for choosing this source has changed (e.g. offline now).
            dataset = dataset.with_note(plan.source, plan.note)
        return dataset


def _make(spec: DatasetSpec, arrays: Arrays, plan: sources.Plan) -> Dataset:
    return make_dataset(spec, arrays, where=str(plan.location), source=plan.source or "", note=plan.note)


def _memory_key(spec: DatasetSpec, plan: sources.Plan) -> tuple[str, str, str]:
    return spec.name, plan.kind, str(plan.location)


def _memory_get(key: tuple[str, str, str]) -> Dataset | None:
    with _STATE_LOCK:
        dataset = _MEMORY_CACHE.get(key)
        if dataset is not None:
            _MEMORY_CACHE.move_to_end(key)
        return dataset


def _memory_put(key: tuple[str, str, str], dataset: Dataset) -> None:
    with _STATE_LOCK:
        _MEMORY_CACHE[key] = dataset
        _MEMORY_CACHE.move_to_end(key)
        while len(_MEMORY_CACHE) > _MEMORY_CACHE_ENTRIES:
            _MEMORY_CACHE.popitem(last=False)
