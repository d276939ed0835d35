"""The disk cache of finished runs, under `$CNNVIZ_CACHE_DIR/training` (default `~/.cache/cnnviz`).

A restarted server (or a lecture after `python -m cnnviz warmup`) reuses models trained earlier.
An entry is found by `config.key()` (a hash of the settings) and is only valid for the data it
was trained on: its result.json records `data_source` (see `inputs.data_source`), and an entry
whose source differs from the current one (say trained on the bundled sample before the full
dataset became available) is ignored, trained again and overwritten. Entries written before the
source was recorded are ignored too. Only finished runs are stored.

Every lookup takes the data as `data` (the dataset object the run uses) or `source` (its source,
already resolved by the caller): the source is resolved once per request, not per lookup.

Pruning goes by last use, not by age: storing or loading an entry touches its `last_used` file,
and the least recently used entries go first. Entries the warm-up pinned (`pin`: a `pinned`
file) have a budget of their own, so however many runs a class trains, they never evict the
lecture's pre-trained models. `entry_lock` is a lock per entry (an `fcntl` lock on a file in
`.locks/`, released by the system when its process dies, so a killed warm-up leaves no stale lock)
that lets two warm-ups at once share the work instead of training each model twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from cnnviz.data import cache as data_cache
from cnnviz.training.config import ENGINE_VERSION, TrainConfig
from cnnviz.training.diagnostics import TrainingRecord
from cnnviz.training.inputs import data_source
from cnnviz.training.results import STOPPED_REASONS, TrainResult

# Finished runs of students kept on disk (least recently used pruned first), about 130 kB each.
MAX_DISK_ENTRIES = 200
# Entries the warm-up pinned, a budget of their own (the whole warm-up, 62 models today, and its
# tiny variant, several times over): student runs never count against it.
MAX_PINNED_ENTRIES = 200
LAST_USED_FILE = "last_used"
PINNED_FILE = "pinned"
LOCKS_DIR = ".locks"
# A temporary entry folder older than this belongs to a store that was killed half-way.
STALE_TEMP_SECONDS = 3600.0


def cache_dir() -> Path:
    """`$CNNVIZ_CACHE_DIR/training` (default `~/.cache/cnnviz/training`)."""
    return data_cache.cache_dir() / "training"


def _entry_meta(config: TrainConfig, data: Any = None, source: str | None = None) -> dict[str, Any] | None:
    """The result.json of this config's entry if it is valid for the current data, else None."""
    meta_path = cache_dir() / config.key() / "result.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("key") != config.key():
        return None
    if meta.get("stopped_reason") not in STOPPED_REASONS or "data_source" not in meta:
        return None
    expected = source if source is not None else data_source(config, data)
    return meta if meta["data_source"] == expected else None


def is_cached(config: TrainConfig, *, data: Any = None, source: str | None = None) -> bool:
    """Whether the disk cache holds a finished run of this config on the current data (no model is loaded)."""
    return _entry_meta(config, data, source) is not None


def load_cached(config: TrainConfig, *, data: Any = None, source: str | None = None) -> TrainResult | None:
    """The finished result stored on disk for this config, or None (missing or unreadable entries,
    or entries trained on other data: `data` as for `inputs.data_source`, or its `source`)."""
    model_path = cache_dir() / config.key() / "model.keras"
    meta = _entry_meta(config, data, source)
    if meta is None or not model_path.is_file():
        return None
    try:
        import keras

        model = keras.models.load_model(model_path, compile=False)
        history = {name: [float(v) for v in values] for name, values in meta["history"].items()}
        result = TrainResult(config=config, model=model, history=history,
                             test_accuracy=float(meta["test_accuracy"]), test_loss=float(meta["test_loss"]),
                             stopped_reason=meta["stopped_reason"], class_names=tuple(meta["class_names"]),
                             input_shape=tuple(meta["input_shape"]), seconds=float(meta["seconds"]),
                             from_cache=True, data_source=str(meta["data_source"]), _data=data,
                             test_hits=_hits(meta.get("test_hits")),
                             training_record=TrainingRecord.from_json(meta.get("training_record")))
    except Exception:  # noqa: BLE001 - a corrupted entry is ignored and trained again.
        return None
    _touch(model_path.parent / LAST_USED_FILE)
    return result


def _hits(text: Any) -> np.ndarray | None:
    """The stored per-image hits ("1" right, "0" wrong) as booleans; None when absent or malformed."""
    if not isinstance(text, str) or not text or set(text) - {"0", "1"}:
        return None
    return np.frombuffer(text.encode("ascii"), dtype=np.uint8) == ord("1")


