"""The images a `TrainConfig` trains on: where they come from, and how they reach the network.

`load_dataset` fetches them with `cnnviz.data.load` (limited as configured); `prepare` takes
those (or injected data with fields `x_train, y_train, x_test, y_test, class_names`), makes them
NHWC, keeps only `config.classes` and remaps the labels to 0..k-1. `data_source` names their
source, part of what identifies a cached result. The network input is scaled by the one rule in
`cnnviz.architecture` (`scale_images`, `input_scale`); `image_tensor` hands the uint8 images to
TensorFlow without a second copy where it can.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from cnnviz import data as data_module
from cnnviz.errors import SettingsError
from cnnviz.training.config import TrainConfig

if TYPE_CHECKING:
    import tensorflow as tf



@dataclass(frozen=True)
class Prepared:
    """The arrays one run trains and validates on, after the class filter."""

    x_train: np.ndarray  # uint8 (N, H, W, C), or float already in [0, 1]
    y_train: np.ndarray  # int32 (N,), 0..k-1
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        height, width, channels = (int(d) for d in self.x_train.shape[1:])
        return height, width, channels


def load_dataset(config: TrainConfig) -> data_module.Dataset:
    """The `cnnviz.data.Dataset` (limited as configured) that `config` trains on."""
    return data_module.load(config.dataset, limit_train=config.limit_train,
                            limit_test=config.limit_test, seed=config.seed)


def data_source(config: TrainConfig, data: Any = None) -> str:
    """Where the images of `config` come from: part of what identifies a cached result.

    For a loaded or injected `data` its `source` ("local", "keras", "bundled sample"; "injected"
    when it has none). Without `data`, the source `cnnviz.data.load` would use right now, checked
    without loading anything ("" when no source has the dataset).
    """
    if data is not None:
        return str(getattr(data, "source", "") or "injected")
    try:
        return data_module.source_status(config.dataset).source or ""
    except Exception:  # noqa: BLE001 - an unknown dataset simply matches no cache entry.
        return ""


def prepare(config: TrainConfig, data: Any = None) -> Prepared:
    """Load (or take) the dataset, ensure NHWC, filter to `config.classes` and remap labels."""
    if data is None:
        data = load_dataset(config)
    x_train, y_train = np.asarray(data.x_train), np.asarray(data.y_train).astype(np.int64).ravel()
    x_test, y_test = np.asarray(data.x_test), np.asarray(data.y_test).astype(np.int64).ravel()
    if x_train.ndim == 3:
        x_train, x_test = x_train[..., None], x_test[..., None]
    class_names = tuple(str(c) for c in getattr(data, "class_names", ()))
    if not class_names:
        class_names = tuple(str(i) for i in range(int(max(y_train.max(initial=0), y_test.max(initial=0))) + 1))
    if config.classes is not None:
        for c in config.classes:
            if not 0 <= c < len(class_names):
                raise SettingsError(f"Class {c} does not exist in this dataset (it has {len(class_names)} classes).")
        keep_train, y_train = data_module.filter_classes(y_train, config.classes)
        keep_test, y_test = data_module.filter_classes(y_test, config.classes)
        # Copied into aligned arrays, which the training tensors then share (`image_tensor`).
        x_train = data_module.take_rows(x_train, np.flatnonzero(keep_train))
        x_test = data_module.take_rows(x_test, np.flatnonzero(keep_test))
        class_names = tuple(class_names[c] for c in config.classes)
    if len(x_train) == 0 or len(x_test) == 0:
        raise SettingsError("No training or test images are left for the chosen classes.")
    return Prepared(x_train, y_train.astype(np.int32), x_test, y_test.astype(np.int32), class_names)


def image_tensor(images: np.ndarray) -> tf.Tensor:
    """A TensorFlow tensor over `images` (uint8 NHWC, kept as they are) that shares their memory.

    ``tf.constant`` copies an array twice while it converts it (measured: 146 MB of CIFAR-10
    training images raise the peak by 298 MB, and the tensor then holds a copy of its own
    besides the array). Here the tensor is a DLPack view of the array when TensorFlow can use its
    buffer in place: C-contiguous, aligned to `cnnviz.data.ALIGNMENT` bytes, and its memory writable
    underneath (a dataset memory-mapped copy-on-write from the disk cache, `cnnviz.data.cache`,
    or an array the caller made). Otherwise the images are copied once into an aligned buffer
    that the tensor then owns. Either way the run holds one copy of its images.

    The tensor must only be read (the training loops gather batches from it): it may be the
    dataset shared by every session of the process. TensorFlow never writes into a tensor that
    Python still references.
    """
    import tensorflow as tf

    array = np.asarray(images)
    view = _shareable_view(array)
    if view is None:
        view = _aligned_copy(array)
    return tf.experimental.dlpack.from_dlpack(view.__dlpack__())


def _shareable_view(array: np.ndarray) -> np.ndarray | None:
    """A writable view of `array`'s own memory that DLPack can export, or None when it has none."""
    if array.size == 0 or not array.flags.c_contiguous or array.ctypes.data % data_module.ALIGNMENT:
        return None
    view = array.view()
    try:
        view.setflags(write=True)  # Only the view: `array` stays read-only for everyone else.
    except ValueError:  # The memory itself is read-only (bytes, a read-only mapping, a locked array).
        return None
    return view


def _aligned_copy(array: np.ndarray) -> np.ndarray:
    """`array` copied once into a C-contiguous buffer aligned for TensorFlow (`data.aligned_empty`)."""
    copy = data_module.aligned_empty(array.shape, array.dtype)
    copy[...] = array
    return copy
