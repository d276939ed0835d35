"""Where a dataset is read from, and why: the local folder, Keras, or the bundled sample.

For a dataset's spec, `plan` tries in order:

1. the folder named by the environment variable ``CNNVIZ_DATA_DIR``, with the file layouts of
   `DatasetSpec.local` (e.g. ``fashion-mnist/`` with the four IDX files, ``cifar-10-batches-py/``
   with the pickled batches, or ``cifar10/{train,test}/<class>/`` image folders);
2. Keras: first its download cache read directly (``$KERAS_HOME`` or ``~/.keras``, without
   importing Keras, layouts of `DatasetSpec.keras_cache`), then, when allowed,
   ``keras.datasets.<keras_dataset>.load_data()``, tried once per process with a short
   network timeout (``CNNVIZ_OFFLINE=1`` switches downloads off); before a download is planned,
   a TCP connection to the dataset's `download_host` is opened and closed again (nothing is
   sent; a host that answered is remembered for the process, one that did not for
   `REACH_MEMORY_SECONDS`, so that a returning network is noticed), so that a server without
   internet says so instead of promising a download;
3. the sample bundled with cnnviz (`DatasetSpec.bundled_sample`), when the dataset has one.

Every plan carries a `note`, one sentence saying why that source was chosen. Nothing here
imports TensorFlow except `download`.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnviz import settings
from cnnviz.data import cache, folders, readers
from cnnviz.data.dataset import Arrays
from cnnviz.data.dataset_spec import DatasetSpec
from cnnviz.data.registry import spec as spec_of

SOURCES: tuple[str, ...] = ("local", "keras", "bundled sample")

DOWNLOAD_TIMEOUT_SECONDS = 10.0
# How long the reachability check of a download host may take, and how long "unreachable" is kept.
REACH_TIMEOUT_SECONDS = 2.0
REACH_MEMORY_SECONDS = 300.0


@dataclass(frozen=True)
class SourceStatus:
    """Where `load` would take a dataset from right now, and why (`source` is None if nowhere).

    `needs_download` is True when loading would first download the dataset through Keras.
    """

    source: str | None
    note: str
    needs_download: bool = False


@dataclass(frozen=True)
class Plan:
    """The source chosen for one dataset; `kind` says which reader, `source` None if nowhere.

    `kind` is a layout format ("idx", "cifar_pickle", "class_folders", "npz"), or "download",
    "sample" or "none".
    """

    source: str | None
    kind: str
    location: Path | None
    note: str


# ---------------------------------------------------------------------------------------------
# Module state: what failed to download. Streamlit serves several sessions from threads of one
# process, so every access goes through a lock.
# ---------------------------------------------------------------------------------------------

_STATE_LOCK = threading.Lock()
_DOWNLOAD_LOCK = threading.Lock()
_DOWNLOAD_FAILURES: dict[str, str] = {}  # Dataset name -> why its download failed.
_NETWORK_FAILURE: list[str] = []  # Set once the internet could not be reached.
_SAMPLE_COUNTS: dict[Path, tuple[int, int]] = {}  # (training, test) sizes of bundled samples.
_REACH: dict[str, tuple[float, str | None]] = {}  # Download host -> (when checked, why unreachable or None).


def forget() -> None:
    """Forget failed downloads and sample sizes (for tests, or after the network came back)."""
    with _STATE_LOCK:
        _DOWNLOAD_FAILURES.clear()
        _NETWORK_FAILURE.clear()
        _SAMPLE_COUNTS.clear()
        _REACH.clear()


# ---------------------------------------------------------------------------------------------
# The environment.
# ---------------------------------------------------------------------------------------------

def offline() -> bool:
    """True when ``CNNVIZ_OFFLINE`` switches downloads off (read by `cnnviz.settings`)."""
    return settings.offline()


def data_dir() -> Path | None:
    """The folder named by ``CNNVIZ_DATA_DIR``, or None when it is not set (read by `cnnviz.settings`)."""
    return settings.data_dir()


def keras_homes() -> list[Path]:
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


# ---------------------------------------------------------------------------------------------
# File layouts: how each is recognised, described and read.
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Format:
    present: Callable[[Path], bool]  # The layout is there (perhaps incomplete).
    missing: Callable[[Path], str | None]  # Why it is incomplete (a fragment), None when complete.
    noun: Callable[[str], str]  # The layout in "CNNVIZ_DATA_DIR has no ...".
    wanted: Callable[[str], str]  # The layout in "set CNNVIZ_DATA_DIR to a folder holding ...".
    found: Callable[[DatasetSpec, Path], str]  # The note when CNNVIZ_DATA_DIR has it.
    read: Callable[[DatasetSpec, Path], Arrays]


def _idx_missing(folder: Path) -> str | None:
    files = readers.find_idx_files(folder)
    return f"{folder} lacks {files}" if isinstance(files, str) else None


def _cifar_missing(folder: Path) -> str | None:
    batch = readers.find_cifar_batches(folder)
    return None if batch is None else f"{folder} lacks {batch}"


_IDX_FILE_LIST = ", ".join(f"{stem}.gz" for stem in readers.IDX_FILES.values())

_FORMATS: dict[str, _Format] = {
    "idx": _Format(
        present=Path.is_dir, missing=_idx_missing, noun=lambda path: f"{path}/",
        wanted=lambda path: f"{path}/ with the four IDX files ({_IDX_FILE_LIST})",
        found=lambda spec, folder: (f"The standard {spec.label} files are in CNNVIZ_DATA_DIR ({folder}), "
                                    f"so they are read from there."),
        read=lambda spec, folder: readers.read_idx_folder(folder, image_size=spec.image_size)),
    "cifar_pickle": _Format(
        present=Path.is_dir, missing=_cifar_missing, noun=lambda path: f"{path}/",
        wanted=lambda path: f"{path}/ (the pickled batches)",
        found=lambda spec, folder: (f"The pickled {spec.label} batches are in CNNVIZ_DATA_DIR ({folder}), "
                                    f"so they are read from there."),
        read=lambda spec, folder: readers.read_cifar_batches(folder)),
    "class_folders": _Format(
        present=lambda folder: (folder / "train").is_dir() and (folder / "test").is_dir(),
        missing=lambda folder: None, noun=lambda path: f"{path}/train/ and {path}/test/",
        wanted=lambda path: f"{path}/train/<class>/ and {path}/test/<class>/ image folders",
        found=lambda spec, folder: (f"{spec.label} class folders of images are in CNNVIZ_DATA_DIR ({folder}), "
                                    f"so they are decoded from there once and then read from a cache in "
                                    f"{cache.datasets_cache_dir()}."),
        read=lambda spec, folder: folders.read_class_folders(folder, spec)),
    "npz": _Format(
        present=Path.is_file, missing=lambda path: None, noun=lambda path: path,
        wanted=lambda path: f"{path} (the arrays x_train, y_train, x_test, y_test)",
        found=lambda spec, path: (f"The {spec.label} arrays are in CNNVIZ_DATA_DIR ({path}), "
                                  f"so they are read from there."),
        read=lambda spec, path: readers.read_npz(path)),
}


# ---------------------------------------------------------------------------------------------
# Choosing a source.
# ---------------------------------------------------------------------------------------------

def source_status(name: str) -> SourceStatus:
    """Which source `load(name)` would use and why, checked without loading or downloading anything."""
    spec = spec_of(name)
    if spec.class_folders:
        source, note = folders.status(spec)
        return SourceStatus(source=source, note=note)
    chosen = plan(spec, allow_download=True, attempting=False)
    return SourceStatus(source=chosen.source, note=chosen.note, needs_download=chosen.kind == "download")


def plan(spec: DatasetSpec, *, allow_download: bool, attempting: bool = True) -> Plan:
    """Choose the first source that has the dataset, with a note saying why (see the module docstring).

    `attempting` words the note for a download about to happen (True) or a status (False).
    """
    label = spec.label
    local = _find_local(spec)
    if isinstance(local, Plan):
        return local
    local_reason = local
    cached = _find_keras_cache(spec)
    if cached is not None:
        kind, location = cached
        return Plan("keras", kind, location,
                    f"{_capitalize(local_reason)}, but {label} is already in the Keras cache "
                    f"({location}), so it is read from there without downloading.")
    blocked = _download_blocked(spec, allow_download)
    if blocked is None:
        keras_datasets = keras_homes()[0] / "datasets"
        action = (f"downloads {label} once and caches it" if attempting
                  else f"will download {label} on first use and cache it")
        return Plan("keras", "download", keras_datasets,
                    f"{_capitalize(local_reason)}, so keras.datasets {action} in {keras_datasets}.")
    sample = spec.bundled_sample
    if sample is not None and sample.is_file():
        n_train, n_test = _sample_counts(sample)
        return Plan("bundled sample", "sample", sample,
                    f"{_capitalize(local_reason)} and {blocked}, so the bundled sample of "
                    f"{n_train:,} training and {n_test:,} test images is used.")
    return Plan(None, "none", None, _unavailable_message(spec, local_reason, blocked))


def _find_local(spec: DatasetSpec) -> Plan | str:
    """The plan for CNNVIZ_DATA_DIR, or the reason (a sentence fragment) why it cannot be used."""
    base = data_dir()
    if base is None:
        return "CNNVIZ_DATA_DIR is not set"
    if not base.is_dir():
        return f"CNNVIZ_DATA_DIR points to {base}, which is not a folder"
    incomplete: str | None = None
    for layout in spec.local:
        form = _FORMATS[layout.format]
        location = base / layout.path
        if not form.present(location):
            continue
        missing = form.missing(location)
        if missing is None:
            return Plan("local", layout.format, location, form.found(spec, location))
        incomplete = incomplete or missing
    if incomplete is not None:
        return incomplete
    nouns = [_FORMATS[layout.format].noun(layout.path) for layout in spec.local]
    if len(nouns) == 1:
        return f"CNNVIZ_DATA_DIR ({base}) has no {nouns[0]}" + (" folder" if nouns[0].endswith("/") else "")
    if len(nouns) == 2:
        return f"CNNVIZ_DATA_DIR ({base}) has neither {nouns[0]} nor {nouns[1]}"
    return f"CNNVIZ_DATA_DIR ({base}) has none of {', '.join(nouns)}"


def _find_keras_cache(spec: DatasetSpec) -> tuple[str, Path] | None:
    """(layout format, location) of a dataset already in Keras' download cache, read without Keras."""
    for home in keras_homes():
        for layout in spec.keras_cache:
            location = home / "datasets" / layout.path
            form = _FORMATS[layout.format]
            if form.present(location) and form.missing(location) is None:
                return layout.format, location
    return None


