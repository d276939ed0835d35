"""Who trains the leaderboard's entries: `EntryTrainer` and its in-process implementation.

A page calls `submit(code, entry_id)` when a student submits (or retries) an entry and
`refresh(code)` whenever it re-reads the board; neither waits for a training. The work itself
is always `cnnviz.classroom.leaderboard.train_entry(store, code, entry_id, on_progress=...)`, which
reports through the store (`update_entry`): every page reads the status from the store, never
from the trainer.

- `LocalEntryTrainer` (one server, the default) runs `train_entry` as a background `Job` in a
  `JobRegistry` keyed by the entry's `config_key`: entries with identical configurations share
  one job (one training), and every training goes through the engine's `training_queue`, so
  leaderboard trainings and the Train page's share the same slots.
- With `CNNVIZ_REDIS_URL`, an RQ trainer (workers started with `python -m cnnviz worker`) does the
  same in other processes; `open_trainer` picks it.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from cnnviz.classroom import leaderboard, workers
from cnnviz.classroom.model import Entry
from cnnviz.classroom.store import ClassroomStore
from cnnviz.training.jobs import Job, JobRegistry

# The registry's holder of every leaderboard job: the class, not a browser session (a student
# who closes the tab still gets a place on the board), so nothing is stopped as orphaned.
_HOLDER_PREFIX = "classroom:"


@runtime_checkable
class EntryTrainer(Protocol):
    """Trains leaderboard entries somewhere; results come back through the store."""

    def submit(self, code: str, entry_id: int) -> None:
        """Start (or share) the training of this entry; returns at once."""

    def refresh(self, code: str) -> None:
        """Look at the running work of this class (turn lost work into "failed" or finish it)."""


class LocalEntryTrainer:
    """`train_entry` in this server's background threads (see the module's docstring).

    `registry` is where the jobs live (default: a registry of its own, whose jobs are never
    stopped as orphaned and whose per-holder cap is the store's bound on entries).
    """

    def __init__(self, store: ClassroomStore, *, registry: JobRegistry | None = None) -> None:
        self.store = store
        max_entries = getattr(getattr(store, "limits", None), "max_entries", 400)
        self.registry = registry if registry is not None else JobRegistry(per_session=max_entries, keep_ended=64)

    def _job_key(self, code: str, entry: Entry) -> str:
        return f"leaderboard:{code}:{entry.config_key}"

    def submit(self, code: str, entry_id: int) -> None:
        entry = self.store.entry(code, entry_id)
        if entry.status not in ("queued", "training"):
            return
        if leaderboard.done_twin(self.store, code, entry) is not None:
            leaderboard.train_entry(self.store, code, entry_id)  # a copy of a result: instant
            return
        key = self._job_key(code, entry)
        job = self.registry.get(key)
        if job is not None and job.done:
            # Ended without a result to share (failed, or this entry is a retry): train anew.
            self.registry.forget(key)

        def start() -> Job:
            def work(on_progress: leaderboard.OnEntryProgress) -> Entry:
                return leaderboard.train_entry(self.store, code, entry_id, on_progress=on_progress)
            return Job(work, name=f"cnnviz-leaderboard-{entry.config_key[:8]}").start()

        self.registry.attach(key, start, session=f"{_HOLDER_PREFIX}{code}", slot=f"entry-{entry_id}")

    def refresh(self, code: str) -> None:
        """Entries left waiting although the job of their configuration ended (submitted while it
        finished) get its result now; entries with no job at all (e.g. queued before a restart of
        this trainer) are submitted."""
        for entry in self.store.entries(code):
            if entry.status not in ("queued", "training"):
                continue
            job = self.registry.get(self._job_key(code, entry))
            if job is None or job.done:
                self.submit(code, entry.entry_id)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every job of this trainer ended (tests, benches); True if they all did."""
        jobs = [self.registry.get(key) for key in self.registry.running()]
        return all(job.wait(timeout) for job in jobs if job is not None)


def open_trainer(store: ClassroomStore, *, redis_url: str | None = None) -> EntryTrainer:
    """The trainer for `store`: the RQ one when `redis_url` is given, else `LocalEntryTrainer`."""
    if redis_url:
        return workers.RQEntryTrainer(redis_url, store=store)
    return LocalEntryTrainer(store)


__all__ = ["EntryTrainer", "LocalEntryTrainer", "open_trainer"]
