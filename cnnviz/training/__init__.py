"""The training engine: one frozen `TrainConfig` in, one `TrainResult` (model + history) out.

Every page that trains goes through `train(config, on_progress)`. The engine

- builds the model only through `cnnviz.architecture.build_keras_model`;
- loads images with `cnnviz.data.load`, scales them to float32 in [0, 1] and uses sparse integer
  labels (sparse categorical cross-entropy is the seeds' one-hot categorical cross-entropy);
- validates on the test split after every epoch, as the seeds do;
- reports progress at least every ~0.5 s and stops cleanly when the callback returns False,
  or by itself when the loss becomes NaN or infinite, or when the mean loss over a stretch of
  at least `DIVERGENCE_WINDOW` images exceeds `divergence_threshold(k)` = 10 x ln(k), ten times
  the loss of guessing among k classes ("diverged", see `_Reporter`);
- with `fast=True` (the default) reaches a given accuracy several times sooner than the seeds'
  plain `model.fit` (bench/train_speed.py): its own compiled loop over in-memory uint8 tensors
  runs several batches per graph call (`_fit_fast`), and the learning rate warms up briefly
  then follows a cosine decay to the end of the last epoch (`_fast_schedule`);
  `fast=False` is a plain `model.fit` with a constant learning rate;
- runs at most `CNNVIZ_MAX_TRAINING_JOBS` trainings at once (`cnnviz.training.queue`), waiting in
  line with phase "waiting"; `TrainingJob` runs one in a background thread for Streamlit pages;
- stores finished results on disk under `$CNNVIZ_CACHE_DIR` (default `~/.cache/cnnviz`),
  so a restarted server reuses models trained earlier.

TensorFlow and Keras are imported lazily inside functions: importing this module is cheap.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnviz import data as data_module
from cnnviz.architecture import build_keras_model
from cnnviz.errors import SettingsError, TrainingCancelled
from cnnviz.training import queue
from cnnviz.training.augmenter import augmentation_model

# Bump this when the engine changes in a way that changes trained results, so disk-cache
# entries written by an older engine are not reused.
ENGINE_VERSION = "1"

OPTIMIZERS = ("adam", "sgd", "rmsprop")
AUGMENTATIONS = ("flip_horizontal", "flip_vertical", "rotation", "zoom", "translation", "contrast")
STOPPED_REASONS = ("finished", "stopped", "diverged")

# Divergence. Guessing uniformly among k classes costs a cross-entropy of ln(k), and a freshly
# initialised network starts near it; training only lowers it. A mean loss of DIVERGENCE_FACTOR
# times that over at least DIVERGENCE_WINDOW images (so that one badly predicted image in a tiny
# batch does not count) means the updates overshoot and the weights have blown up. A too-large
# learning rate does not always reach NaN: with Adam at 10 the loss explodes in the first batches,
# the ReLUs die and it then sits near ln(k) at chance accuracy, so an epoch's mean can look modest.
# Such a run stops as "diverged" at the first window that crosses the threshold.
DIVERGENCE_FACTOR = 10.0
DIVERGENCE_WINDOW = 512

# How often (seconds) `on_progress` is called while batches run.
PROGRESS_INTERVAL = 0.4

# The seeds' ReLU CNN for Fashion-MNIST (38,254 parameters): the default stack.
SEEDS_RELU_CNN: tuple[dict, ...] = (
    {"type": "conv2d", "filters": 8, "kernel_size": 3, "activation": "relu"},
    {"type": "maxpool2d", "pool_size": 2},
    {"type": "flatten"},
    {"type": "dense", "units": 28, "activation": "relu"},
    {"type": "dense", "units": 10, "activation": "softmax"},
)


# --------------------------------------------------------------------------------------------
# Concurrency. Streamlit runs every session in its own thread; training is CPU-bound, so only a
# few trainings run at once: `cnnviz.training.queue.training_queue` (first come, first served; env
# CNNVIZ_MAX_TRAINING_JOBS, default 2) is the one place that caps it.
# --------------------------------------------------------------------------------------------

# Seeding Keras is process-wide, so building a model, its augmentation layers and its shuffled
# input pipeline happens under this lock: two sessions training at once stay reproducible.
_SETUP_LOCK = threading.RLock()


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------

def _freeze(value: Any) -> Any:
    """Turn lists (and dicts) inside a layer spec into tuples so the spec is hashable."""
    if isinstance(value, dict):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def freeze_stack(layers: Any) -> tuple:
    """The hashable form of a layer stack: a tuple of sorted (argument, value) tuples per layer."""
    frozen = []
    for layer in layers:
        if isinstance(layer, dict):
            frozen.append(_freeze(layer))
        elif isinstance(layer, tuple) and all(isinstance(p, tuple) and len(p) == 2 for p in layer):
            frozen.append(tuple(sorted((str(k), _freeze(v)) for k, v in layer)))
        else:
            raise SettingsError(f"A layer must be a dict such as {{'type': 'dense', 'units': 10}}; got {layer!r}.")
    return tuple(frozen)


def thaw_stack(layers: tuple) -> list[dict]:
    """The list-of-dicts form of a hashable stack (tuple values stay tuples; Keras accepts them)."""
    return [dict(layer) for layer in layers]


def stack_with_num_classes(layers: Any, num_classes: int) -> list[dict]:
    """A copy of a stack whose last Dense layer has `num_classes` units (the classifier head)."""
    stack = [dict(layer) for layer in (thaw_stack(layers) if _is_frozen(layers) else layers)]
    for layer in reversed(stack):
        if layer.get("type") == "dense":
            layer["units"] = int(num_classes)
            return stack
    raise SettingsError("The stack has no Dense output layer to resize.")


def _is_frozen(layers: Any) -> bool:
    return bool(layers) and all(isinstance(layer, tuple) for layer in layers)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a trained model; `key()` hashes all of it (the cache key).

    `layers` is the hashable form of a stack (see `from_stack` / `stack()`); a list of dicts
    passed here is converted automatically. With `fast=True` the learning rate is the peak of
    a short linear warm-up followed by a cosine decay to 2% of it at the last epoch; with
    `fast=False` it is constant and training is a plain `model.fit`.
    `classes` keeps only those original labels (remapped to 0..k-1 in the given order; the
    output layer needs k units, see `with_num_classes`). `augmentation` is a spec of
    `cnnviz.training.augmenter` applied while training only. `warm_start` + `warm_start_layers` copy the
    first N layers' weights from the model trained under that config (trained first if not cached);
    `freeze_layers` makes the first N layers untrainable.
    """

    dataset: str = "fashion_mnist"
    limit_train: int | None = None
    limit_test: int | None = None
    layers: tuple = field(default_factory=lambda: freeze_stack(SEEDS_RELU_CNN))
    optimizer: str = "adam"
    learning_rate: float = 0.003
    batch_size: int = 128
    epochs: int = 5
    seed: int = 0
    classes: tuple[int, ...] | None = None
    augmentation: tuple[tuple[str, float], ...] = ()
    warm_start: TrainConfig | None = None
    warm_start_layers: int = 0
    freeze_layers: int = 0
    fast: bool = True

    def __post_init__(self) -> None:
        # Normalise friendly inputs (lists, dicts, numpy numbers) into the hashable canonical form,
        # so equal configurations have equal keys however they were written.
        set_ = object.__setattr__
        set_(self, "layers", freeze_stack(self.layers))
        if self.classes is not None:
            set_(self, "classes", tuple(int(c) for c in self.classes))
        augmentation = self.augmentation
        if isinstance(augmentation, dict):
            augmentation = tuple(augmentation.items())
        set_(self, "augmentation", tuple((str(name), float(strength)) for name, strength in augmentation))
        for name in ("limit_train", "limit_test"):
            value = getattr(self, name)
            if value is not None:
                set_(self, name, int(value))
        for name in ("batch_size", "epochs", "seed", "warm_start_layers", "freeze_layers"):
            set_(self, name, int(getattr(self, name)))
        set_(self, "learning_rate", float(self.learning_rate))
        set_(self, "fast", bool(self.fast))
        set_(self, "optimizer", str(self.optimizer).lower())

    @classmethod
    def from_stack(cls, layers: Any, **fields: Any) -> TrainConfig:
        """A config for a stack given as a list of layer dicts, e.g. `from_stack(preset.layers, epochs=3)`."""
        return cls(layers=freeze_stack(layers), **fields)

    def stack(self) -> list[dict]:
        """The layer stack as a list of dicts, ready for `build_keras_model`."""
        return thaw_stack(self.layers)

    def with_num_classes(self, num_classes: int) -> TrainConfig:
        """The same config with the output Dense layer resized to `num_classes` units."""
        return dataclasses.replace(self, layers=freeze_stack(stack_with_num_classes(self.layers, num_classes)))

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict:
        """A JSON-ready description of every field (the warm-start config nested)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "warm_start":
                value = None if value is None else value.to_json()
            elif f.name == "layers":
                value = [[list(pair) for pair in layer] for layer in value]
            elif f.name == "augmentation":
                value = [list(pair) for pair in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    def key(self) -> str:
        """A stable hash of every field (and the engine version): the cache key."""
        text = json.dumps({"engine": ENGINE_VERSION, "config": self.to_json()}, sort_keys=True,
                          default=repr, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def validate(self) -> None:
        """Raise ValueError with a student-readable message for settings that cannot train."""
        if not self.layers:
            raise SettingsError("The layer stack is empty: add at least an output Dense layer.")
        if self.optimizer not in OPTIMIZERS:
            raise SettingsError(f"Unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}.")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise SettingsError("The learning rate must be a positive number.")
        if self.epochs < 1:
            raise SettingsError("Train for at least one epoch (one pass over the training images).")
        if self.batch_size < 1:
            raise SettingsError("The batch size must be at least 1.")
        for name in ("limit_train", "limit_test"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise SettingsError(f"{name.replace('_', ' ').capitalize()} must be at least 1 image (or no limit).")
        if self.classes is not None:
            if len(self.classes) < 2:
                raise SettingsError("Choose at least two classes to tell apart.")
            if len(set(self.classes)) != len(self.classes):
                raise SettingsError("Each class may be chosen only once.")
        for name, strength in self.augmentation:
            if name not in AUGMENTATIONS:
                raise SettingsError(f"Unknown augmentation {name!r}; choose from {', '.join(AUGMENTATIONS)}.")
            if not (0.0 <= strength <= 1.0):
                raise SettingsError(f"The strength of {name} must be between 0 and 1.")
        n_layers = len(self.layers)
        if not 0 <= self.freeze_layers <= n_layers:
            raise SettingsError(f"Can freeze between 0 and {n_layers} layers, not {self.freeze_layers}.")
        if not 0 <= self.warm_start_layers <= n_layers:
            raise SettingsError(f"Can copy between 0 and {n_layers} layers, not {self.warm_start_layers}.")
        if self.warm_start_layers and self.warm_start is None:
            raise SettingsError("Copying pre-trained layers needs a warm-start configuration.")
        if self.warm_start is not None:
            self.warm_start.validate()
            if self.warm_start_layers > len(self.warm_start.layers):
                raise SettingsError("The pre-trained model has fewer layers than the number to copy.")


# --------------------------------------------------------------------------------------------
# Progress and results
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Progress:
    """A snapshot handed to `on_progress` while training runs.

    `epoch` counts from 1; `batch` is the number of batches done in that epoch (0..batches);
    `metrics` holds the running `loss`/`accuracy` of the current epoch (plus `val_*` at an
    epoch's end); `history_so_far` has the per-epoch lists of finished epochs.
    `phase` is "waiting" (for a free training slot), "warm start" (training the pre-trained
    model first), "train" or "evaluate".
    """

    epoch: int
    epochs: int
    batch: int
    batches: int
    metrics: dict
    images_per_second: float
    history_so_far: dict
    elapsed: float = 0.0
    phase: str = "train"

    @property
    def fraction(self) -> float:
        """Overall progress in [0, 1]."""
        if self.epochs <= 0:
            return 0.0
        within = self.batch / self.batches if self.batches else 0.0
        return float(min(1.0, max(0.0, (self.epoch - 1 + within) / self.epochs)))


def _empty_history() -> dict[str, list[float]]:
    return {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": [], "seconds": []}


@dataclass(eq=False)
class TrainResult:
    """A trained model and how it got there.

    `history` holds per-epoch lists `loss`, `accuracy`, `val_loss`, `val_accuracy` (validation =
    the test split) and `seconds` (wall-clock seconds of each epoch, validation included; the
    first includes graph building). `seconds` (the field) is the whole run's wall-clock time.
    `test_accuracy` is the final evaluation on the test split. `data_source` says where the images
    came from ("local", "keras", "bundled sample", or the injected data's; see `data_source()`).
    `stopped_reason` is "finished",
    "stopped" (by the user) or "diverged" (the loss became NaN or infinite, or far above the loss
    of guessing: see `divergence_threshold`; such runs are never written to the disk cache).
    The Keras model may be shared between sessions: use `predict`/`predict_test`, which lock.
    """

    config: TrainConfig
    model: Any
    history: dict
    test_accuracy: float
    stopped_reason: str
    class_names: tuple[str, ...]
    input_shape: tuple[int, ...] = ()
    test_loss: float = float("nan")
    seconds: float = 0.0
    from_cache: bool = False
    data_source: str = ""
    _test_images: np.ndarray | None = field(default=None, repr=False)
    _test_labels: np.ndarray | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _test_probabilities: np.ndarray | None = field(default=None, repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def epochs_completed(self) -> int:
        return len(self.history.get("loss", []))

    def test_data(self) -> tuple[np.ndarray, np.ndarray]:
        """The test images (uint8 NHWC) and labels (0..k-1, after any class filter) used here."""
        with self._lock:
            if self._test_images is None:
                prepared = _prepare_data(self.config)
                self._test_images, self._test_labels = prepared.x_test, prepared.y_test
            return self._test_images, self._test_labels

    @staticmethod
    def preprocess(images: np.ndarray) -> np.ndarray:
        """uint8 images (N,H,W,C) -> float32 in [0, 1], the scale the model was trained on."""
        return _to_float(images)

    def predict(self, images: np.ndarray, *, batch_size: int = 1024) -> np.ndarray:
        """Class probabilities (N, num_classes) for uint8 images (or float images already in [0, 1])."""
        x = _to_float(images)
        if x.ndim == 3:
            x = x[None]
        outputs = []
        with self._lock:
            for start in range(0, len(x), batch_size):
                outputs.append(np.asarray(self.model(x[start:start + batch_size], training=False)))
        out = np.concatenate(outputs, axis=0) if outputs else np.zeros((0, self.num_classes), np.float32)
        if _outputs_logits(self.config.stack()):
            out = _softmax(out)
        return out.astype(np.float32)

    def predict_test(self) -> np.ndarray:
        """Class probabilities (N_test, num_classes) on the test split (computed once)."""
        if self._test_probabilities is None:
            images, _ = self.test_data()
            self._test_probabilities = self.predict(images)
        return self._test_probabilities

    def predicted_labels(self) -> np.ndarray:
        return np.argmax(self.predict_test(), axis=1)

    def confusion_matrix(self) -> np.ndarray:
        """(k, k) counts: rows are true classes, columns predicted classes."""
        _, labels = self.test_data()
        k = self.num_classes
        matrix = np.zeros((k, k), dtype=np.int64)
        np.add.at(matrix, (labels.astype(np.int64), self.predicted_labels()), 1)
        return matrix

    def history_csv(self) -> str:
        """The history as CSV text (one row per epoch), for a download button."""
        columns = ["loss", "accuracy", "val_loss", "val_accuracy", "seconds"]
        lines = ["epoch," + ",".join(columns)]
        for i in range(self.epochs_completed):
            values = [self.history.get(c, [])[i] if i < len(self.history.get(c, [])) else "" for c in columns]
            lines.append(f"{i + 1}," + ",".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in values))
        return "\n".join(lines) + "\n"

    def model_bytes(self) -> bytes:
        """The model saved in the `.keras` format, as bytes (for a download button)."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.keras"
            with self._lock:
                self.model.save(path)
            return path.read_bytes()


def _to_float(images: np.ndarray) -> np.ndarray:
    x = np.asarray(images)
    if x.dtype == np.uint8:
        return x.astype(np.float32) / np.float32(255.0)
    return x.astype(np.float32, copy=False)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _outputs_logits(stack: list[dict]) -> bool:
    """True when the output layer has no activation (logits), False for softmax."""
    activation = stack[-1].get("activation") if stack else None
    return activation in (None, "linear")


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Prepared:
    x_train: np.ndarray  # uint8 (N, H, W, C)
    y_train: np.ndarray  # int32 (N,)
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.x_train.shape[1:])


def _load_dataset(config: TrainConfig):
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


def _prepare_data(config: TrainConfig, data: Any = None) -> _Prepared:
    """Load (or take) the dataset, ensure NHWC, filter to `config.classes` and remap labels."""
    if data is None:
        data = _load_dataset(config)
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
        lookup = np.full(len(class_names), -1, dtype=np.int64)
        lookup[list(config.classes)] = np.arange(len(config.classes))
        keep_train, keep_test = lookup[y_train] >= 0, lookup[y_test] >= 0
        x_train, y_train = x_train[keep_train], lookup[y_train[keep_train]]
        x_test, y_test = x_test[keep_test], lookup[y_test[keep_test]]
        class_names = tuple(class_names[c] for c in config.classes)
    if len(x_train) == 0 or len(x_test) == 0:
        raise SettingsError("No training or test images are left for the chosen classes.")
    return _Prepared(x_train, y_train.astype(np.int32), x_test, y_test.astype(np.int32), class_names)


# --------------------------------------------------------------------------------------------
# Disk cache
# --------------------------------------------------------------------------------------------

MAX_DISK_ENTRIES = 40


def cache_dir() -> Path:
    """`$CNNVIZ_CACHE_DIR/training` (default `~/.cache/cnnviz/training`)."""
    root = os.environ.get("CNNVIZ_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "cnnviz")
    return Path(root) / "training"


# An entry is found by `config.key()` (a hash of the settings) and is only valid for the data it
# was trained on: its result.json records `data_source` (see `data_source`), and an entry whose
# source differs from the current one (say trained on the bundled sample before the full
# dataset became available) is ignored, trained again and overwritten. Entries written before
# the source was recorded are ignored too.

def _entry_meta(config: TrainConfig, data: Any = None) -> dict | None:
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
    return meta if meta["data_source"] == data_source(config, data) else None


def is_cached(config: TrainConfig, *, data: Any = None) -> bool:
    """Whether the disk cache holds a finished run of this config on the current data (no model is loaded)."""
    return _entry_meta(config, data) is not None


def load_cached(config: TrainConfig, *, data: Any = None) -> TrainResult | None:
    """The finished result stored on disk for this config, or None (missing or unreadable entries,
    or entries trained on other data: `data` as for `data_source`)."""
    entry = cache_dir() / config.key()
    model_path = entry / "model.keras"
    meta = _entry_meta(config, data)
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
                           from_cache=True, data_source=str(meta["data_source"]))
    except Exception:  # noqa: BLE001 - a corrupted entry is ignored and trained again.
        return None


def store_cached(result: TrainResult) -> Path | None:
    """Write a result to the disk cache (atomically); returns the entry directory or None on failure."""
    key = result.config.key()
    root = cache_dir()
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
        _prune_disk_cache(root)
        return final
    except Exception:  # noqa: BLE001 - a full or read-only disk must not break training.
        shutil.rmtree(locals().get("tmp", root / ".none"), ignore_errors=True)
        return None


def _prune_disk_cache(root: Path) -> None:
    entries = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                     key=lambda p: p.stat().st_mtime)
    for old in entries[:-MAX_DISK_ENTRIES]:
        shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------

