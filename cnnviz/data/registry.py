"""The datasets cnnviz knows, in the order the interface offers them.

Adding a dataset: write its module (a `DatasetSpec` named SPEC, like `cifar10.py`) and add
it to `SPECS` below.
"""

from __future__ import annotations

from cnnviz.data import cifar10, fashion_mnist, mnist
from cnnviz.data.dataset_spec import DatasetSpec

SPECS: dict[str, DatasetSpec] = {module.SPEC.name: module.SPEC for module in (fashion_mnist, mnist, cifar10)}

DATASETS: tuple[str, ...] = tuple(SPECS)


def spec(name: str) -> DatasetSpec:
    """The spec of a dataset by name ("fashion_mnist", "mnist", "cifar10"); ValueError if unknown."""
    try:
        return SPECS[name]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown dataset {name!r}; choose one of {', '.join(DATASETS)}.") from None
