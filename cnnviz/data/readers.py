"""Parsers for the dataset file formats: IDX files, pickled CIFAR batches and .npz archives.

Each reader returns ``(x_train, y_train, x_test, y_test)`` as found in the files (checked
against a dataset's spec afterwards by `cnnviz.data.dataset.make_dataset`) and raises
`DatasetFormatError` for a damaged or incomplete file, with a message naming it.
"""

from __future__ import annotations

import gzip
import io
import pickle
import zipfile
import zlib
from pathlib import Path

import numpy as np

from cnnviz.data.dataset import Arrays
from cnnviz.errors import DatasetFormatError

# The standard IDX file names (Fashion-MNIST and MNIST use the same ones).
IDX_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions (count, rows, columns).
IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension (count).

CIFAR_TRAIN_BATCHES: tuple[str, ...] = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_BATCH = "test_batch"

NPZ_ARRAYS: tuple[str, ...] = ("x_train", "y_train", "x_test", "y_test")


# ---------------------------------------------------------------------------------------------
# IDX files (Fashion-MNIST, MNIST).
# ---------------------------------------------------------------------------------------------

def find_idx_files(folder: Path) -> dict[str, Path] | str:
    """The four IDX files in `folder` (gzipped or not), or the name of the first one missing."""
    found: dict[str, Path] = {}
    for role, stem in IDX_FILES.items():
        dotted = stem.replace("-idx", ".idx")  # The original MNIST site spells them this way.
        candidates = [folder / f"{stem}.gz", folder / stem, folder / f"{dotted}.gz", folder / dotted]
        path = next((candidate for candidate in candidates if candidate.is_file()), None)
        if path is None:
            return f"{stem}.gz"
        found[role] = path
    return found


def _read_file_bytes(path: Path) -> bytes:
    """The bytes of a file, gunzipped when it is a gzip file (detected by content, not name)."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DatasetFormatError(f"{path} cannot be read ({error.strerror or error}).") from error
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as error:
            raise DatasetFormatError(
                f"{path} is a damaged or truncated gzip file ({error}); replace it with a fresh copy."
            ) from error
    return raw


def parse_idx(raw: bytes, *, magic: int, where: str = "the file") -> np.ndarray:
    """Parse an IDX file of unsigned bytes into an array shaped as its header says (no copy).

    `magic` is the expected magic number: 2051 for images (count, rows, columns) or 2049 for
    labels (count). Raises `DatasetFormatError` for a wrong magic number, a truncated file or
    trailing bytes.
    """
    kind = {IDX_IMAGES_MAGIC: "image", IDX_LABELS_MAGIC: "label"}.get(magic, "IDX")
    if len(raw) < 4:
        raise DatasetFormatError(f"{where} is truncated: it has {len(raw)} bytes, not even an IDX header.")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise DatasetFormatError(
            f"{where} has magic number {found}, but an IDX {kind} file starts with {magic}; "
            f"it is not the {kind} file it is named as (or it is corrupt).")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetFormatError(f"{where} is truncated inside its header.")
    shape = tuple(int(size) for size in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64))
    available = len(raw) - header
    if available < expected:
        raise DatasetFormatError(
            f"{where} is truncated: its header announces {shape[0]:,} {kind}s ({expected:,} bytes) "
            f"but only {available:,} bytes follow.")
    if available > expected:
        raise DatasetFormatError(
            f"{where} has {available - expected:,} unexpected bytes after the {expected:,} bytes "
            f"its header announces.")
    return np.frombuffer(raw, dtype=np.uint8, count=expected, offset=header).reshape(shape)


def read_idx_pair(images_path: Path, labels_path: Path, *,
                  image_size: tuple[int, int] = (28, 28)) -> tuple[np.ndarray, np.ndarray]:
    """Read one split: images (N, H, W, 1) uint8 and labels (N,), checking they belong together."""
    images = parse_idx(_read_file_bytes(images_path), magic=IDX_IMAGES_MAGIC, where=str(images_path))
    labels = parse_idx(_read_file_bytes(labels_path), magic=IDX_LABELS_MAGIC, where=str(labels_path))
    if images.ndim != 3 or images.shape[1:] != tuple(image_size):
        raise DatasetFormatError(
            f"{images_path} holds images shaped {images.shape[1:]}, but {image_size[0]}x{image_size[1]} "
            f"images were expected.")
    if labels.ndim != 1:
        raise DatasetFormatError(f"{labels_path} holds a {labels.ndim}-D array; labels must be 1-D.")
    if len(images) != len(labels):
        raise DatasetFormatError(
            f"{images_path} has {len(images):,} images but {labels_path} has {len(labels):,} labels; "
            f"the counts must match.")
    return images.reshape(*images.shape, 1), labels


def read_idx_folder(folder: Path, *, image_size: tuple[int, int] = (28, 28)) -> Arrays:
    """Read the four standard IDX files of a folder: (x_train, y_train, x_test, y_test)."""
    files = find_idx_files(Path(folder))
    if isinstance(files, str):
        raise DatasetFormatError(f"{folder} lacks {files}.")
    x_train, y_train = read_idx_pair(files["train_images"], files["train_labels"], image_size=image_size)
    x_test, y_test = read_idx_pair(files["test_images"], files["test_labels"], image_size=image_size)
    return x_train, y_train, x_test, y_test


# ---------------------------------------------------------------------------------------------
# Pickled CIFAR-10 batches.
# ---------------------------------------------------------------------------------------------

def find_cifar_batches(folder: Path) -> str | None:
    """None when `folder` holds all six pickled CIFAR-10 batches, else the first missing one."""
    for batch in (*CIFAR_TRAIN_BATCHES, CIFAR_TEST_BATCH):
        if not (folder / batch).is_file():
            return batch
    return None


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only, so a tampered file cannot run code."""

    _ALLOWED = frozenset({
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        # Python 3 writes bytes as _codecs.encode(text, "latin1") under pickle protocol 2.
        ("_codecs", "encode"),
    })

    def find_class(self, module: str, name: str):  # noqa: ANN201 (pickle API)
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it refers to {module}.{name}, which a CIFAR batch never does")