def _keras_installed() -> bool:
    try:
        return importlib.util.find_spec("keras") is not None
    except (ImportError, ValueError):
        return False


def _download_blocked(spec: DatasetSpec, allow_download: bool) -> str | None:
    """Why keras.datasets will not be asked to download the dataset now (a fragment), or None."""
    if offline():
        return "downloads are switched off (CNNVIZ_OFFLINE=1)"
    if not allow_download:
        return "this page does not download datasets"
    if spec.keras_dataset is None:
        return f"keras.datasets does not offer {spec.label}"
    with _STATE_LOCK:
        if spec.name in _DOWNLOAD_FAILURES:
            return _DOWNLOAD_FAILURES[spec.name]
        if _NETWORK_FAILURE:
            return _NETWORK_FAILURE[0]
    if not _keras_installed():
        return "Keras is not installed, so nothing can be downloaded"
    return _host_unreachable(spec.download_host)


def _host_unreachable(host: str | None) -> str | None:
    """Why the download host cannot be reached (a fragment), or None; see the module docstring."""
    if host is None:
        return None
    now = time.monotonic()
    with _STATE_LOCK:
        known = _REACH.get(host)
    if known is not None and (known[1] is None or now - known[0] < REACH_MEMORY_SECONDS):
        return known[1]
    reason = None if _reach(host, REACH_TIMEOUT_SECONDS) else \
        f"there is no internet ({host}, where keras.datasets downloads it from, cannot be reached)"
    with _STATE_LOCK:
        _REACH[host] = (now, reason)
    return reason


