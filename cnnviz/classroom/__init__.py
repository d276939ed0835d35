"""Class sessions (issue 18): the state a lecturer and a room of students share.

- `model`        the records (ClassInfo, Student, Poll, PollResults, Entry, RankedEntry,
                 FollowState), the `Limits`, and the one set of checks both stores use
                 (codes, secrets, names, polls, entries, follow me);
- `store`        `ClassroomStore`, the interface pages use, and `InProcessStore` (one server);
- `redis_store`  `RedisStore`, the same interface in Redis (several servers; `redis` is
                 imported only when one is made).

`open_store(redis_url)` gives the Redis store when a URL is given, else the in-process one.

How pages use it (the pages come later):
- one store per server process (e.g. `st.cache_resource` in widgets/ui.py), every session shares it;
- the lecturer's page keeps `NewClass.lecturer_secret` in its own session only and passes it to
  every lecturer call; a student's page keeps its `Student.student_id` the same way;
- names, questions and options are stored raw (bounded, no markup characters in names): pages
  show them as text or escape them;
- the live histogram is `results(code, poll_id, secret)`, re-read every second or so
  (`st.fragment(run_every=...)`); students read `current_poll(code)` and, once it is revealed,
  `results(code, poll_id)`;
- follow me: a following page re-reads `follow_state(code)` and moves when `version` is newer
  than the one it last applied;
- every refusal is a `cnnviz.errors.ClassroomError` (pages catch `CnnvizError`).
"""

from __future__ import annotations

from cnnviz.classroom.model import (
    DEFAULT_LIMITS,
    ClassInfo,
    Entry,
    FollowState,
    Limits,
    NewClass,
    Poll,
    PollResults,
    RankedEntry,
    Student,
)
from cnnviz.classroom.redis_store import RedisStore
from cnnviz.classroom.store import ClassroomStore, Clock, InProcessStore


def open_store(redis_url: str | None = None, *, limits: Limits = DEFAULT_LIMITS) -> ClassroomStore:
    """The Redis store at `redis_url` when one is given, else a new in-process store."""
    return RedisStore(redis_url, limits=limits) if redis_url else InProcessStore(limits=limits)


__all__ = [
    "DEFAULT_LIMITS", "ClassInfo", "ClassroomStore", "Clock", "Entry", "FollowState", "InProcessStore", "Limits",
    "NewClass", "Poll", "PollResults", "RankedEntry", "RedisStore", "Student", "open_store",
]