def _keras_layers(model: Any) -> list:
    """The model's layers in stack order (without the InputLayer a Functional model lists)."""
    import keras

    return [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]


def _check_output_layer(stack: list[dict], num_classes: int) -> None:
    last = stack[-1]
    if last.get("type") != "dense":
        raise SettingsError("The last layer must be a Dense output layer with one unit per class.")
    if int(last.get("units", -1)) != num_classes:
        raise SettingsError(f"The output layer has {last.get('units')} units but the data has {num_classes} "
                         f"classes: set its units to {num_classes} (TrainConfig.with_num_classes).")
    activation = last.get("activation")
    if activation not in (None, "linear", "softmax"):
        raise SettingsError("The output layer must use softmax (or no activation, i.e. logits) to classify.")


def _make_optimizer(config: TrainConfig, steps_per_epoch: int):
    import keras

    learning_rate: Any = config.learning_rate
    if config.fast:
        learning_rate = _fast_schedule(config.learning_rate, steps_per_epoch, config.epochs)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=learning_rate)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate)
    return keras.optimizers.RMSprop(learning_rate=learning_rate)


def _fast_schedule(peak: float, steps_per_epoch: int, epochs: int):
    """Linear warm-up from peak/10 over the first fifth of the run (at most half an epoch),
    then a cosine decay to peak/50 at the end of the last epoch."""
    import keras

    total = max(1, steps_per_epoch * epochs)
    warmup = max(1, min(total // 5, steps_per_epoch // 2))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=peak / 10.0, decay_steps=max(1, total - warmup), alpha=0.02,
        warmup_target=peak, warmup_steps=warmup)


# The engine's speed tricks (fast=True); measured by bench/train_speed.py.
# (XLA `jit_compile` was measured 2-4x slower on CPU for these small convolutions: not used.)
# Batches per graph call start at ~4096 images' worth and then adapt so that one call takes about
# `seconds_per_call`: long enough to amortise Python overhead, short enough for 0.4 s progress.
_FAST_OPTIONS = {"images_per_execution": 4096, "max_steps_per_execution": 64, "seconds_per_call": 0.2}


def _steps_per_execution(config: TrainConfig, steps_per_epoch: int, params: int) -> int:
    """The first call's number of batches (one for big models, whose single batch is slow)."""
    if not config.fast or params > 500_000:
        return 1
    per_call = _FAST_OPTIONS["images_per_execution"] // max(1, config.batch_size)
    return int(max(1, min(steps_per_epoch, _FAST_OPTIONS["max_steps_per_execution"], per_call)))


def _next_steps_per_call(steps: int, seconds: float) -> int:
    """Scale the batches per call towards `seconds_per_call` (at most doubling at a time)."""
    if seconds <= 0:
        return min(steps * 2, _FAST_OPTIONS["max_steps_per_execution"])
    wanted = steps * _FAST_OPTIONS["seconds_per_call"] / seconds
    return int(max(1, min(_FAST_OPTIONS["max_steps_per_execution"], steps * 2, round(wanted))))


def _augmenter(augmentation: tuple[tuple[str, float], ...], seed: int):
    """The Keras random preprocessing layers of `cnnviz.training.augmenter` (training only), or None.

    The augmentation page previews exactly these layers, so students see what the model sees.
    """
    if not any(strength > 0 for _, strength in augmentation):
        return None

    return augmentation_model(augmentation, seed=seed)


def _train_dataset(prepared: _Prepared, config: TrainConfig, augmenter: Any):
    """A tf.data pipeline over in-memory tensors (used with `fast=False` and augmentation)."""
    import tensorflow as tf

    images = tf.constant(prepared.x_train)
    labels = tf.constant(prepared.y_train)
    n = len(prepared.x_train)
    scale = 1.0 / 255.0 if prepared.x_train.dtype == np.uint8 else 1.0

    def gather(indices):
        batch = tf.cast(tf.gather(images, indices), tf.float32) * scale
        if augmenter is not None:
            batch = tf.clip_by_value(augmenter(batch, training=True), 0.0, 1.0)
        return batch, tf.gather(labels, indices)

    return (tf.data.Dataset.range(n)
            .shuffle(n, seed=config.seed, reshuffle_each_iteration=True)
            .batch(config.batch_size)
            .map(gather, num_parallel_calls=1 if augmenter is None else tf.data.AUTOTUNE, deterministic=True)
            .prefetch(2))


class _Reporter:
    """Records the per-epoch history, calls `on_progress` every PROGRESS_INTERVAL seconds and
    decides whether training goes on (False after a user stop or a divergence; see `reason`).

    Divergence is judged the same way in both engines, from the running mean loss they report
    (after every batch with `model.fit`, after every graph call with `_fit_fast`): the losses of
    the batches since the last report are pooled until they cover DIVERGENCE_WINDOW images, and
    that window's mean must stay under `divergence_threshold(num_classes)`; a NaN or infinite loss,
    or an epoch whose mean loss is above the threshold, also stops training.
    """

    def __init__(self, config: TrainConfig, on_progress: Callable | None, steps_per_epoch: int, n_train: int,
                 num_classes: int = 10):
        self.config, self.on_progress = config, on_progress
        self.steps_per_epoch, self.n_train = steps_per_epoch, n_train
        self.threshold = divergence_threshold(num_classes)
        self.history = _empty_history()
        self.reason: str | None = None
        # The epoch's (images, summed loss) at the last report, and the window not yet judged.
        self._epoch_seen, self._epoch_loss_sum = 0, 0.0
        self._window_seen, self._window_loss_sum = 0, 0.0
        self.epoch = 0
        self.start = self.epoch_start = self.train_end = time.perf_counter()
        self.last_report = 0.0
        self.images_per_second = 0.0

    def begin(self) -> None:
        self.start = time.perf_counter()
        self._report(0, {}, force=True)

    def epoch_begin(self, epoch: int) -> None:
        self.epoch = epoch
        self.epoch_start = time.perf_counter()
        self.train_end = None
        self._epoch_seen, self._epoch_loss_sum = 0, 0.0

    def batches_done(self, batch_done: int, metrics: dict) -> bool:
        loss = metrics.get("loss")
        if loss is not None and self._window_diverged(batch_done, float(loss)):
            self.reason = "diverged"
            return False
        return self._report(batch_done, metrics)

    def _window_diverged(self, batch_done: int, running_loss: float) -> bool:
        """Pool the batches since the last report into the window; True when it shows divergence."""
        if not math.isfinite(running_loss):
            return True
        seen = min(self.n_train, batch_done * self.config.batch_size)
        loss_sum = running_loss * seen
        self._window_seen += seen - self._epoch_seen
        self._window_loss_sum += loss_sum - self._epoch_loss_sum
        self._epoch_seen, self._epoch_loss_sum = seen, loss_sum
        if self._window_seen < DIVERGENCE_WINDOW:
            return False
        mean = self._window_loss_sum / self._window_seen
        self._window_seen, self._window_loss_sum = 0, 0.0
        return _diverged(mean, self.threshold)

    def train_part_done(self) -> None:
        if self.train_end is None:
            self.train_end = time.perf_counter()

    def epoch_end(self, metrics: dict, batch_done: int) -> bool:
        now = time.perf_counter()
        for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
            self.history[name].append(float(metrics.get(name, float("nan"))))
        self.history["seconds"].append(now - self.epoch_start)
        images = min(self.n_train, batch_done * self.config.batch_size)
        self.images_per_second = images / max(1e-9, (self.train_end or now) - self.epoch_start)
        if _diverged(self.history["loss"][-1], self.threshold) or not math.isfinite(self.history["val_loss"][-1]):
            self.reason = "diverged"
        go_on = self._report(batch_done, metrics, force=True, rate=self.images_per_second)
        return go_on and self.reason is None

    def _report(self, batch_done: int, metrics: dict, force: bool = False, rate: float | None = None) -> bool:
        now = time.perf_counter()
        if self.on_progress is None or (not force and now - self.last_report < PROGRESS_INTERVAL):
            return self.reason is None
        self.last_report = now
        if rate is None:
            elapsed = now - self.epoch_start
            images = min(self.n_train, batch_done * self.config.batch_size)
            rate = images / elapsed if batch_done and elapsed > 0 else self.images_per_second
        progress = Progress(
            epoch=self.epoch + 1, epochs=self.config.epochs, batch=batch_done, batches=self.steps_per_epoch,
            metrics={k: float(v) for k, v in metrics.items() if _is_number(v)},
            images_per_second=float(rate), history_so_far={k: list(v) for k, v in self.history.items()},
            elapsed=now - self.start, phase="train")
        if self.on_progress(progress) is False:
            self.reason = self.reason or "stopped"
        return self.reason is None


def _keras_callback(reporter: _Reporter):
    """A Keras callback that feeds `model.fit`'s events to the reporter (the `fast=False` path)."""
    import keras

    class ProgressCallback(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            reporter.begin()

        def on_epoch_begin(self, epoch, logs=None):
            reporter.epoch_begin(epoch)
            self._batch_done = 0

        def on_train_batch_end(self, batch, logs=None):
            self._batch_done = batch + 1
            if not reporter.batches_done(batch + 1, logs or {}):
                self.model.stop_training = True

        def on_test_begin(self, logs=None):
            reporter.train_part_done()

        def on_epoch_end(self, epoch, logs=None):
            if not reporter.epoch_end(logs or {}, self._batch_done):
                self.model.stop_training = True

    return ProgressCallback()


def _fit_fast(model: Any, prepared: _Prepared, config: TrainConfig, augmenter: Any, loss_fn: Any,
              reporter: _Reporter, steps_per_call: int) -> None:
    """The engine's own training loop (fast=True).

    The images stay in memory as one uint8 tensor (N, H, W, C); each epoch draws a seeded
    permutation, and one compiled graph call runs `steps_per_call` batches in a `tf.while_loop`
    (gather, scale to [0, 1], augment, forward, backward, optimizer step), returning the summed
    loss and correct count. Keras's `fit` pays seconds of set-up per model; this traces two small
    functions once. Metrics match `fit`'s: running means over the epoch, weighted by batch size.
    """
    import tensorflow as tf

    images = tf.constant(prepared.x_train)  # (N, H, W, C) uint8
    labels = tf.constant(prepared.y_train)  # (N,) int32
    test_images = tf.constant(prepared.x_test)
    test_labels = tf.constant(prepared.y_test)
    n_train, batch_size = len(prepared.x_train), config.batch_size
    steps_per_epoch = math.ceil(n_train / batch_size)
    optimizer = model.optimizer
    variables = model.trainable_variables
    regularised = bool(model.losses)

    # uint8 pixels are scaled to [0, 1]; float images (injected data) are taken as already scaled.
    scale = 1.0 / 255.0 if prepared.x_train.dtype == np.uint8 else 1.0

    def batch_stats(x_raw, y, training: bool):
        x = tf.cast(x_raw, tf.float32) * scale
        if training and augmenter is not None:
            x = tf.clip_by_value(augmenter(x, training=True), 0.0, 1.0)
        predictions = model(x, training=training)
        per_example = loss_fn(y, predictions)
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(predictions, axis=-1, output_type=tf.int32), y),
                                        tf.float32))
        return per_example, correct

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.int32),
                                  tf.TensorSpec([], tf.int32)])
    def run_steps(order, first_step, steps):
        def body(step, loss_sum, correct_sum, seen):
            begin = step * batch_size
            indices = order[begin:tf.minimum(begin + batch_size, n_train)]
            x, y = tf.gather(images, indices), tf.gather(labels, indices)
            with tf.GradientTape() as tape:
                per_example, correct = batch_stats(x, y, True)
                loss = tf.reduce_mean(per_example)
                total = loss + tf.add_n(model.losses) if regularised else loss
            gradients = tape.gradient(total, variables)
            optimizer.apply_gradients(zip(gradients, variables))
            count = tf.cast(tf.shape(indices)[0], tf.float32)
            return step + 1, loss_sum + loss * count, correct_sum + correct, seen + count

        zero = tf.constant(0.0)
        _, loss_sum, correct_sum, seen = tf.while_loop(
            lambda step, *_: step < first_step + steps, body, (first_step, zero, zero, zero))
        return loss_sum, correct_sum, seen

    eval_batch = 2048

    @tf.function(input_signature=[tf.TensorSpec([], tf.int32)])
    def evaluate_chunk(begin):
        end = tf.minimum(begin + eval_batch, tf.shape(test_labels)[0])
        per_example, correct = batch_stats(test_images[begin:end], test_labels[begin:end], False)
        return tf.reduce_sum(per_example), correct

    def evaluate() -> tuple[float, float]:
        n_test = len(prepared.x_test)
        loss_sum = correct_sum = 0.0
        for begin in range(0, n_test, eval_batch):
            loss_part, correct_part = evaluate_chunk(tf.constant(begin, tf.int32))
            loss_sum += float(loss_part)
            correct_sum += float(correct_part)
        return loss_sum / n_test, correct_sum / n_test

    rng = np.random.default_rng(config.seed)
    traced = False
    reporter.begin()
    for epoch in range(config.epochs):
        reporter.epoch_begin(epoch)
        order = tf.constant(rng.permutation(n_train).astype(np.int32))
        loss_sum = correct_sum = seen = 0.0
        step, go_on = 0, True
        while step < steps_per_epoch and go_on:
            steps = min(steps_per_call, steps_per_epoch - step)
            call_start = time.perf_counter()
            parts = run_steps(order, tf.constant(step, tf.int32), tf.constant(steps, tf.int32))
            step += steps
            loss_sum += float(parts[0])  # float() waits for the call to finish
            correct_sum += float(parts[1])
            seen += float(parts[2])
            if traced:
                steps_per_call = _next_steps_per_call(steps, time.perf_counter() - call_start)
            traced = True  # the first call also traced the graph: not a fair timing
            go_on = reporter.batches_done(step, {"loss": loss_sum / seen, "accuracy": correct_sum / seen})
        reporter.train_part_done()
        metrics = {"loss": loss_sum / max(seen, 1.0), "accuracy": correct_sum / max(seen, 1.0)}
        if reporter.reason != "diverged":
            metrics["val_loss"], metrics["val_accuracy"] = evaluate()
        else:
            metrics["val_loss"] = metrics["val_accuracy"] = float("nan")
        if not reporter.epoch_end(metrics, step) or not go_on:
            break