def host_reachable(host: str) -> bool:
    """Whether `host` answers on port 443, checked and remembered as for the dataset downloads
    (at most `REACH_TIMEOUT_SECONDS`; used by `cnnviz.architecture.backbones` for ImageNet weights)."""
    return _host_unreachable(host) is None


def _reach(host: str, timeout: float) -> bool:
    """True when a TCP connection to `host` port 443 opens within `timeout` seconds (then closed, nothing sent).

    The connection runs in a daemon thread so that a slow name lookup cannot hold the page longer.
    """
    opened: list[bool] = []

    def connect() -> None:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            opened.append(True)
        except OSError:
            opened.append(False)

    thread = threading.Thread(target=connect, name=f"cnnviz-reach-{host}", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(opened and opened[0])


def _unavailable_message(spec: DatasetSpec, local_reason: str, blocked: str) -> str:
    wanted = " or ".join(_FORMATS[layout.format].wanted(layout.path) for layout in spec.local)
    message = f"{spec.label} is not available: {local_reason} and {blocked}. To use it, set CNNVIZ_DATA_DIR " \
              f"to a folder holding {wanted}"
    if spec.keras_dataset is None:
        return message + "."
    internet = ("unset CNNVIZ_OFFLINE so that keras.datasets can download it" if offline()
                else "allow internet access so that keras.datasets can download it")
    return f"{message}, or {internet}."


def _capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


def _sample_counts(path: Path) -> tuple[int, int]:
    """(training, test) image counts of a bundled sample, read once from its label arrays."""
    with _STATE_LOCK:
        if path in _SAMPLE_COUNTS:
            return _SAMPLE_COUNTS[path]
    counts = readers.npz_counts(path)
    with _STATE_LOCK:
        _SAMPLE_COUNTS[path] = counts
    return counts


# ---------------------------------------------------------------------------------------------
# Reading the chosen source.
# ---------------------------------------------------------------------------------------------

def read(spec: DatasetSpec, chosen: Plan) -> Arrays:
    """The arrays of a plan's files (not for "download" or "none" plans)."""
    if chosen.location is None:
        raise RuntimeError(f"The plan {chosen.kind!r} has no files to read.")
    if chosen.kind == "sample":
        return readers.read_npz(chosen.location)
    if chosen.kind not in _FORMATS:
        raise RuntimeError(f"No reader for source kind {chosen.kind!r}.")
    return _FORMATS[chosen.kind].read(spec, chosen.location)


# ---------------------------------------------------------------------------------------------
# Keras download (the only place TensorFlow may be imported).
# ---------------------------------------------------------------------------------------------

class DownloadFailed(Exception):
    """keras.datasets could not deliver the dataset; the reason is remembered for this process."""


def _keras_load_data(name: str) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Call ``keras.datasets.<module>.load_data()`` for a dataset (imports Keras and so TensorFlow)."""
    import keras

    module = getattr(keras.datasets, str(spec_of(name).keras_dataset))
    return module.load_data()


def download(spec: DatasetSpec) -> Arrays:
    """Ask keras.datasets for the dataset once per process, with a short socket timeout.

    A failure is remembered (for this dataset, and for every dataset when the network itself
    could not be reached), so a page never waits for the same timeout twice. Raises
    `DownloadFailed`.
    """
    with _DOWNLOAD_LOCK:
        blocked = _download_blocked(spec, allow_download=True)
        if blocked is not None:
            raise DownloadFailed(blocked)
        previous_timeout = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_SECONDS)
        try:
            (x_train, y_train), (x_test, y_test) = _keras_load_data(spec.name)
        except Exception as error:  # Any failure (network, disk, bad archive) means: no download.
            reason, network = _describe_download_error(error)
            with _STATE_LOCK:
                _DOWNLOAD_FAILURES[spec.name] = reason
                if network and not _NETWORK_FAILURE:
                    _NETWORK_FAILURE.append("there is no internet (a download failed earlier in this session)")
            raise DownloadFailed(reason) from error
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

