"""Background jobs: long work that survives the reruns of a Streamlit page.

A Streamlit script is interrupted and re-run whenever a widget is used (a Stop click included),
so a training loop inside the script would be lost. A `Job` runs `work(on_progress)` in its own
thread; any number of page runs poll `latest` (the last progress report) and call
`request_stop()` (the next `on_progress` returns False). When the work ends, `result` or `error`
(the exception, for the page to show) is set and `done` is True.

`training_job` is the job of one `train(config)` (it also keeps the within-epoch points of the
live curves); `cnnviz.lessons.transfer.comparison_job` runs a strategy comparison as a `Job`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from cnnviz.training import engine
from cnnviz.training.config import TrainConfig
from cnnviz.training.results import Progress, TrainResult

P = TypeVar("P")
R = TypeVar("R")

# (fractional epoch, running loss, running accuracy): one point of the live curves.
LivePoint = tuple[float, float, float]


class Job(Generic[P, R]):
    """`work(on_progress)` running in a background thread, watched by any number of pages.

    `complete(result)` says whether a result is worth keeping for others (default: any result);
    `live_point(progress)`, when given, turns a progress report into a point of `live_points`
    (or None to skip it).
    """

    def __init__(self, work: Callable[[Callable[[P], bool]], R], *, name: str,
                 complete: Callable[[R], bool] | None = None,
                 live_point: Callable[[P], LivePoint | None] | None = None) -> None:
        self.latest: P | None = None
        self.live_points: list[LivePoint] = []
        self.result: R | None = None
        self.error: BaseException | None = None
        self.started_at = time.time()
        self._work = work
        self._complete = complete
        self._live_point = live_point
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Job[P, R]:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self.result = self._work(self._on_progress)
        except BaseException as error:  # noqa: BLE001 - handed to the page, which shows it.
            self.error = error
        finally:
            self._done.set()

    def _on_progress(self, progress: P) -> bool:
        self.latest = progress
        if self._live_point is not None:
            point = self._live_point(progress)
            if point is not None:
                self.live_points.append(point)
        return not self._stop.is_set()

    def request_stop(self) -> None:
        """Ask the work to stop at its next progress report."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def finished(self) -> bool:
        """Done with a complete result (worth sharing); False while running and for stopped or failed work."""
        if not self.done or self.result is None:
            return False
        return self._complete is None or self._complete(self.result)

    def wait(self, timeout: float | None = None) -> bool:
        """Block up to `timeout` seconds; True once the job is done."""
        return self._done.wait(timeout)


def _training_point(progress: Progress) -> LivePoint | None:
    """The live-curve point of a training report (None while waiting, warming up or at a batch count of 0)."""
    if progress.phase != "train" or not progress.batch or "loss" not in progress.metrics:
        return None
    x = progress.epoch - 1 + progress.batch / max(1, progress.batches)
    return x, progress.metrics["loss"], progress.metrics.get("accuracy", float("nan"))


def _finished(result: TrainResult) -> bool:
    return result.stopped_reason == "finished"


def training_job(config: TrainConfig, *, data: Any = None, use_cache: bool | None = None,
                 source: str | None = None) -> Job[Progress, TrainResult]:
    """The (not yet started) job of `engine.train(config, data=..., use_cache=..., source=...)`.

    Its `finished` is True only for a run that finished (not stopped or diverged), and its
    `live_points` are the within-epoch (epoch position, loss, accuracy) points of the live curves.
    """

    def work(on_progress: Callable[[Progress], bool]) -> TrainResult:
        return engine.train(config, on_progress, data=data, use_cache=use_cache, source=source)

    return Job(work, name=f"cnnviz-train-{config.key()[:8]}", complete=_finished, live_point=_training_point)
