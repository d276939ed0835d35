"""What training hands back: `Progress` snapshots while it runs and one `TrainResult` at the end."""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cnnviz.architecture import EVAL_BATCH, outputs_logits, scale_images, softmax
from cnnviz.training import inputs
from cnnviz.training.config import TrainConfig
from cnnviz.training.diagnostics import TrainingRecord

if TYPE_CHECKING:
    import keras

STOPPED_REASONS = ("finished", "stopped", "diverged")
HISTORY_NAMES = ("loss", "accuracy", "val_loss", "val_accuracy", "seconds")

# Per-epoch lists: "loss", "accuracy", "val_loss", "val_accuracy" and "seconds".
History = dict[str, list[float]]


def empty_history() -> History:
    return {name: [] for name in HISTORY_NAMES}


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts (K, K): entry [t, p] is how many test images of true class t were predicted as p.

    The one confusion matrix of cnnviz (`TrainResult.confusion_matrix`, the train and the
    tanh LeNet vs ReLU CNN lessons).
    """
    y_true = np.asarray(y_true).astype(np.int64).ravel()
    y_pred = np.asarray(y_pred).astype(np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{len(y_true)} true labels but {len(y_pred)} predictions.")
    for name, labels in (("true", y_true), ("predicted", y_pred)):
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"A {name} label lies outside 0..{num_classes - 1}.")
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


@dataclass(frozen=True)
class Progress:
    """A snapshot handed to `on_progress` while training runs.

    `epoch` counts from 1; `batch` is the number of batches done in that epoch (0..batches);
    `metrics` holds the running `loss`/`accuracy` of the current epoch (plus `val_*` at an
    epoch's end; `queue_position` while waiting); `history_so_far` has the per-epoch lists of
    finished epochs. `phase` is "waiting" (for a free training slot), "warm start" (training the
    pre-trained model first), "train" or "evaluate".
    """

    epoch: int
    epochs: int
    batch: int
    batches: int
    metrics: dict[str, float]
    images_per_second: float
    history_so_far: History
    elapsed: float = 0.0
    phase: str = "train"

    @property
    def fraction(self) -> float:
        """Overall progress in [0, 1]."""
        if self.epochs <= 0:
            return 0.0
        within = self.batch / self.batches if self.batches else 0.0
        return float(min(1.0, max(0.0, (self.epoch - 1 + within) / self.epochs)))


@dataclass(eq=False)
class TrainResult:
    """A trained model and how it got there.

    `history` holds per-epoch lists `loss`, `accuracy`, `val_loss`, `val_accuracy` (validation =
    the test split) and `seconds` (wall-clock seconds of each epoch, validation included; the
    first includes graph building). `seconds` (the field) is the whole run's wall-clock time.
    `test_accuracy` is the final evaluation on the test split. `data_source` says where the images
    came from ("local", "keras", "bundled sample", or the injected data's; see
    `inputs.data_source`). `stopped_reason` is "finished", "stopped" (by the user) or "diverged"
    (the loss became NaN or infinite, or far above the loss of guessing: see
    `progress.divergence_threshold`; such runs are never written to the disk cache).
    The Keras model may be shared between sessions: use `predict`/`predict_test`, which lock.
    """

    config: TrainConfig
    model: keras.Model
    history: History
    test_accuracy: float
    stopped_reason: str
    class_names: tuple[str, ...]
    input_shape: tuple[int, ...] = ()
    test_loss: float = float("nan")
    seconds: float = 0.0
    from_cache: bool = False
    data_source: str = ""
    # Per test image (in `test_data()` order): whether the final evaluation classified it correctly.
    # The fast engine records it; None for `model.fit` runs and results cached before it existed.
    # Experiments use it for the test-sampling error of a difference on a shared test set.
    test_hits: np.ndarray | None = field(default=None, repr=False)
    # With `config.record_gradients`: per-layer gradient norms and weight histograms at
    # initialisation and after each epoch (`cnnviz.training.diagnostics`); else None.
    training_record: TrainingRecord | None = field(default=None, repr=False)
    # The dataset the run was asked to use (None: `cnnviz.data.load`), for `test_data`.
    _data: Any = field(default=None, repr=False)
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
            if self._test_images is None or self._test_labels is None:
                prepared = inputs.prepare(self.config, self._data)
                self._test_images, self._test_labels = prepared.x_test, prepared.y_test
            return self._test_images, self._test_labels

    def predict(self, images: np.ndarray, *, batch_size: int = EVAL_BATCH) -> np.ndarray:
        """Class probabilities (N, num_classes) for uint8 images (or float images already in [0, 1])."""
        x = scale_images(images)
        if x.ndim == 3:
            x = x[None]
        outputs = []
        with self._lock:
            for start in range(0, len(x), batch_size):
                outputs.append(np.asarray(self.model(x[start:start + batch_size], training=False)))
        out = np.concatenate(outputs, axis=0) if outputs else np.zeros((0, self.num_classes), np.float32)
        if outputs_logits(self.config.stack()):
            out = softmax(out)
        return out.astype(np.float32)

    def predict_test(self) -> np.ndarray:
        """Class probabilities (N_test, num_classes) on the test split (computed once)."""
        if self._test_probabilities is None:
            images, _ = self.test_data()
            self._test_probabilities = self.predict(images)
        return self._test_probabilities

    def predicted_labels(self) -> np.ndarray:
        return np.asarray(np.argmax(self.predict_test(), axis=1))

    def confusion_matrix(self) -> np.ndarray:
        """(k, k) counts: rows are true classes, columns predicted classes."""
        _, labels = self.test_data()
        return confusion_matrix(labels, self.predicted_labels(), self.num_classes)

    def history_csv(self) -> str:
        """The history as CSV text (one row per epoch), for a download button."""
        lines = ["epoch," + ",".join(HISTORY_NAMES)]
        for i in range(self.epochs_completed):
            values = [self.history.get(c, [])[i] if i < len(self.history.get(c, [])) else "" for c in HISTORY_NAMES]
            lines.append(f"{i + 1}," + ",".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in values))
        return "\n".join(lines) + "\n"

    def model_bytes(self) -> bytes:
        """The model saved in the `.keras` format, as bytes (for a download button)."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.keras"
            with self._lock:
                self.model.save(path)
            return path.read_bytes()