def parse_cifar_batch(raw: bytes, *, where: str = "the batch") -> tuple[np.ndarray, np.ndarray]:
    """Parse one pickled CIFAR-10 batch into images (N, 32, 32, 3) uint8 and labels (N,) int64."""
    try:
        batch = _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as error:  # A damaged pickle can fail in many ways; all mean "bad file".
        raise DatasetFormatError(f"{where} is not a readable CIFAR batch ({error or type(error).__name__}).") \
            from error
    if not isinstance(batch, dict):
        raise DatasetFormatError(f"{where} holds a {type(batch).__name__}, not a CIFAR batch dictionary.")
    batch = {key.decode("utf8", "replace") if isinstance(key, bytes) else str(key): value
             for key, value in batch.items()}
    missing = [key for key in ("data", "labels") if key not in batch]
    if missing:
        raise DatasetFormatError(f"{where} lacks the keys {', '.join(missing)} of a CIFAR-10 batch.")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", None)
        raise DatasetFormatError(
            f"{where}: 'data' must be a uint8 array of N rows of 3,072 pixels (32x32x3), got "
            f"{type(data).__name__} shaped {shape}.")
    try:
        labels = np.asarray(batch["labels"], dtype=np.int64).reshape(-1)
    except (TypeError, ValueError) as error:
        raise DatasetFormatError(f"{where}: 'labels' is not a list of integers.") from error
    if len(labels) != len(data):
        raise DatasetFormatError(
            f"{where} has {len(data):,} images but {len(labels):,} labels; the counts must match.")
    # Each row is 1,024 red, then 1,024 green, then 1,024 blue values: (N, 3, 32, 32) -> NHWC.
    images = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return images, labels


def read_cifar_batches(folder: Path) -> Arrays:
    """Read data_batch_1..5 and test_batch of a cifar-10-batches-py folder."""
    folder = Path(folder)
    missing = find_cifar_batches(folder)
    if missing is not None:
        raise DatasetFormatError(f"{folder} lacks {missing}.")
    train = [_read_cifar_batch(folder / batch) for batch in CIFAR_TRAIN_BATCHES]
    x_test, y_test = _read_cifar_batch(folder / CIFAR_TEST_BATCH)
    x_train = np.concatenate([images for images, _ in train])
    y_train = np.concatenate([labels for _, labels in train])
    return x_train, y_train, x_test, y_test


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DatasetFormatError(f"{path} cannot be read ({error.strerror or error}).") from error
    return parse_cifar_batch(raw, where=str(path))


# ---------------------------------------------------------------------------------------------
# Keras-style .npz archives (MNIST in Keras' cache, the bundled sample).
# ---------------------------------------------------------------------------------------------

def read_npz(path: Path) -> Arrays:
    """Read the four arrays of a Keras-style .npz (x_train, y_train, x_test, y_test), no pickles."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in NPZ_ARRAYS if key not in archive]
            if missing:
                raise DatasetFormatError(f"{path} lacks the arrays {', '.join(missing)}.")
            return archive["x_train"], archive["y_train"], archive["x_test"], archive["y_test"]
    except DatasetFormatError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise DatasetFormatError(f"{path} is not a readable .npz file ({error}).") from error


def npz_counts(path: Path) -> tuple[int, int]:
    """(training, test) image counts of a Keras-style .npz, read from its label arrays; (0, 0) if unreadable."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return len(archive["y_train"]), len(archive["y_test"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return 0, 0
