"""The datasets cnnviz teaches with: where they come from, how their files are parsed, and subsets.

`load(name)` returns a `Dataset` of uint8 NHWC images and integer labels. It tries, in order:

1. the folder named by the environment variable ``CNNVIZ_DATA_DIR`` (``fashion-mnist/`` and
   ``mnist/`` with the four IDX files, ``cifar-10-batches-py/`` with the pickled batches, or
   ``cifar10/{train,test}/<class>/`` image folders);
2. Keras: first its download cache read directly (``$KERAS_HOME`` or ``~/.keras``, without
   importing Keras), then, when allowed, ``keras.datasets.<name>.load_data()``, tried once
   per process with a short network timeout;
3. for Fashion-MNIST only, the sample bundled in ``assets/fashion_mnist_sample.npz``.

Every `Dataset` carries a `source` ("local", "keras" or "bundled sample") and a `note`, one
sentence saying why that source was used. Nothing here imports TensorFlow except the download
step, so ``load(..., allow_download=False)`` and `source_status` never load it.

`load_image_folder` reads a class-per-subfolder image dataset (a folder or a .zip), like Keras'
``image_dataset_from_directory``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import socket
import tempfile
import threading
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from cnnviz.errors import DatasetFormatError, DatasetUnavailable

DATASETS: tuple[str, ...] = ("fashion_mnist", "mnist", "cifar10")

CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    "mnist": tuple(str(digit) for digit in range(10)),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer",
                "dog", "frog", "horse", "ship", "truck"),
}

# (height, width, channels) of one image of each dataset.
IMAGE_SHAPES: dict[str, tuple[int, int, int]] = {
    "fashion_mnist": (28, 28, 1),
    "mnist": (28, 28, 1),
    "cifar10": (32, 32, 3),
}

LABELS: dict[str, str] = {"fashion_mnist": "Fashion-MNIST", "mnist": "MNIST", "cifar10": "CIFAR-10"}

SOURCES: tuple[str, ...] = ("local", "keras", "bundled sample")

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BUNDLED_SAMPLE = PROJECT_ROOT / "assets" / "fashion_mnist_sample.npz"

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

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"})

# Guards for user-supplied image folders and archives.
MAX_SOURCE_PIXELS = 25_000_000  # Larger images are skipped before they are decoded.
MAX_MEMBER_BYTES = 50 * 1024 * 1024  # Larger archive members are skipped unread.
MAX_ARCHIVE_BYTES = 2 * 1024 * 1024 * 1024  # Total uncompressed size of an archive's images.
MAX_ARCHIVE_MEMBERS = 100_000
MAX_FOLDER_ARRAY_BYTES = 1024 * 1024 * 1024  # Memory the decoded uint8 array may take.
MAX_IMAGE_SIDE = 1024

DOWNLOAD_TIMEOUT_SECONDS = 10.0
_MEMORY_CACHE_ENTRIES = 4
_FOLDER_CACHE_VERSION = "1"


@dataclass(frozen=True, eq=False)
class Dataset:
    """A labelled image dataset split into training and test sets.

    `x_train`/`x_test` are uint8 arrays shaped (N, H, W, C); `y_train`/`y_test` are 1-D int64
    labels indexing `class_names`. The arrays are read-only because they are shared between
    callers; copy them (e.g. ``x.astype("float32") / 255``) before changing them.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    source: str
    note: str

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of one image."""
        height, width, channels = (int(size) for size in self.x_train.shape[1:])
        return height, width, channels

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __repr__(self) -> str:
        return (f"Dataset(name={self.name!r}, train={self.x_train.shape}, test={self.x_test.shape}, "
                f"classes={self.num_classes}, source={self.source!r})")


@dataclass(frozen=True)
class SourceStatus:
    """Where `load` would take a dataset from right now, and why (`source` is None if nowhere).

    `needs_download` is True when loading would first download the dataset through Keras.
    """

    source: str | None
    note: str
    needs_download: bool = False


@dataclass(frozen=True, eq=False)
class ImageFolder:
    """Images read from class subfolders: `x` uint8 (N, H, W, 3), `y` int64 labels into `class_names`.

    `skipped` counts image files that could not be read; `skipped_files` names the first of them.
    """

    x: np.ndarray
    y: np.ndarray
    class_names: tuple[str, ...]
    skipped: int
    skipped_files: tuple[str, ...] = ()

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __repr__(self) -> str:
        return (f"ImageFolder(x={self.x.shape}, classes={self.class_names!r}, "
                f"skipped={self.skipped})")


# ---------------------------------------------------------------------------------------------
# Module state: a small cache of full datasets and the memory of failed downloads. Streamlit
# serves several sessions from threads of one process, so every access goes through a lock.
# ---------------------------------------------------------------------------------------------

_STATE_LOCK = threading.Lock()
_LOAD_LOCKS: dict[str, threading.Lock] = {name: threading.Lock() for name in DATASETS}
_DOWNLOAD_LOCK = threading.Lock()
_MEMORY_CACHE: OrderedDict[tuple[str, str, str], Dataset] = OrderedDict()
_DOWNLOAD_FAILURES: dict[str, str] = {}  # Dataset name -> why its download failed.
_NETWORK_FAILURE: list[str] = []  # Set once the internet could not be reached.
_SAMPLE_COUNTS: list[tuple[int, int]] = []  # (training, test) sizes of the bundled sample.


def clear_caches() -> None:
    """Forget cached arrays and failed downloads (for tests, or after the data folder changed)."""
    with _STATE_LOCK:
        _MEMORY_CACHE.clear()
        _DOWNLOAD_FAILURES.clear()
        _NETWORK_FAILURE.clear()
        _SAMPLE_COUNTS.clear()


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


# ---------------------------------------------------------------------------------------------
# Public entry points.
# ---------------------------------------------------------------------------------------------

def load(name: str, *, limit_train: int | None = None, limit_test: int | None = None, seed: int = 0,
         allow_download: bool = True) -> Dataset:
    """Load a dataset by name ("fashion_mnist", "mnist" or "cifar10") from the first source that has it.

    `limit_train`/`limit_test` take a stratified subset (as equal per class as possible),
    deterministic for a `seed` and in shuffled order; None keeps the whole split in file order.
    With `allow_download=False` nothing is downloaded and TensorFlow is never imported.
    Raises `DatasetUnavailable` (with a message to show as-is) when no source has the dataset,
    and `DatasetFormatError` when the files that were found are malformed.
    """
    _check_name(name)
    _check_limit(limit_train, "limit_train")
    _check_limit(limit_test, "limit_test")
    _check_seed(seed)
    full = _load_full(name, allow_download=allow_download)
    if limit_train is None and limit_test is None:
        return full
    x_train, y_train = _take(full.x_train, full.y_train, limit_train, seed)
    x_test, y_test = _take(full.x_test, full.y_test, limit_test, seed)
    return Dataset(name=full.name, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                   class_names=full.class_names, source=full.source, note=full.note)


def source_status(name: str) -> SourceStatus:
    """Which source `load(name)` would use and why, checked without loading or downloading anything."""
    _check_name(name)
    plan = _plan(name, allow_download=True, attempting=False)
    return SourceStatus(source=plan.source, note=plan.note, needs_download=plan.kind == "download")


def stratified_indices(labels: np.ndarray | Sequence[int], n: int, seed: int = 0) -> np.ndarray:
    """Indices of `n` items with the classes as equally represented as the data allows.

    Every class gets ``n // k`` items (k classes) while it has enough; what a small class cannot
    fill goes to the others, and the last few places go to classes chosen at random. The same
    labels, `n` and `seed` always give the same indices, in shuffled order. When `n` is at least
    the number of labels, every index is returned (shuffled).
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"Labels must be a 1-D array, got shape {labels.shape}.")
    _check_limit(n, "n")
    _check_seed(seed)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    n = min(int(n), len(labels))
    quotas = _class_quotas(counts, n, rng)
    chosen = [rng.choice(np.flatnonzero(labels == value), size=quota, replace=False)
              for value, quota in zip(classes, quotas) if quota > 0]
    indices = np.concatenate(chosen) if chosen else np.empty(0, dtype=np.int64)
    return rng.permutation(indices).astype(np.int64)


