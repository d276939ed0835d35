"""The datasets cnnviz knows, in the order the interface offers them, and the ones read this process.

Adding a dataset: write its module (a `DatasetSpec` named SPEC, like `cifar10.py`) and add
it to `SPECS` below. A class-folder dataset read by `cnnviz.data.load_image_folder` (a
student's zip or folder) gets a spec derived from its images, `register`ed for the process
under its content-derived name, so that `spec(name)` (and everything that looks a dataset up
by name) knows it too; it is not in `DATASETS`, which the pickers offer.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from cnnviz.data import cifar10, fashion_mnist, mnist
from cnnviz.data.dataset_spec import DatasetSpec

SPECS: dict[str, DatasetSpec] = {module.SPEC.name: module.SPEC for module in (fashion_mnist, mnist, cifar10)}

DATASETS: tuple[str, ...] = tuple(SPECS)

# Specs of class-folder datasets read in this process (a few hundred bytes each), newest last.
MAX_REGISTERED = 1_000
_REGISTERED: OrderedDict[str, DatasetSpec] = OrderedDict()
_LOCK = threading.Lock()


def register(dataset_spec: DatasetSpec) -> None:
    """Make `spec(dataset_spec.name)` return `dataset_spec` in this process (a class-folder dataset).

    A built-in name cannot be replaced (ValueError); the oldest of more than `MAX_REGISTERED`
    registered specs is forgotten.
    """
    if dataset_spec.name in SPECS:
        raise ValueError(f"{dataset_spec.name!r} is a built-in dataset and cannot be registered again.")
    with _LOCK:
        _REGISTERED[dataset_spec.name] = dataset_spec
        _REGISTERED.move_to_end(dataset_spec.name)
        while len(_REGISTERED) > MAX_REGISTERED:
            _REGISTERED.popitem(last=False)


def spec(name: str) -> DatasetSpec:
    """The spec of a dataset by name ("fashion_mnist", "mnist", "cifar10", or a registered
    class-folder dataset); ValueError if unknown."""
    try:
        return SPECS[name]
    except (KeyError, TypeError):
        pass
    with _LOCK:
        found = _REGISTERED.get(name) if isinstance(name, str) else None
    if found is None:
        raise ValueError(f"Unknown dataset {name!r}; choose one of {', '.join(DATASETS)}.") from None
    return found
