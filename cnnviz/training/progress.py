"""Progress reports while training runs, and the one rule that says a run diverged.

Divergence. Guessing uniformly among k classes costs a cross-entropy of ln(k), and a freshly
initialised network starts near it; training only lowers it. A mean loss of DIVERGENCE_FACTOR
times that over at least DIVERGENCE_WINDOW images (so that one badly predicted image in a tiny
batch does not count) means the updates overshoot and the weights have blown up. A too-large
learning rate does not always reach NaN: with Adam at 10 the loss explodes in the first batches,
the ReLUs die and it then sits near ln(k) at chance accuracy, so an epoch's mean can look modest.
Such a run stops as "diverged" at the first window that crosses the threshold.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from cnnviz.training.config import TrainConfig
from cnnviz.training.results import History, Progress, empty_history

DIVERGENCE_FACTOR = 10.0
DIVERGENCE_WINDOW = 512

# How often (seconds) `on_progress` is called while batches run.
PROGRESS_INTERVAL = 0.4

# `on_progress(Progress)`; returning False stops the run (any other value goes on).
OnProgress = Callable[[Progress], Any]


def divergence_threshold(num_classes: int) -> float:
    """The mean loss above which training counts as diverged: DIVERGENCE_FACTOR x ln(k), k >= 2."""
    return DIVERGENCE_FACTOR * math.log(max(2, int(num_classes)))


def diverged(loss: float, threshold: float) -> bool:
    """NaN, infinite, or above `threshold` (see `divergence_threshold`)."""
    return not math.isfinite(loss) or loss > threshold


def _is_number(value: Any) -> bool:
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False


def waiting_reporter(config: TrainConfig, on_progress: OnProgress | None) -> Callable[[int], Any] | None:
    """The queue's `on_wait(position)`: reports phase "waiting" with `metrics["queue_position"]`."""
    if on_progress is None:
        return None

    def on_wait(position: int) -> Any:
        return on_progress(Progress(epoch=1, epochs=config.epochs, batch=0, batches=1,
                                    metrics={"queue_position": float(position)}, images_per_second=0.0,
                                    history_so_far=empty_history(), phase="waiting"))
    return on_wait


class Reporter:
    """Records the per-epoch history, calls `on_progress` every PROGRESS_INTERVAL seconds and
    decides whether training goes on (False after a user stop or a divergence; see `reason`).

    Divergence is judged the same way in both loops, from the running mean loss they report
    (after every batch with `model.fit`, after every graph call with the fast loop): the losses of
    the batches since the last report are pooled until they cover DIVERGENCE_WINDOW images, and
    that window's mean must stay under `divergence_threshold(num_classes)`; a NaN or infinite loss,
    or an epoch whose mean loss is above the threshold, also stops training.
    """

    def __init__(self, config: TrainConfig, on_progress: OnProgress | None, steps_per_epoch: int, n_train: int,
                 num_classes: int = 10) -> None:
        self.config, self.on_progress = config, on_progress
        self.steps_per_epoch, self.n_train = steps_per_epoch, n_train
        self.threshold = divergence_threshold(num_classes)
        self.history: History = empty_history()
        self.reason: str | None = None
        # The epoch's (images, summed loss) at the last report, and the window not yet judged.
        self._epoch_seen, self._epoch_loss_sum = 0, 0.0
        self._window_seen, self._window_loss_sum = 0, 0.0
        self.epoch = 0
        self.start = self.epoch_start = time.perf_counter()
        self.train_end: float | None = self.start
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

    def batches_done(self, batch_done: int, metrics: dict[str, Any]) -> bool:
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
        return diverged(mean, self.threshold)

    def train_part_done(self) -> None:
        if self.train_end is None:
            self.train_end = time.perf_counter()

    def epoch_end(self, metrics: dict[str, Any], batch_done: int) -> bool:
        now = time.perf_counter()
        for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
            self.history[name].append(float(metrics.get(name, float("nan"))))
        self.history["seconds"].append(now - self.epoch_start)
        images = min(self.n_train, batch_done * self.config.batch_size)
        self.images_per_second = images / max(1e-9, (self.train_end or now) - self.epoch_start)
        # An epoch without validation (`validate_every_epoch=False`) has no val_loss to judge.
        validated = "val_loss" in metrics
        if diverged(self.history["loss"][-1], self.threshold) or (
                validated and not math.isfinite(self.history["val_loss"][-1])):
            self.reason = "diverged"
        go_on = self._report(batch_done, metrics, force=True, rate=self.images_per_second)
        return go_on and self.reason is None

    def _report(self, batch_done: int, metrics: dict[str, Any], force: bool = False,
                rate: float | None = None) -> bool:
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