def _class_quotas(counts: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
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


def _take(x: np.ndarray, y: np.ndarray, limit: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if limit is None:
        return x, y
    indices = stratified_indices(y, limit, seed)
    return _readonly(x[indices]), _readonly(y[indices])


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; choose one of {', '.join(DATASETS)}.")


def _check_limit(limit: int | None, what: str) -> None:
    if limit is None:
        return
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)):
        raise ValueError(f"{what} must be a whole number of images or None, got {limit!r}.")
    if limit < 1:
        raise ValueError(f"{what} must be at least 1 image, got {limit}.")


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"The seed must be a whole number of at least 0, got {seed!r}.")


def _readonly(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


# ---------------------------------------------------------------------------------------------
# Choosing a source.
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Plan:
    """The source chosen for one dataset; `kind` says which reader, `source` None if nowhere."""

    source: str | None
    kind: str  # "idx", "cifar_pickle", "cifar_folder", "mnist_npz", "download", "sample" or "none".
    location: Path | None
    note: str


def _offline() -> bool:
    return os.environ.get("CNNVIZ_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _data_dir() -> Path | None:
    value = os.environ.get("CNNVIZ_DATA_DIR", "").strip()
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    """cnnviz's disk cache: ``$CNNVIZ_CACHE_DIR``, or ``~/.cache/cnnviz`` when that is not set."""
    value = os.environ.get("CNNVIZ_CACHE_DIR", "").strip()
    return Path(value).expanduser() if value else Path.home() / ".cache" / "cnnviz"


def _keras_homes() -> list[Path]:
    """Where Keras keeps its cache, following Keras' own rules (``$KERAS_HOME``, ``~/.keras``, /tmp)."""
    value = os.environ.get("KERAS_HOME", "").strip()
    if value:
        home = Path(value).expanduser()
    else:
        base = Path.home()
        home = (base if os.access(base, os.W_OK) else Path("/tmp")) / ".keras"
    homes = [home]
    # Keras downloads into /tmp/.keras when its home exists but cannot be written.
    if home.exists() and not os.access(home, os.W_OK):
        homes.append(Path("/tmp/.keras"))
    return homes


def _find_idx_files(folder: Path) -> dict[str, Path] | str:
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


def _find_cifar_batches(folder: Path) -> str | None:
    """None when `folder` holds all six pickled CIFAR-10 batches, else the first missing one."""
    for batch in (*CIFAR_TRAIN_BATCHES, CIFAR_TEST_BATCH):
        if not (folder / batch).is_file():
            return batch
    return None


def _find_local(name: str) -> _Plan | str:
    """The plan for CNNVIZ_DATA_DIR, or the reason (a sentence fragment) why it cannot be used."""
    base = _data_dir()
    if base is None:
        return "CNNVIZ_DATA_DIR is not set"
    if not base.is_dir():
        return f"CNNVIZ_DATA_DIR points to {base}, which is not a folder"
    label = LABELS[name]
    if name in ("fashion_mnist", "mnist"):
        folder = base / ("fashion-mnist" if name == "fashion_mnist" else "mnist")
        if not folder.is_dir():
            return f"CNNVIZ_DATA_DIR ({base}) has no {folder.name}/ folder"
        files = _find_idx_files(folder)
        if isinstance(files, str):
            return f"{folder} lacks {files}"
        return _Plan("local", "idx", folder,
                     f"The standard {label} files are in CNNVIZ_DATA_DIR ({folder}), "
                     f"so they are read from there.")
    pickled = base / "cifar-10-batches-py"
    incomplete = None
    if pickled.is_dir():
        missing = _find_cifar_batches(pickled)
        if missing is None:
            return _Plan("local", "cifar_pickle", pickled,
                         f"The pickled CIFAR-10 batches are in CNNVIZ_DATA_DIR ({pickled}), "
                         f"so they are read from there.")
        incomplete = f"{pickled} lacks {missing}"
    folders = base / "cifar10"
    if (folders / "train").is_dir() and (folders / "test").is_dir():
        return _Plan("local", "cifar_folder", folders,
                     f"CIFAR-10 class folders of images are in CNNVIZ_DATA_DIR ({folders}), so they "
                     f"are decoded from there once and then read from a cache in "
                     f"{cache_dir() / 'datasets'}.")
    return incomplete or (f"CNNVIZ_DATA_DIR ({base}) has neither cifar-10-batches-py/ nor "
                          f"cifar10/train/ and cifar10/test/")


def _find_keras_cache(name: str) -> tuple[str, Path] | None:
    """(reader kind, location) of a dataset already in Keras' download cache, read without Keras."""
    for home in _keras_homes():
        datasets = home / "datasets"
        if name == "fashion_mnist":
            folder = datasets / "fashion-mnist"
            if folder.is_dir() and not isinstance(_find_idx_files(folder), str):
                return "idx", folder
        elif name == "mnist":
            path = datasets / "mnist.npz"
            if path.is_file():
                return "mnist_npz", path
        else:
            # Keras 3 extracts into cifar-10-batches-py-target/; Keras 2 extracted beside it.
            for folder in (datasets / "cifar-10-batches-py-target" / "cifar-10-batches-py",
                           datasets / "cifar-10-batches-py"):
                if folder.is_dir() and _find_cifar_batches(folder) is None:
                    return "cifar_pickle", folder
    return None


def _keras_installed() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("keras") is not None
    except (ImportError, ValueError):
        return False


def _download_blocked(name: str, allow_download: bool) -> str | None:
    """Why keras.datasets will not be asked to download `name` now (a fragment), or None."""
    if _offline():
        return "downloads are switched off (CNNVIZ_OFFLINE=1)"
    if not allow_download:
        return "this page does not download datasets"
    with _STATE_LOCK:
        if name in _DOWNLOAD_FAILURES:
            return _DOWNLOAD_FAILURES[name]
        if _NETWORK_FAILURE:
            return _NETWORK_FAILURE[0]
    if not _keras_installed():
        return "Keras is not installed, so nothing can be downloaded"
    return None


def _plan(name: str, *, allow_download: bool, attempting: bool = True) -> _Plan:
    """Choose the first source that has `name`, with a note saying why (see the module docstring)."""
    label = LABELS[name]
    local = _find_local(name)
    if isinstance(local, _Plan):
        return local
    local_reason = local
    cached = _find_keras_cache(name)
    if cached is not None:
        kind, location = cached
        return _Plan("keras", kind, location,
                     f"{_capitalize(local_reason)}, but {label} is already in the Keras cache "
                     f"({location}), so it is read from there without downloading.")
    blocked = _download_blocked(name, allow_download)
    if blocked is None:
        keras_datasets = _keras_homes()[0] / "datasets"
        action = (f"downloads {label} once and caches it" if attempting
                  else f"will download {label} on first use and cache it")
        return _Plan("keras", "download", keras_datasets,
                     f"{_capitalize(local_reason)}, so keras.datasets {action} in {keras_datasets}.")
    if name == "fashion_mnist" and BUNDLED_SAMPLE.is_file():
        n_train, n_test = _sample_counts()
        return _Plan("bundled sample", "sample", BUNDLED_SAMPLE,
                     f"{_capitalize(local_reason)} and {blocked}, so the bundled sample of "
                     f"{n_train:,} training and {n_test:,} test images is used.")
    return _Plan(None, "none", None, _unavailable_message(name, local_reason, blocked))


def _unavailable_message(name: str, local_reason: str, blocked: str) -> str:
    label = LABELS[name]
    if name == "cifar10":
        wanted = ("cifar-10-batches-py/ (the pickled batches) or cifar10/train/<class>/ and "
                  "cifar10/test/<class>/ image folders")
    else:
        folder = "fashion-mnist" if name == "fashion_mnist" else "mnist"
        wanted = f"{folder}/ with the four IDX files ({', '.join(f'{s}.gz' for s in IDX_FILES.values())})"
    internet = ("unset CNNVIZ_OFFLINE so that keras.datasets can download it" if _offline()
                else "allow internet access so that keras.datasets can download it")
    return (f"{label} is not available: {local_reason} and {blocked}. To use it, set CNNVIZ_DATA_DIR "
            f"to a folder holding {wanted}, or {internet}.")


def _capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


# ---------------------------------------------------------------------------------------------
# Loading the full dataset from the chosen source.
# ---------------------------------------------------------------------------------------------

def _load_full(name: str, *, allow_download: bool) -> Dataset:
    with _LOAD_LOCKS[name]:
        plan = _plan(name, allow_download=allow_download)
        dataset = _memory_get(_memory_key(name, plan))
        if dataset is None and plan.kind == "download":
            try:
                dataset = _make_dataset(name, _download(name), plan)
            except _DownloadFailed:
                plan = _plan(name, allow_download=allow_download)  # The next source, or none.
                dataset = _memory_get(_memory_key(name, plan))
            else:
                _memory_put(_memory_key(name, plan), dataset)
        if plan.source is None:
            raise DatasetUnavailable(plan.note)
        if dataset is None:
            dataset = _make_dataset(name, _read_plan(name, plan), plan)
            _memory_put(_memory_key(name, plan), dataset)
        if dataset.note != plan.note:
            # Same arrays, but the reason for choosing this source has changed (e.g. offline now).
            dataset = Dataset(name=name, x_train=dataset.x_train, y_train=dataset.y_train,
                              x_test=dataset.x_test, y_test=dataset.y_test,
                              class_names=dataset.class_names, source=plan.source, note=plan.note)
        return dataset


def _memory_key(name: str, plan: _Plan) -> tuple[str, str, str]:
    return name, plan.kind, str(plan.location)


_Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _make_dataset(name: str, arrays: _Arrays, plan: _Plan) -> Dataset:
    x_train, y_train, x_test, y_test = _normalize_arrays(name, arrays, str(plan.location))
    return Dataset(name=name, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                   class_names=CLASS_NAMES[name], source=plan.source or "", note=plan.note)


def _normalize_arrays(name: str, arrays: _Arrays, where: str) -> _Arrays:
    """Check and bring arrays into the Dataset form: uint8 NHWC images, 1-D int64 labels, read-only."""
    height, width, channels = IMAGE_SHAPES[name]
    result = []
    for split, x, y in (("training", arrays[0], arrays[1]), ("test", arrays[2], arrays[3])):
        x = np.asarray(x)
        y = np.asarray(y).reshape(-1)
        if x.ndim == 3 and channels == 1:
            x = x.reshape(*x.shape, 1)  # (N, 28, 28) -> (N, 28, 28, 1), a view.
        if x.shape[1:] != (height, width, channels):
            raise DatasetFormatError(
                f"The {split} images in {where} have shape {x.shape[1:]}, but {LABELS[name]} "
                f"images are {height}x{width}x{channels}.")
        if x.dtype != np.uint8:
            raise DatasetFormatError(f"The {split} images in {where} are {x.dtype}, not uint8 pixels.")
        if len(x) != len(y):
            raise DatasetFormatError(
                f"{where} has {len(x):,} {split} images but {len(y):,} labels; they must match.")
        if len(x) == 0:
            raise DatasetFormatError(f"{where} has no {split} images.")
        y = y.astype(np.int64)
        if y.min() < 0 or y.max() >= len(CLASS_NAMES[name]):
            raise DatasetFormatError(
                f"The {split} labels in {where} run from {y.min()} to {y.max()}, but {LABELS[name]} "
                f"labels are 0 to {len(CLASS_NAMES[name]) - 1}.")
        if x.flags.writeable:
            x.setflags(write=False)
        result.extend([x, _readonly(y)])
    return result[0], result[1], result[2], result[3]


def _read_plan(name: str, plan: _Plan) -> _Arrays:
    assert plan.location is not None  # Every plan with a source has a location.
    if plan.kind == "idx":
        return read_idx_folder(plan.location, image_size=IMAGE_SHAPES[name][:2])
    if plan.kind == "cifar_pickle":
        return read_cifar_batches(plan.location)
    if plan.kind == "cifar_folder":
        return _read_cifar_folders(plan.location)
    if plan.kind == "mnist_npz":
        return _read_npz(plan.location)
    if plan.kind == "sample":
        return _read_npz(plan.location)
    raise RuntimeError(f"No reader for source kind {plan.kind!r}.")


def _read_npz(path: Path) -> _Arrays:
    """Read the four arrays of a Keras-style .npz (x_train, y_train, x_test, y_test), no pickles."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in ("x_train", "y_train", "x_test", "y_test") if key not in archive]
            if missing:
                raise DatasetFormatError(f"{path} lacks the arrays {', '.join(missing)}.")
            return archive["x_train"], archive["y_train"], archive["x_test"], archive["y_test"]
    except DatasetFormatError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise DatasetFormatError(f"{path} is not a readable .npz file ({error}).") from error


def _sample_counts() -> tuple[int, int]:
    """(training, test) image counts of the bundled sample, read once from its label arrays."""
    with _STATE_LOCK:
        if _SAMPLE_COUNTS:
            return _SAMPLE_COUNTS[0]
    try:
        with np.load(BUNDLED_SAMPLE, allow_pickle=False) as archive:
            counts = (len(archive["y_train"]), len(archive["y_test"]))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        counts = (0, 0)
    with _STATE_LOCK:
        _SAMPLE_COUNTS[:] = [counts]
    return counts


# ---------------------------------------------------------------------------------------------
# Keras download (the only place TensorFlow may be imported).
# ---------------------------------------------------------------------------------------------

class _DownloadFailed(Exception):
    pass


def _keras_load_data(name: str) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Call ``keras.datasets.<name>.load_data()`` (imports Keras and so TensorFlow)."""
    import keras

    module = {"fashion_mnist": keras.datasets.fashion_mnist, "mnist": keras.datasets.mnist,
              "cifar10": keras.datasets.cifar10}[name]
    return module.load_data()


def _download(name: str) -> _Arrays:
    """Ask keras.datasets for `name` once per process, with a short socket timeout.

    A failure is remembered (for this dataset, and for every dataset when the network itself
    could not be reached), so a page never waits for the same timeout twice.
    """
    with _DOWNLOAD_LOCK:
        blocked = _download_blocked(name, allow_download=True)
        if blocked is not None:
            raise _DownloadFailed(blocked)
        previous_timeout = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_SECONDS)
        try:
            (x_train, y_train), (x_test, y_test) = _keras_load_data(name)
        except Exception as error:  # Any failure (network, disk, bad archive) means: no download.
            reason, network = _describe_download_error(error)
            with _STATE_LOCK:
                _DOWNLOAD_FAILURES[name] = reason
                if network and not _NETWORK_FAILURE:
                    _NETWORK_FAILURE.append("there is no internet (a download failed earlier in this session)")
            raise _DownloadFailed(reason) from error
        finally:
            socket.setdefaulttimeout(previous_timeout)
    return x_train, y_train, x_test, y_test


def _describe_download_error(error: BaseException) -> tuple[str, bool]:
    """A short reason fragment for a failed download, and whether the network was the cause."""
    text = " ".join(str(error).split())
    if len(text) > 120:
        text = text[:117] + "..."
    if isinstance(error, ImportError):
        return f"Keras could not be imported ({text})", False
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    network = any(isinstance(item, (OSError, TimeoutError)) for item in chain) or \
        "URL fetch failure" in str(error)
    if network:
        return "there is no internet (the download from keras.datasets failed)", True
    return f"the download failed ({text})", False


# ---------------------------------------------------------------------------------------------
# IDX files (Fashion-MNIST, MNIST).
# ---------------------------------------------------------------------------------------------

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


def read_idx_folder(folder: Path, *, image_size: tuple[int, int] = (28, 28)) -> _Arrays:
    """Read the four standard IDX files of a folder: (x_train, y_train, x_test, y_test)."""
    files = _find_idx_files(Path(folder))
    if isinstance(files, str):
        raise DatasetFormatError(f"{folder} lacks {files}.")
    x_train, y_train = read_idx_pair(files["train_images"], files["train_labels"], image_size=image_size)
    x_test, y_test = read_idx_pair(files["test_images"], files["test_labels"], image_size=image_size)
    return x_train, y_train, x_test, y_test


# ---------------------------------------------------------------------------------------------
# Pickled CIFAR-10 batches.
# ---------------------------------------------------------------------------------------------

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


def read_cifar_batches(folder: Path) -> _Arrays:
    """Read data_batch_1..5 and test_batch of a cifar-10-batches-py folder."""
    folder = Path(folder)
    missing = _find_cifar_batches(folder)
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
# Class-per-subfolder images: user folders/zips and CIFAR-10 as JPEG folders.
# ---------------------------------------------------------------------------------------------

def _is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _is_hidden(parts: Sequence[str]) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in parts)


