"""The `Dataset`: a loaded dataset's arrays, in the one form every caller gets them."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from cnnviz.data.dataset_spec import DatasetSpec
from cnnviz.errors import DatasetFormatError

if TYPE_CHECKING:
    from cnnviz.data.folders import FolderReport

Images = npt.NDArray[np.uint8]
Labels = npt.NDArray[np.int64]
# (x_train, y_train, x_test, y_test) as a reader returns them, before they are checked.
Arrays = tuple[npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[Any]]


@dataclass(frozen=True, eq=False)
class Dataset:
    """A labelled image dataset split into training and test sets.

    `x_train`/`x_test` are uint8 arrays shaped (N, H, W, C); `y_train`/`y_test` are 1-D int64
    labels indexing `class_names`. The arrays are read-only because they are shared between
    callers; copy them (e.g. ``x.astype("float32") / 255``) before changing them. `source` is
    "local", "keras" or "bundled sample" ("class folders" for `cnnviz.data.load_image_folder`)
    and `note` one sentence saying why it was used. `report` is what `load_image_folder` read
    (classes, images per class, skipped files and why, warnings); None for a built-in dataset.
    """

    name: str
    x_train: Images
    y_train: Labels
    x_test: Images
    y_test: Labels
    class_names: tuple[str, ...]
    source: str
    note: str
    report: FolderReport | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of one image."""
        height, width, channels = (int(size) for size in self.x_train.shape[1:])
        return height, width, channels

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def with_note(self, source: str, note: str) -> Dataset:
        """The same arrays under another source and note."""
        return replace(self, source=source, note=note)

    def __repr__(self) -> str:
        return (f"Dataset(name={self.name!r}, train={self.x_train.shape}, test={self.x_test.shape}, "
                f"classes={self.num_classes}, source={self.source!r})")


# Bytes to which image arrays are aligned: TensorFlow's CPU kernels need 64 (EIGEN_MAX_ALIGN_BYTES)
# to use an array's memory in place (`cnnviz.training.inputs.image_tensor`); numpy gives 16.
ALIGNMENT = 64


def aligned_empty(shape: tuple[int, ...], dtype: Any) -> npt.NDArray[Any]:
    """An uninitialised C-contiguous array whose data starts at a multiple of `ALIGNMENT` bytes."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    buffer = np.empty(nbytes + ALIGNMENT, dtype=np.uint8)
    offset = -buffer.ctypes.data % ALIGNMENT
    return buffer[offset:offset + nbytes].view(dtype).reshape(shape)


def take_rows(x: npt.NDArray[Any], indices: npt.ArrayLike) -> npt.NDArray[Any]:
    """``x[indices]`` (one copy of the chosen rows) into an aligned array (`aligned_empty`)."""
    indices = np.asarray(indices, dtype=np.intp).reshape(-1)
    if indices.size and (indices.min() < -len(x) or indices.max() >= len(x)):
        raise IndexError(f"row index out of range for {len(x)} rows")
    indices = np.where(indices < 0, indices + len(x), indices)
    out = aligned_empty((len(indices), *x.shape[1:]), x.dtype)
    # mode="clip" (the indices are checked above): the default mode="raise" buffers `out`, a
    # temporary copy as large as the result (measured: 106 MB more for 4,000 96x96 colour images).
    np.take(x, indices, axis=0, out=out, mode="clip")
    return out


def readonly(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """A read-only view of `array`, to hand out in place of it.

    Only the view is flagged: memory that is writable underneath (a fresh array, a copy-on-write
    mapping of the disk cache) stays so, which lets TensorFlow use it in place instead of copying
    it (`cnnviz.training.inputs.image_tensor`, which only reads it). Nothing can write through
    the view.
    """
    view = array.view()
    view.setflags(write=False)
    return view


def make_dataset(spec: DatasetSpec, arrays: Arrays, *, where: str, source: str, note: str,
                 report: FolderReport | None = None) -> Dataset:
    """Check a reader's arrays against `spec` and bring them into the Dataset form.

    Images become uint8 NHWC (a (N, H, W) grey array gets its channel axis, as a view), labels
    1-D int64; both read-only. Raises `DatasetFormatError`, naming `where`, for wrong shapes,
    dtypes, counts or labels.
    """
    height, width, channels = spec.image_shape
    result: list[npt.NDArray[Any]] = []
    for split, x, y in (("training", arrays[0], arrays[1]), ("test", arrays[2], arrays[3])):
        x = np.asarray(x)
        y = np.asarray(y).reshape(-1)
        if x.ndim == 3 and channels == 1:
            x = x.reshape(*x.shape, 1)  # (N, 28, 28) -> (N, 28, 28, 1), a view.
        if x.shape[1:] != (height, width, channels):
            raise DatasetFormatError(
                f"The {split} images in {where} have shape {x.shape[1:]}, but {spec.label} "
                f"images are {height}x{width}x{channels}.")
        if x.dtype != np.uint8:
            raise DatasetFormatError(f"The {split} images in {where} are {x.dtype}, not uint8 pixels.")
        if len(x) != len(y):
            raise DatasetFormatError(
                f"{where} has {len(x):,} {split} images but {len(y):,} labels; they must match.")
        if len(x) == 0:
            raise DatasetFormatError(f"{where} has no {split} images.")
        y = y.astype(np.int64)
        if y.min() < 0 or y.max() >= spec.num_classes:
            raise DatasetFormatError(
                f"The {split} labels in {where} run from {y.min()} to {y.max()}, but {spec.label} "
                f"labels are 0 to {spec.num_classes - 1}.")
        result.extend([readonly(x), readonly(y)])
    return Dataset(name=spec.name, x_train=result[0], y_train=result[1], x_test=result[2], y_test=result[3],
                   class_names=spec.class_names, source=source, note=note, report=report)
