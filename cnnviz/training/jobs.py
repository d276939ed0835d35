"""Background jobs: long work that survives the reruns of a Streamlit page.

A Streamlit script is interrupted and re-run whenever a widget is used (a Stop click included),
so a training loop inside the script would be lost. A `Job` runs `work(on_progress)` in its own
thread; any number of page runs poll `latest` (the last progress report) and call
`request_stop()` (the next `on_progress` returns False). When the work ends, `result` or `error`
(the exception, for the page to show) is set and `done` is True.

`training_job` is the job of one `train(config)` (it also keeps the within-epoch points of the
live curves); `cnnviz.lessons.transfer.comparison_job` runs a strategy comparison as a `Job`.

`JobRegistry` is where a server keeps its jobs, so that they belong to somebody:

- one job per key: identical requests (any session, any number of clicks) share it, and a job
  is found again by its key for as long as it runs (only ended jobs are ever forgotten);
- each job is held by (session, slot) pairs, a slot being one place on a page that trains (a
  session holds one job per slot: asking for another releases the previous one);
- a job that nobody alive holds any more (its sessions closed, or every holder moved on) is
  stopped at its next progress report once `grace_seconds` have passed, which frees its slot
  in the training queue;
- a session may have at most `per_session` running or waiting jobs that it started and still
  holds (`JobLimitError`); watching a job somebody else started costs nothing.

Whether a session is alive is asked of `is_alive(session)` (the Streamlit side passes the
runtime's own answer); without it every holder counts as alive.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from cnnviz import memory
from cnnviz.errors import JobLimitError
from cnnviz.training import engine
from cnnviz.training.config import TrainConfig
from cnnviz.training.results import Progress, TrainResult

logger = logging.getLogger("cnnviz.jobs")

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
        # What the page that started the job keeps with it (for example a progress tracker).
        self.details: Any = None
        # Set by a `JobRegistry`: False once nobody alive holds the job (then it stops).
        self.keep_running: Callable[[], bool] | None = None
        self.orphaned = False
        self._work = work
        self._complete = complete
        self._live_point = live_point
        self._stop = threading.Event()
        self._done = threading.Event()
        self.name = name
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
            memory.trim_heap()  # The run's freed buffers back to the system (issue 15: < 1 GB).

    def _on_progress(self, progress: P) -> bool:
        self.latest = progress
        if self._live_point is not None:
            point = self._live_point(progress)
            if point is not None:
                self.live_points.append(point)
        if not self._stop.is_set() and self.keep_running is not None and not self.keep_running():
            logger.info("stopping job %s: no open session holds it any more", self.name)
            self.orphaned = True
            self._stop.set()
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


MAX_JOBS_PER_SESSION = 2
KEEP_ENDED_JOBS = 8
ORPHAN_GRACE_SECONDS = 3.0

Holder = tuple[str, str]  # (session id, slot)


@dataclass
class _Entry:
    job: Job
    holders: set[Holder] = field(default_factory=set)
    held_at: float = 0.0  # the last time a holder was seen alive
    starter: str = ""  # the session whose request started it


class JobRegistry:
    """The jobs of one server, by key (see the module's docstring).

    `attach(key, start, session=..., slot=...)` returns the job of `key`, calling `start()` (which
    returns a started `Job`) only when there is none; `forget(key)` drops an ended job so that the
    next `attach` starts anew. Up to `keep_ended` ended jobs stay (the least recently attached go
    first); running and waiting jobs always stay.
    """

    def __init__(self, *, per_session: int = MAX_JOBS_PER_SESSION, keep_ended: int = KEEP_ENDED_JOBS,
                 grace_seconds: float = ORPHAN_GRACE_SECONDS,
                 is_alive: Callable[[str], bool] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_session = per_session
        self.keep_ended = keep_ended
        self.grace_seconds = grace_seconds
        self.is_alive = is_alive
        self._clock = clock
        self._lock = threading.RLock()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._held: dict[Holder, str] = {}
        self.started = 0  # how many jobs `start()` made, ever (a count for tests and benches)

    def attach(self, key: str, start: Callable[[], Job], *, session: str, slot: str) -> Job:
        """The job of `key`, held by (`session`, `slot`); started with `start()` if there is none.

        The job this (session, slot) held before, if another, is released. Raises `JobLimitError`
        (and starts nothing) when a new job would give `session` more than `per_session` running
        or waiting jobs.
        """
        holder = (session, slot)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.job.orphaned:
                # Stopped (or stopping) because nobody held it: not a result to hand anyone.
                del self._entries[key]
                entry = None
            if entry is None:
                # The jobs this session started and still holds elsewhere (watching somebody
                # else's job costs nothing; the job this slot held is being replaced).
                running = [other for other in self._entries.values()
                           if other.starter == session and not other.job.done and not other.job.stop_requested
                           and any(held[0] == session for held in other.holders - {holder})]
                if len(running) >= self.per_session:
                    raise JobLimitError(
                        f"You already have {len(running)} trainings running or waiting for a slot, the most "
                        "one person can have at once on this server. Stop one of them (its Stop button), "
                        "or wait until one ends, then try again.")
                job = start()
                logger.info("started job %s (%s) for session %s", job.name, key[:80], session[:8])
                entry = _Entry(job=job, held_at=self._clock(), starter=session)
                job.keep_running = self._keeper(entry)
                self._entries[key] = entry
                self.started += 1
            self._entries.move_to_end(key)
            self._release(holder, keep=key)
            entry.holders.add(holder)
            entry.held_at = self._clock()
            self._held[holder] = key
            self._prune()
            return entry.job

    def get(self, key: str) -> Job | None:
        """The job of `key`, if the registry has one (running, or ended and not yet forgotten)."""
        with self._lock:
            entry = self._entries.get(key)
            return None if entry is None else entry.job

    def forget(self, key: str) -> None:
        """Drop the job of `key` if it ended (a running job is never forgotten)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.job.done:
                del self._entries[key]
                for holder in entry.holders:
                    if self._held.get(holder) == key:
                        del self._held[holder]

    def release(self, session: str, slot: str) -> None:
        """(`session`, `slot`) no longer wants its job (nobody else holding it, it stops after the grace)."""
        with self._lock:
            self._release((session, slot))

    def running(self) -> list[str]:
        """The keys of the jobs not yet done."""
        with self._lock:
            return [key for key, entry in self._entries.items() if not entry.job.done]

    def _release(self, holder: Holder, keep: str | None = None) -> None:
        previous = self._held.pop(holder, None)
        if previous is not None and previous != keep and previous in self._entries:
            self._entries[previous].holders.discard(holder)

    def _prune(self) -> None:
        ended = [key for key, entry in self._entries.items() if entry.job.done]
        for key in ended[:max(0, len(ended) - self.keep_ended)]:
            self.forget(key)

    def _keeper(self, entry: _Entry) -> Callable[[], bool]:
        def keep_running() -> bool:
            """True while a holder is alive, or was within the last `grace_seconds`."""
            with self._lock:
                alive = [holder for holder in entry.holders
                         if self.is_alive is None or self.is_alive(holder[0])]
                now = self._clock()
                if alive:
                    entry.held_at = now
                    return True
                return now - entry.held_at < self.grace_seconds
        return keep_running


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