def divergence_threshold(num_classes: int) -> float:
    """The mean loss above which training counts as diverged: DIVERGENCE_FACTOR x ln(k), k >= 2."""
    return DIVERGENCE_FACTOR * math.log(max(2, int(num_classes)))


def _diverged(loss: float, threshold: float) -> bool:
    """NaN, infinite, or above `threshold` (see `divergence_threshold`)."""
    return not math.isfinite(loss) or loss > threshold


def _is_number(value: Any) -> bool:
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False


def train(config: TrainConfig, on_progress: Callable[[Progress], Any] | None = None, *,
          data: Any = None, use_cache: bool | None = None) -> TrainResult:
    """Train a model for `config` and return the result.

    `on_progress(Progress)` is called at least every ~0.5 s; returning False stops cleanly
    (stopped_reason "stopped"). A NaN or infinite loss, or a mean loss above
    `divergence_threshold(k)` over DIVERGENCE_WINDOW images, stops with "diverged".
    `data` injects a dataset object (fields `x_train, y_train, x_test, y_test, class_names`)
    instead of `cnnviz.data.load`; the disk cache is then off unless `use_cache=True`.
    Finished results are read from / written to the disk cache (see `load_cached`), keyed by the
    config and the data's source (recorded from the images actually trained on).
    Raises ValueError for settings that cannot train (with a message a student understands).
    """
    config.validate()
    if use_cache is None:
        use_cache = data is None
    if use_cache:
        # Without `data`, the source `cnnviz.data.load` would use now is checked without loading
        # anything, so that a cached revisit stays instant.
        cached = load_cached(config, data=data)
        if cached is not None:
            if on_progress is not None:
                epochs_done = cached.epochs_completed
                on_progress(Progress(epoch=max(1, epochs_done), epochs=config.epochs, batch=1, batches=1,
                                     metrics={}, images_per_second=0.0, history_so_far=cached.history,
                                     elapsed=cached.seconds, phase="train"))
            return cached

    # The pre-trained model comes first (through the cache), before this run takes a slot.
    warm_result = None
    if config.warm_start is not None and config.warm_start_layers > 0:
        warm_progress = None
        if on_progress is not None:
            def warm_progress(p: Progress):
                # A wait for a training slot stays "waiting", so its queue position still shows.
                return on_progress(p if p.phase == "waiting" else dataclasses.replace(p, phase="warm start"))
        warm_result = train(config.warm_start, warm_progress, data=data, use_cache=use_cache)
        if warm_result.stopped_reason != "finished":
            raise TrainingCancelled(f"Training the pre-trained model {warm_result.stopped_reason}: "
                                    "no weights to copy.")

    # The images this run trains on (`data` stays as given: a warm start has its own config).
    images = data if data is not None else _load_dataset(config)
    prepared = _prepare_data(config, images)
    stack = config.stack()
    _check_output_layer(stack, len(prepared.class_names))
    if config.batch_size > len(prepared.x_train):
        raise SettingsError(f"The batch size ({config.batch_size}) is larger than the training set "
                         f"({len(prepared.x_train)} images): choose a smaller batch or more images.")


    try:
        with queue.training_queue.slot(_waiting_reporter(config, on_progress), poll_seconds=PROGRESS_INTERVAL):
            result = _train_now(config, on_progress, prepared, stack, warm_result)
    except queue.QueueCancelled as error:
        raise TrainingCancelled("Training was stopped while waiting for a free training slot.") from error
    result.data_source = data_source(config, images)
    # Only complete runs are shared: a stopped or diverged run is never stored.
    if use_cache and result.stopped_reason == "finished":
        store_cached(result)
    return result


