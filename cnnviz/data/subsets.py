"""Subsets of a dataset: stratified limits, and the one class filter with its label remap."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from cnnviz.data.dataset import Dataset, Images, Labels, readonly, take_rows


def check_limit(limit: int | None, what: str) -> None:
    """A limit is None (everything) or a whole number of at least one image."""
    if limit is None:
        return
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)):
        raise ValueError(f"{what} must be a whole number of images or None, got {limit!r}.")
    if limit < 1:
        raise ValueError(f"{what} must be at least 1 image, got {limit}.")


def check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"The seed must be a whole number of at least 0, got {seed!r}.")


def stratified_indices(labels: npt.ArrayLike, n: int, seed: int = 0) -> npt.NDArray[np.int64]:
    """Indices of `n` items with the classes as equally represented as the data allows.

    Every class gets ``n // k`` items (k classes) while it has enough; what a small class cannot
    fill goes to the others, and the last few places go to classes chosen at random. The same
    labels, `n` and `seed` always give the same indices, in shuffled order. When `n` is at least
    the number of labels, every index is returned (shuffled).
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"Labels must be a 1-D array, got shape {labels.shape}.")
    check_limit(n, "n")
    check_seed(seed)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    n = min(int(n), len(labels))
    quotas = _class_quotas(counts, n, rng)
    chosen = [rng.choice(np.flatnonzero(labels == value), size=quota, replace=False)
              for value, quota in zip(classes, quotas) if quota > 0]
    indices = np.concatenate(chosen) if chosen else np.empty(0, dtype=np.int64)
    return rng.permutation(indices).astype(np.int64)


def _class_quotas(counts: npt.NDArray[np.int64], n: int, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    """How many items each class gives to a subset of `n` (water-filling, remainder at random)."""
    quotas = np.zeros(len(counts), dtype=np.int64)
    remaining = n
    while remaining > 0:
        open_classes = np.flatnonzero(quotas < counts)
        if len(open_classes) == 0:
            break
        share = remaining // len(open_classes)
        if share == 0:
            lucky = rng.choice(open_classes, size=remaining, replace=False)
            quotas[lucky] += 1
            break
        added = np.minimum(share, counts[open_classes] - quotas[open_classes])
        quotas[open_classes] += added
        remaining -= int(added.sum())
    return quotas


def subset(dataset: Dataset, *, limit_train: int | None, limit_test: int | None, seed: int) -> Dataset:
    """`dataset` with stratified subsets of its splits (`stratified_indices`); None keeps a split."""
    x_train, y_train = _take(dataset.x_train, dataset.y_train, limit_train, seed)
    x_test, y_test = _take(dataset.x_test, dataset.y_test, limit_test, seed)
    return replace(dataset, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


def _take(x: Images, y: Labels, limit: int | None, seed: int) -> tuple[Images, Labels]:
    if limit is None:
        return x, y
    indices = stratified_indices(y, limit, seed)
    return readonly(take_rows(x, indices)), readonly(y[indices])


def filter_classes(labels: npt.ArrayLike, classes: Sequence[int]) -> tuple[npt.NDArray[np.bool_],
                                                                            npt.NDArray[np.int64]]:
    """Keep the items of `classes` and renumber their labels 0..k-1 in the order of `classes`.

    Returns ``(keep, remapped)``: `keep` is a boolean mask over `labels` (True for an item whose
    label is one of `classes`) and `remapped` the new int64 labels of the kept items, so class
    ``classes[i]`` becomes label ``i``. Apply the mask to the images: ``x[keep]``.
    """
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    wanted = [int(label) for label in classes]
    if len(set(wanted)) != len(wanted):
        raise ValueError(f"The classes {wanted} repeat a label; each class must appear once.")
    if any(label < 0 for label in wanted):
        raise ValueError(f"Class labels are at least 0, got {wanted}.")
    size = max([*wanted, int(labels.max(initial=-1))]) + 1
    lookup = np.full(size, -1, dtype=np.int64)
    lookup[wanted] = np.arange(len(wanted))
    new = np.where(labels >= 0, lookup[np.clip(labels, 0, None)], -1)
    keep = new >= 0
    return keep, new[keep]
