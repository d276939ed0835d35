"""A first-come, first-served cap on concurrent training jobs, with visible queue positions.

When a whole class opens the app at once, every student pressing Train would start a TensorFlow
job on the same two cores; each would crawl and memory would run out. `TrainingQueue` lets at most
`capacity` jobs run; the others wait in arrival order and are told their position while they wait.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from cnnviz import settings
from cnnviz.errors import QueueCancelled

DEFAULT_CAPACITY = settings.DEFAULT_MAX_TRAINING_JOBS


def capacity_from_environment() -> int:
    """`CNNVIZ_MAX_TRAINING_JOBS` (see `cnnviz.settings`): a bad value is reported by
    `settings.problems()` and the default of 2 is used meanwhile."""
    return settings.max_training_jobs()


class TrainingQueue:
    """At most `capacity` holders at once; waiters are admitted strictly in arrival order."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("the training queue needs room for at least one job")
        self.capacity = capacity
        self._condition = threading.Condition()
        self._waiting: deque[int] = deque()
        self._running = 0
        self._tickets = itertools.count()

    @property
    def running(self) -> int:
        with self._condition:
            return self._running

    @property
    def waiting(self) -> int:
        with self._condition:
            return len(self._waiting)

    @contextmanager
    def slot(self, on_wait: Callable[[int], bool | None] | None = None,
             poll_seconds: float = 0.5) -> Iterator[None]:
        """Hold one training slot for the duration of the `with` block.

        While the job waits, `on_wait(position)` is called with its 1-based place in the queue
        each time the queue moves and at least every `poll_seconds`; returning False leaves the
        queue and raises `QueueCancelled`.
        """
        with self._condition:
            ticket = next(self._tickets)
            self._waiting.append(ticket)
            try:
                while not (self._waiting[0] == ticket and self._running < self.capacity):
                    position = self._waiting.index(ticket) + 1
                    if on_wait is not None:
                        # Call back without holding the lock, so the callback may touch the page.
                        self._condition.release()
                        try:
                            keep_waiting = on_wait(position)
                        finally:
                            self._condition.acquire()
                        if keep_waiting is False:
                            raise QueueCancelled("left the training queue")
                    self._condition.wait(timeout=poll_seconds)
            except BaseException:
                self._waiting.remove(ticket)
                self._condition.notify_all()
                raise
            self._waiting.popleft()
            self._running += 1
            self._condition.notify_all()
        try:
            yield
        finally:
            with self._condition:
                self._running -= 1
                self._condition.notify_all()


training_queue = TrainingQueue(capacity_from_environment())