def _waiting_reporter(config: TrainConfig, on_progress):
    """The queue's `on_wait(position)`: reports phase "waiting" with `metrics["queue_position"]`."""
    if on_progress is None:
        return None

    def on_wait(position: int):
        return on_progress(Progress(epoch=1, epochs=config.epochs, batch=0, batches=1,
                                    metrics={"queue_position": float(position)}, images_per_second=0.0,
                                    history_so_far=_empty_history(), phase="waiting"))
    return on_wait


def _train_now(config: TrainConfig, on_progress, prepared: _Prepared, stack: list[dict],
               warm_result: TrainResult | None) -> TrainResult:
    import keras


    steps_per_epoch = math.ceil(len(prepared.x_train) / config.batch_size)
    from_logits = _outputs_logits(stack)
    with _SETUP_LOCK:
        keras.utils.set_random_seed(config.seed)
        model = build_keras_model(prepared.image_shape, stack)
        layers = _keras_layers(model)
        if warm_result is not None:
            _copy_warm_start(warm_result.model, layers, config.warm_start_layers)
        # Frozen layers are set before compiling, so the optimizer never sees their weights.
        for layer in layers[:config.freeze_layers]:
            layer.trainable = False
        augmenter = _augmenter(config.augmentation, config.seed)
        optimizer = _make_optimizer(config, steps_per_epoch)
        model.compile(optimizer=optimizer,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
                      metrics=["accuracy"])
        optimizer.build(model.trainable_variables)
        train_data = (_train_dataset(prepared, config, augmenter)
                      if not config.fast and augmenter is not None else None)

    reporter = _Reporter(config, on_progress, steps_per_epoch, len(prepared.x_train),
                         num_classes=len(prepared.class_names))
    x_test = _to_float(prepared.x_test)
    start = time.perf_counter()
    if config.fast:
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits, reduction=None)
        steps_per_call = _steps_per_execution(config, steps_per_epoch, model.count_params())
        _fit_fast(model, prepared, config, augmenter, loss_fn, reporter, steps_per_call)
    elif train_data is None:
        # Plain `model.fit` semantics, as in the seeds (float arrays, shuffled every epoch).
        model.fit(_to_float(prepared.x_train), prepared.y_train, batch_size=config.batch_size,
                  epochs=config.epochs, validation_data=(x_test, prepared.y_test), shuffle=True,
                  callbacks=[_keras_callback(reporter)], verbose=0)
    else:
        # The tf.data pipeline shuffles (seeded) by itself.
        model.fit(train_data, epochs=config.epochs, validation_data=(x_test, prepared.y_test),
                  shuffle=False, callbacks=[_keras_callback(reporter)], verbose=0)
    history = reporter.history
    reason = reporter.reason or "finished"

    if history["val_loss"] and math.isfinite(history["val_loss"][-1]):
        test_loss, test_accuracy = history["val_loss"][-1], history["val_accuracy"][-1]
    else:
        test_loss, test_accuracy = (float(v) for v in model.evaluate(
            x_test, prepared.y_test, batch_size=1024, verbose=0))
    seconds = time.perf_counter() - start
    return TrainResult(config=config, model=model, history=history, test_accuracy=float(test_accuracy),
                       test_loss=float(test_loss), stopped_reason=reason, class_names=prepared.class_names,
                       input_shape=prepared.image_shape, seconds=seconds,
                       _test_images=prepared.x_test, _test_labels=prepared.y_test)