def _group_by_class(relative_paths: Sequence[tuple[str, ...]], what: str) -> dict[str, list[int]]:
    """Group image paths (tuples of path parts) by class folder, after a shared top folder.

    Returns class name -> indices into `relative_paths`, classes and files sorted by name.
    Raises `DatasetFormatError` when there are no class folders or only one.
    """
    paths = list(relative_paths)
    depth = 0
    # Strip folders that every image shares (e.g. the zip's single top folder) while each
    # image still has at least a class folder and a file name below them.
    while paths and all(len(parts) - depth >= 3 for parts in paths) and \
            len({parts[depth] for parts in paths}) == 1:
        depth += 1
    groups: dict[str, list[int]] = {}
    for index, parts in enumerate(paths):
        if len(parts) - depth >= 2:
            groups.setdefault(parts[depth], []).append(index)
    if not groups:
        raise DatasetFormatError(
            f"{what} has no class subfolders with images: put the images in one folder per class "
            f"(e.g. horses/ and humans/), each holding .jpg or .png files.")
    if len(groups) == 1:
        only = next(iter(groups))
        raise DatasetFormatError(
            f"{what} has only one class folder ({only}/); a classifier needs at least two.")
    return {name: sorted(groups[name], key=lambda i: paths[i]) for name in sorted(groups)}