def store_cached(result: TrainResult) -> Path | None:
    """Write a result to the disk cache (atomically); returns the entry directory or None on failure."""
    key = result.config.key()
    root = cache_dir()
    tmp: Path | None = None
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root))
        with result._lock:
            result.model.save(tmp / "model.keras")
        meta = {
            "key": key, "engine": ENGINE_VERSION, "config": result.config.to_json(),
            "history": result.history, "test_accuracy": result.test_accuracy,
            "test_loss": result.test_loss, "stopped_reason": result.stopped_reason,
            "class_names": list(result.class_names), "input_shape": list(result.input_shape),
            "seconds": result.seconds, "data_source": result.data_source,
            # One character per test image, "1" where the final evaluation was right.
            "test_hits": None if result.test_hits is None else "".join("1" if hit else "0" for hit in result.test_hits),
            "training_record": None if result.training_record is None else result.training_record.to_json(),
        }
        (tmp / "result.json").write_text(json.dumps(meta, default=float))
        final = root / key
        # A pinned entry stays pinned when it is trained again (say on other data).
        if (final / PINNED_FILE).exists():
            (tmp / PINNED_FILE).touch()
        (tmp / LAST_USED_FILE).touch()
        if final.exists():
            shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        _prune(root)
        return final
    except Exception:  # noqa: BLE001 - a full or read-only disk must not break training.
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        return None


def _touch(path: Path) -> None:
    """Set a marker file's time to now (creating it); a read-only cache is left as it is."""
    with contextlib.suppress(OSError):
        path.touch()


def last_used(entry: Path) -> float:
    """When an entry was last stored or loaded (its `last_used` file; older entries: result.json)."""
    for name in (LAST_USED_FILE, "result.json"):
        with contextlib.suppress(OSError):
            return (entry / name).stat().st_mtime
    try:
        return entry.stat().st_mtime
    except OSError:
        return 0.0


def pin(config: TrainConfig) -> bool:
    """Pin this config's entry (the warm-up's models): pruning student runs never removes it.
    Returns False when there is no entry or the pin cannot be written."""
    entry = cache_dir() / config.key()
    if not (entry / "result.json").is_file():
        return False
    try:
        (entry / PINNED_FILE).touch()
    except OSError:
        return False
    return True


def is_pinned(config: TrainConfig) -> bool:
    """Whether this config's entry is pinned by the warm-up."""
    return (cache_dir() / config.key() / PINNED_FILE).is_file()


def unwritable_reason() -> str:
    """Why nothing can be stored in the disk cache ("" when a test file can be written there)."""
    root = cache_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".probe-"):
            pass
    except OSError as error:
        return f"{root} cannot be written ({error.strerror or type(error).__name__}: {error.filename or root})"
    return ""


@contextlib.contextmanager
def entry_lock(config: TrainConfig, *, blocking: bool = True) -> Iterator[bool]:
    """Hold the lock of this config's entry for the `with` block; yields whether it was acquired
    (always True when `blocking`). Held by one process at a time; a process that dies releases
    it. Raises OSError when the lock file cannot be created (an unwritable cache). Without
    `fcntl` (Windows) there is no lock: warm-ups there do not coordinate."""
    try:
        import fcntl
    except ImportError:
        yield True
        return
    folder = cache_dir() / LOCKS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(folder / f"{config.key()}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        with contextlib.suppress(OSError):  # Who holds it, for a person looking at the folder.
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        try:
            yield True
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)


def _prune(root: Path) -> None:
    """Remove the least recently used entries beyond the budgets (pinned entries have their own),
    and temporary folders left by stores that were killed half-way."""
    now = time.time()
    pinned: list[Path] = []
    unpinned: list[Path] = []
    for path in root.iterdir():
        if not path.is_dir() or path.name == LOCKS_DIR:
            continue
        if path.name.startswith("."):
            with contextlib.suppress(OSError):
                if now - path.stat().st_mtime > STALE_TEMP_SECONDS:
                    shutil.rmtree(path, ignore_errors=True)
            continue
        (pinned if (path / PINNED_FILE).exists() else unpinned).append(path)
    for entries, budget in ((unpinned, MAX_DISK_ENTRIES), (pinned, MAX_PINNED_ENTRIES)):
        entries.sort(key=last_used)
        for old in entries[:max(0, len(entries) - budget)]:
            shutil.rmtree(old, ignore_errors=True)