def _copy_warm_start(source_model: Any, layers: list, count: int) -> None:
    """Copy the weights of the first `count` layers of `source_model` into `layers` (shapes must match)."""
    source_layers = _keras_layers(source_model)
    for index in range(count):
        source, target = source_layers[index], layers[index]
        source_weights, target_weights = source.get_weights(), target.get_weights()
        shapes_from = [w.shape for w in source_weights]
        shapes_to = [w.shape for w in target_weights]
        if shapes_from != shapes_to:
            raise SettingsError(f"Cannot copy layer {index + 1} ({target.name}) from the pre-trained model: "
                             f"weight shapes {shapes_from} and {shapes_to} differ.")
        if target_weights:
            target.set_weights(source_weights)


# --------------------------------------------------------------------------------------------
# Background jobs (for Streamlit: training survives the reruns a button click causes)
# --------------------------------------------------------------------------------------------

class TrainingJob:
    """One `train(config)` running in a background thread, watched by any number of pages.

    A Streamlit script is interrupted and re-run whenever a widget is used (a Stop click
    included), so training inside the script thread would be lost. A job trains in its own
    thread; pages poll `latest` / `live_points` and call `request_stop()`. When it ends,
    `result` (a TrainResult) or `error` (an exception) is set and `done` is True.
    """

    def __init__(self, config: TrainConfig, *, data: Any = None) -> None:
        self.config = config
        self.latest: Progress | None = None
        # (fractional epoch, running loss, running accuracy) points for live curves.
        self.live_points: list[tuple[float, float, float]] = []
        self.result: TrainResult | None = None
        self.error: BaseException | None = None
        self.started_at = time.time()
        self._data = data
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"cnnviz-train-{config.key()[:8]}", daemon=True)

    def start(self) -> TrainingJob:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self.result = train(self.config, self._on_progress, data=self._data)
        except BaseException as error:  # noqa: BLE001 - handed to the page, which shows it.
            self.error = error
        finally:
            self._done.set()

    def _on_progress(self, progress: Progress) -> bool:
        self.latest = progress
        if progress.phase == "train" and progress.batch and "loss" in progress.metrics:
            x = progress.epoch - 1 + progress.batch / max(1, progress.batches)
            self.live_points.append((x, progress.metrics["loss"], progress.metrics.get("accuracy", float("nan"))))
        return not self._stop.is_set()

    def request_stop(self) -> None:
        """Ask the job to stop after the current group of batches (its result says "stopped")."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def finished(self) -> bool:
        """Done with a complete result (worth caching); False for stopped, diverged or failed runs."""
        return self.done and self.result is not None and self.result.stopped_reason == "finished"

    def wait(self, timeout: float | None = None) -> bool:
        """Block up to `timeout` seconds; True once the job is done."""
        return self._done.wait(timeout)