def _size_hw(image_size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        size = (int(image_size), int(image_size))
    elif isinstance(image_size, Sequence) and len(image_size) == 2 and all(
            isinstance(side, (int, np.integer)) and not isinstance(side, bool) for side in image_size):
        size = (int(image_size[0]), int(image_size[1]))
    else:
        raise ValueError(f"image_size must be a number of pixels or (height, width), got {image_size!r}.")
    if not all(1 <= side <= MAX_IMAGE_SIDE for side in size):
        raise ValueError(f"Each side of image_size must be between 1 and {MAX_IMAGE_SIDE} pixels, got {size}.")
    return size


def _decode_image(source: str | bytes, size_hw: tuple[int, int]) -> np.ndarray:
    """Decode one image file into RGB uint8 (H, W, 3), resized bilinearly to `size_hw`.

    Raises an exception for anything unreadable; images with more than `MAX_SOURCE_PIXELS`
    pixels are refused after reading only their header (decompression-bomb guard).
    """
    from PIL import Image

    height, width = size_hw
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    with Image.open(stream) as image:
        if image.width * image.height > MAX_SOURCE_PIXELS:
            raise ValueError(f"{image.width}x{image.height} pixels is too large")
        if image.format == "JPEG":
            image.draft("RGB", (width, height))  # Decode big JPEGs at a reduced scale.
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        if rgb.size != (width, height):
            rgb = rgb.resize((width, height), Image.Resampling.BILINEAR)
        array = np.asarray(rgb, dtype=np.uint8)
    if array.shape != (height, width, 3):
        raise ValueError(f"decoded to shape {array.shape}")
    return array


def _decode_all(sources: Sequence, read, size_hw: tuple[int, int],
                names: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decode every source into one preallocated array; returns (images, kept mask, skipped names).

    Decoding runs in this thread: with small images most of the time is Python-level work under
    the GIL, and a thread pool measured slower than a plain loop.
    """
    height, width = size_hw
    images = np.empty((len(sources), height, width, 3), dtype=np.uint8)
    kept = np.zeros(len(sources), dtype=bool)
    skipped: list[str] = []
    for index, source in enumerate(sources):
        try:
            images[index] = _decode_image(read(source), size_hw)
        except Exception:  # Unreadable (incl. Image.DecompressionBombError): skip and count it.
            skipped.append(names[index])
        else:
            kept[index] = True
    return images, kept, skipped


def load_image_folder(path_or_zip: str | os.PathLike | bytes | BinaryIO, *,
                      image_size: int | tuple[int, int]) -> ImageFolder:
    """Load a class-per-subfolder image dataset from a folder or a .zip (path, bytes or file object).

    Each subfolder is a class (sorted by name, like Keras' ``image_dataset_from_directory``);
    a single top folder around them, as zips often have, is looked through. Images are converted
    to RGB (grayscale ones too, so every dataset has 3 channels) and resized to `image_size`
    (an int for square images or (height, width)). Unreadable images and images over
    `MAX_SOURCE_PIXELS` pixels are skipped and counted. Raises `DatasetFormatError` for an empty
    tree, a single class or an unreadable archive.
    """
    size_hw = _size_hw(image_size)
    if isinstance(path_or_zip, (bytes, bytearray)):
        return _load_zip(io.BytesIO(bytes(path_or_zip)), size_hw, "The archive")
    if hasattr(path_or_zip, "read"):
        return _load_zip(path_or_zip, size_hw, "The archive")  # type: ignore[arg-type]
    path = Path(path_or_zip).expanduser()
    if path.is_dir():
        return _load_directory(path, size_hw)
    if path.is_file():
        return _load_zip(path, size_hw, str(path))
    raise DatasetFormatError(f"{path} does not exist; give a folder of class subfolders or a .zip of one.")


def _check_array_budget(count: int, size_hw: tuple[int, int], what: str) -> None:
    needed = count * size_hw[0] * size_hw[1] * 3
    if needed > MAX_FOLDER_ARRAY_BYTES:
        raise DatasetFormatError(
            f"{what} has {count:,} images; at {size_hw[0]}x{size_hw[1]} pixels they would need "
            f"{needed / 2**20:,.0f} MB of memory. Choose a smaller image size or fewer images.")


def _finish_folder(images: np.ndarray, kept: np.ndarray, labels: np.ndarray, class_names: list[str],
                   skipped: list[str], what: str) -> ImageFolder:
    images, labels = images[kept], labels[kept]
    present = np.unique(labels)
    if len(present) == 0:
        raise DatasetFormatError(f"None of the {len(kept):,} images in {what} could be read.")
    if len(present) < len(class_names):
        # Drop classes whose images were all unreadable, renumbering the rest.
        remap = np.full(len(class_names), -1, dtype=np.int64)
        remap[present] = np.arange(len(present))
        labels = remap[labels]
        class_names = [class_names[i] for i in present]
    if len(class_names) < 2:
        raise DatasetFormatError(
            f"Only the class {class_names[0]!r} in {what} has readable images; a classifier needs "
            f"at least two.")
    return ImageFolder(x=images, y=labels.astype(np.int64), class_names=tuple(class_names),
                       skipped=len(skipped), skipped_files=tuple(skipped[:20]))


def _load_directory(root: Path, size_hw: tuple[int, int]) -> ImageFolder:
    relative: list[tuple[str, ...]] = []
    for folder, subfolders, files in os.walk(root):
        parts = Path(folder).relative_to(root).parts
        subfolders[:] = sorted(sub for sub in subfolders if not _is_hidden((sub,)))
        relative.extend((*parts, file) for file in files
                        if _is_image_name(file) and not file.startswith("."))
    groups = _group_by_class(relative, str(root))
    class_names = list(groups)
    order = [index for name in class_names for index in groups[name]]
    labels = np.concatenate([np.full(len(groups[name]), label, dtype=np.int64)
                             for label, name in enumerate(class_names)])
    _check_array_budget(len(order), size_hw, str(root))
    paths = [str(root.joinpath(*relative[index])) for index in order]
    names = ["/".join(relative[index]) for index in order]
    images, kept, skipped = _decode_all(paths, lambda path: path, size_hw, names)
    return _finish_folder(images, kept, labels, class_names, skipped, str(root))


def _load_zip(file: str | Path | BinaryIO, size_hw: tuple[int, int], what: str) -> ImageFolder:
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
        raise DatasetFormatError(f"{what} is not a readable .zip archive ({error}).") from error
    with archive:
        members = [info for info in archive.infolist() if not info.is_dir()]
        if len(members) > MAX_ARCHIVE_MEMBERS:
            raise DatasetFormatError(
                f"{what} holds {len(members):,} files; at most {MAX_ARCHIVE_MEMBERS:,} are accepted.")
        members = [info for info in members
                   if _is_image_name(info.filename) and not _is_hidden(_zip_parts(info.filename))]
        total = sum(info.file_size for info in members)
        if total > MAX_ARCHIVE_BYTES:
            raise DatasetFormatError(
                f"{what} would unpack to {total / 2**20:,.0f} MB of images; at most "
                f"{MAX_ARCHIVE_BYTES / 2**20:,.0f} MB are accepted.")
        relative = [_zip_parts(info.filename) for info in members]
        groups = _group_by_class(relative, what)
        class_names = list(groups)
        order = [index for name in class_names for index in groups[name]]
        labels = np.concatenate([np.full(len(groups[name]), label, dtype=np.int64)
                                 for label, name in enumerate(class_names)])
        _check_array_budget(len(order), size_hw, what)

        def read(info: zipfile.ZipInfo) -> bytes:
            if info.file_size > MAX_MEMBER_BYTES:
                raise ValueError(f"{info.file_size:,} bytes is too large for one image")
            return archive.read(info)

        images, kept, skipped = _decode_all([members[i] for i in order], read, size_hw,
                                            [members[i].filename for i in order])
    return _finish_folder(images, kept, labels, class_names, skipped, what)


def _zip_parts(filename: str) -> tuple[str, ...]:
    return tuple(part for part in filename.replace("\\", "/").split("/") if part not in ("", "."))


def _folder_fingerprint(root: Path) -> tuple[str, dict[str, dict[str, list[str]]]]:
    """A cache key for a cifar10/{train,test}/<class>/ tree and its file lists, from one scan.

    The key combines the resolved path, the number of image files and the newest modification
    time of any file or folder, so adding, removing or replacing images invalidates the cache.
    """
    newest = 0
    count = 0
    listing: dict[str, dict[str, list[str]]] = {}
    for split in ("train", "test"):
        split_dir = root / split
        listing[split] = {}
        newest = max(newest, split_dir.stat().st_mtime_ns)
        with os.scandir(split_dir) as entries:
            class_dirs = sorted(entry.name for entry in entries
                                if entry.is_dir() and not entry.name.startswith("."))
        for class_name in class_dirs:
            class_dir = split_dir / class_name
            newest = max(newest, class_dir.stat().st_mtime_ns)
            files = []
            with os.scandir(class_dir) as entries:
                for entry in entries:
                    if entry.is_file() and _is_image_name(entry.name) and not entry.name.startswith("."):
                        files.append(entry.name)
                        newest = max(newest, entry.stat().st_mtime_ns)
            count += len(files)
            listing[split][class_name] = sorted(files)
    text = f"{_FOLDER_CACHE_VERSION}|{root.resolve()}|{count}|{newest}"
    return hashlib.sha256(text.encode()).hexdigest()[:20], listing


def _read_cifar_folders(root: Path) -> _Arrays:
    """CIFAR-10 from cifar10/{train,test}/<class>/*.jpg|png, decoded once and cached on disk.

    The cache is a folder of four .npy files, memory-mapped read-only on later loads, so a
    second load costs one directory scan instead of 60,000 JPEG decodes.
    """
    key, listing = _folder_fingerprint(root)
    cached = cache_dir() / "datasets" / f"cifar10-folders-{key}"
    arrays = _read_array_cache(cached)
    if arrays is not None:
        return arrays
    canonical = {name.lower(): label for label, name in enumerate(CLASS_NAMES["cifar10"])}
    decoded: list[np.ndarray] = []
    for split in ("train", "test"):
        classes = listing[split]
        unknown = sorted(name for name in classes if name.lower() not in canonical)
        missing = sorted(set(canonical) - {name.lower() for name in classes})
        if unknown or missing:
            raise DatasetFormatError(
                f"{root / split} must hold one folder per CIFAR-10 class "
                f"({', '.join(CLASS_NAMES['cifar10'])}); "
                + (f"unknown: {', '.join(unknown)}" if unknown else f"missing: {', '.join(missing)}") + ".")
        paths = [str(root / split / name / file) for name in sorted(classes) for file in classes[name]]
        if not paths:
            raise DatasetFormatError(f"{root / split} has class folders but no images in them.")
        labels = np.concatenate([np.full(len(classes[name]), canonical[name.lower()], dtype=np.int64)
                                 for name in sorted(classes)])
        images, kept, skipped = _decode_all(paths, lambda path: path, (32, 32), paths)
        if len(skipped) == len(paths):
            raise DatasetFormatError(f"None of the images in {root / split} could be read.")
        decoded.extend([images[kept], labels[kept]])
    x_train, y_train, x_test, y_test = decoded
    _write_array_cache(cached, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    # Prefer the memory-mapped copy: the operating system can share and drop its pages, which
    # keeps the app's own memory small on a 1 GB host.
    return _read_array_cache(cached) or (x_train, y_train, x_test, y_test)


_CACHE_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


def _read_array_cache(folder: Path) -> _Arrays | None:
    """The four arrays of a cache folder, memory-mapped read-only, or None if absent or damaged."""
    try:
        loaded = [np.asarray(np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False))
                  for name in _CACHE_ARRAYS]
    except (OSError, ValueError, EOFError):
        return None
    return loaded[0], loaded[1], loaded[2], loaded[3]


def _write_array_cache(folder: Path, **arrays: np.ndarray) -> None:
    """Save arrays as .npy files in `folder`, atomically; a cache that cannot be written is skipped."""
    import shutil

    temporary: Path | None = None
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        temporary = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
        for name, array in arrays.items():
            np.save(temporary / f"{name}.npy", array, allow_pickle=False)
        os.rename(temporary, folder)  # Fails if another process finished first; theirs is kept.
        temporary = None
    except OSError:
        pass
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
