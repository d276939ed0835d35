"""The datasets cnnviz teaches with: one spec per dataset, where its files come from, readers, subsets.

`load(name)` returns a `Dataset` of uint8 NHWC images and integer labels from the first source
that has it (the local data folder, Keras, or a bundled sample; see `cnnviz.data.sources`),
and `source_status(name)` says which one that would be and why, without loading anything.
`spec(name)` is everything cnnviz knows about a dataset before loading it (its shape, classes,
labels...), written once in the dataset's own module (`fashion_mnist`, `mnist`, `cifar10`).
`load_image_folder` reads a class-per-subfolder image dataset (a folder or a .zip) into a
`Dataset` named from its content, whose spec is registered for the process (so `spec(name)`,
`load(name)` and the training cache know it; it is not in `DATASETS`).

Modules: `dataset_spec` (the `DatasetSpec`), `registry` (the known datasets), `dataset` (the
`Dataset`), `loader` (`load` and its memory cache), `sources` (choosing a source, downloads),
`readers` (IDX, CIFAR batches, .npz), `folders` (image folders and zips), `cache` (the disk
cache of decoded datasets), `subsets` (stratified limits, the class filter).
"""

from cnnviz.data.cache import cache_dir
from cnnviz.data.dataset import ALIGNMENT, Dataset, aligned_empty, take_rows
from cnnviz.data.dataset_spec import DatasetSpec
from cnnviz.data.folders import FolderReport, load_image_folder
from cnnviz.data.loader import clear_caches, load
from cnnviz.data.registry import DATASETS, register, spec
from cnnviz.data.sources import SourceStatus, source_status
from cnnviz.data.subsets import filter_classes
from cnnviz.errors import DatasetFormatError, DatasetUnavailable

__all__ = [
    "ALIGNMENT", "DATASETS", "Dataset", "DatasetFormatError", "DatasetSpec", "DatasetUnavailable", "FolderReport",
    "SourceStatus", "cache_dir", "clear_caches", "filter_classes", "load", "load_image_folder", "source_status",
    "aligned_empty", "register", "spec", "take_rows",
]
