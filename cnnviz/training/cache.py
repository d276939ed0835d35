"""The disk cache of finished runs, under `$CNNVIZ_CACHE_DIR/training` (default `~/.cache/cnnviz`).

A restarted server (or a lecture after `python -m cnnviz warmup`) reuses models trained earlier.
An entry is found by `config.key()` (a hash of the settings) and is only valid for the data it
was trained on: its result.json records `data_source` (see `inputs.data_source`), and an entry
whose source differs from the current one (say trained on the bundled sample before the full
dataset became available) is ignored, trained again and overwritten. Entries written before the
source was recorded are ignored too. Only finished runs are stored.

Every lookup takes the data as `data` (the dataset object the run uses) or `source` (its source,
already resolved by the caller): the source is resolved once per request, not per lookup.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from cnnviz.data import cache as data_cache
from cnnviz.training.config import ENGINE_VERSION, TrainConfig
from cnnviz.training.inputs import data_source
from cnnviz.training.results import STOPPED_REASONS, TrainResult

# Finished runs kept on disk (oldest pruned first): the warm-up's own models (one per variant and seed
# of every page, 62 today) with room for at least as many runs of a class.
MAX_DISK_ENTRIES = 200


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
        return TrainResult(config=config, model=model, history=history,
                           test_accuracy=float(meta["test_accuracy"]), test_loss=float(meta["test_loss"]),
                           stopped_reason=meta["stopped_reason"], class_names=tuple(meta["class_names"]),
                           input_shape=tuple(meta["input_shape"]), seconds=float(meta["seconds"]),
                           from_cache=True, data_source=str(meta["data_source"]), _data=data)
    except Exception:  # noqa: BLE001 - a corrupted entry is ignored and trained again.
        return None


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
        }
        (tmp / "result.json").write_text(json.dumps(meta, default=float))
        final = root / key
        if final.exists():
            shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        _prune(root)
        return final
    except Exception:  # noqa: BLE001 - a full or read-only disk must not break training.
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        return None


def _prune(root: Path) -> None:
    entries = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                     key=lambda p: p.stat().st_mtime)
    for old in entries[:-MAX_DISK_ENTRIES]:
        shutil.rmtree(old, ignore_errors=True)
