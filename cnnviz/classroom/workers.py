"""Leaderboard training on RQ workers: several Streamlit servers share one queue in Redis (issue 18).

With `CNNVIZ_REDIS_URL` set, `trainers.open_trainer` gives `RQEntryTrainer`: a page's
`submit(code, entry_id)` enqueues one RQ job per (class, configuration) on the queue
`QUEUE_NAME`, with the job id `job_id(code, config_key)`, so identical configurations of a class
train once, whichever server the students used (`unique=True`: the check and the enqueue are one
atomic step in Redis). Workers started with `python -m cnnviz worker` (`run_worker`, on this
machine or others) run `train_config_job`, which opens the classroom store at the worker's own
Redis URL (a job carries no URL) and calls `leaderboard.train_entry`: status, progress and results go back through the Redis store, where
every server reads them. Trained models go to the worker's disk cache (`CNNVIZ_CACHE_DIR`; give
workers on several machines one shared folder if the app should read their models too).

A worker that dies mid-job never leaves a student waiting: while it trains, the job refreshes a
heartbeat key (`HEARTBEAT_PREFIX` + job id) with a short time-to-live from a thread. `refresh(code)`
(a page calls it whenever it re-reads the board) marks the entries of a job that RQ shows as
started but whose heartbeat has expired, or that RQ shows as failed, stopped or cancelled, as
"failed" with `LOST_MESSAGE` (or `FAILED_MESSAGE`); a Retry (the page sets the entry back to
"queued" and calls `submit`) drops the dead job and enqueues a new one.

`rq` and `redis` are imported only inside functions: a server without Redis never loads them.
Workers are RQ `SimpleWorker`s: jobs run in the worker's own process, so TensorFlow, once
imported, stays loaded between jobs, and nothing forks after TensorFlow was imported.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
import sys
import threading
from typing import TYPE_CHECKING, Any

from cnnviz.classroom import leaderboard, model
from cnnviz.classroom.model import Entry
from cnnviz.classroom.redis_store import RedisStore, _unavailable
from cnnviz.classroom.store import ClassroomStore
from cnnviz.errors import ClassroomUnavailable
from cnnviz.training.results import Progress

if TYPE_CHECKING:
    from rq.job import Job

QUEUE_NAME = "cnnviz-training"
HEARTBEAT_PREFIX = "cnnviz:training:heartbeat:"
# A job's heartbeat lives this long (s) and is renewed four times as often: a worker that died
# is noticed by the next `refresh` at most this long after its last beat. The margin matters:
# while Python imports TensorFlow the beating thread can wait ~1.5 s for the interpreter (measured
# on a loaded 2-core machine), which is why `run_worker` imports it before taking a job.
DEFAULT_HEARTBEAT_SECONDS = 10.0
_BEATS_PER_LIFETIME = 4
# RQ's own limit on one job (a leaderboard budget keeps trainings far shorter).
JOB_TIMEOUT_SECONDS = 3600
# How long RQ keeps a finished or failed job's record (the classes' own lifetime bounds the entries).
JOB_RECORD_SECONDS = 24 * 3600
_WAITING = ("queued", "training")

LOST_MESSAGE = ("The worker training this entry stopped before it finished (its process ended or lost "
                "contact with the class server). Press Retry to train it again.")
FAILED_MESSAGE = "Training this entry failed on the worker ({reason}). Press Retry to train it again."
NO_WORKER_MESSAGE = ("Waiting for a training worker: none is running just now (the lecturer or the "
                     "administrator starts one with `python -m cnnviz worker`).")

logger = logging.getLogger("cnnviz.classroom.workers")


def job_id(code: str, config_key: str) -> str:
    """The RQ job id of one configuration of one class (identical configurations share it)."""
    return f"cnnviz-entry-{code}-{config_key}"


def heartbeat_key(job: str) -> str:
    return f"{HEARTBEAT_PREFIX}{job}"


def worker_name() -> str:
    """This process's worker name: host and process id (so a log line names the process)."""
    return f"cnnviz-{socket.gethostname()}-{os.getpid()}"


class _Heartbeat:
    """A thread that keeps `key` alive (time-to-live `seconds`, renewed every quarter of it)."""

    def __init__(self, client: Any, key: str, seconds: float, value: str) -> None:
        self.client, self.key, self.seconds, self.value = client, key, seconds, value
        self._stop = threading.Event()
        self._beat()
        self._thread = threading.Thread(target=self._run, name="cnnviz-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        self.client.set(self.key, self.value, px=max(1, int(self.seconds * 1000)))

    def _run(self) -> None:
        while not self._stop.wait(self.seconds / _BEATS_PER_LIFETIME):
            try:
                self._beat()
            except Exception:  # noqa: BLE001 - Redis away for a moment: the next beat tries again.
                logger.warning("heartbeat %s not renewed", self.key, exc_info=True)

    def stop(self) -> None:
        """Stop renewing. The key is left to expire by itself: deleted here, before RQ marks the
        job finished, a board's `refresh` in between would see "started, no heartbeat" and fail
        the entry that was just trained."""
        self._stop.set()
        self._thread.join(self.seconds)


# The Redis URL of this worker process (`run_worker` sets it): the job itself carries none, so a
# password in a URL is never stored in a job, and a replica's "localhost" never misleads a worker.
_worker_redis_url: str | None = None


def train_config_job(redis_url: str, code: str, config_key: str, entry_id: int,
                     heartbeat_seconds: float = DEFAULT_HEARTBEAT_SECONDS) -> dict[str, Any]:
    """The RQ task: train entry `entry_id` of class `code` (and its waiting twins) through
    `leaderboard.train_entry` on the Redis store of this worker (`redis_url` only when the task
    runs outside `run_worker`), with a heartbeat key alive while it runs. Returns a small summary
    (kept by RQ)."""
    url = _worker_redis_url or redis_url
    if not url:
        raise ClassroomUnavailable("This worker knows no Redis to report to (start it with `python -m cnnviz worker`).")
    store = RedisStore(url)
    beat = _Heartbeat(store.client, heartbeat_key(job_id(code, config_key)), heartbeat_seconds, worker_name())
    try:
        # It reports through the store, hands the result to the waiting twins, and turns a failed
        # training into a "failed" entry with a message (only an unreachable store raises).
        trained = leaderboard.train_entry(store, code, entry_id, on_progress=_keep_going)
        return {"entry_id": trained.entry_id, "status": trained.status, "accuracy": trained.accuracy}
    finally:
        beat.stop()
        store.close()


def _keep_going(_progress: Progress) -> bool:
    return True


def _aware(moment: datetime.datetime | None) -> datetime.datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=datetime.UTC)


class RQEntryTrainer:
    """`EntryTrainer` on RQ workers (see the module's docstring). `store` is the classroom store
    the pages use (default: a `RedisStore` at `redis_url`); `heartbeat_seconds` is the jobs'
    heartbeat time-to-live (how soon a dead worker is noticed)."""

    def __init__(self, redis_url: str, *, store: ClassroomStore | None = None,
                 heartbeat_seconds: float = DEFAULT_HEARTBEAT_SECONDS) -> None:
        import redis
        from rq import Queue

        self.redis_url = redis_url
        self.store = store if store is not None else RedisStore(redis_url)
        self.heartbeat_seconds = float(heartbeat_seconds)
        # RQ keeps bytes (it does not support decode_responses=True): its own client.
        self.connection = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
        self.queue = Queue(QUEUE_NAME, connection=self.connection)

    # --- RQ's view of a configuration's job ---------------------------------------------------
    def _job(self, code: str, config_key: str) -> Job | None:
        from rq.exceptions import NoSuchJobError
        from rq.job import Job

        try:
            return Job.fetch(job_id(code, config_key), connection=self.connection)
        except NoSuchJobError:
            return None

    def _state(self, job: Job | None) -> str:
        """"waiting", "running", "lost" (started, heartbeat gone), "failed", "finished" or "none"."""
        if job is None:
            return "none"
        try:
            status = job.get_status(refresh=True).value
        except Exception:  # noqa: BLE001 - deleted meanwhile (rq raises InvalidJobOperation).
            return "none"
        if status in ("queued", "deferred", "scheduled", "created", "ready_to_enqueue", "rate_limited"):
            return "waiting"
        if status == "started":
            if self.connection.exists(heartbeat_key(job.id)):
                return "running"
            # The job may have been fetched while it was still queued: read when its worker
            # started it (a stale `started_at` of None made a just-started job look lost, and a
            # board's refresh failed the entries sharing it).
            try:
                job.refresh()
            except Exception:  # noqa: BLE001 - deleted meanwhile.
                return "none"
            started = _aware(job.started_at)
            now = datetime.datetime.now(datetime.UTC)
            # Just picked up: the task has not written its first beat yet.
            if started is None or (now - started).total_seconds() < self.heartbeat_seconds:
                return "running"
            return "lost"
        if status == "finished":
            return "finished"
        return "failed"  # failed, stopped, canceled

    def _failure_reason(self, job: Job) -> str:
        try:
            result = job.latest_result()
            text = (result.exc_string or "") if result is not None else ""
        except Exception:  # noqa: BLE001
            text = ""
        last = next((line for line in reversed(text.strip().splitlines()) if line.strip()), "")
        name = last.split(":", 1)[0].strip()
        if not name or "Abandoned" in text:
            return ""  # RQ found the job's worker gone: the job was lost, not failed.
        return name[:60]

    # --- EntryTrainer -------------------------------------------------------------------------
    def submit(self, code: str, entry_id: int) -> None:
        """Enqueue the training of this entry's configuration unless a job of this class already
        trains it (then the entry shares it); a trained twin's result is copied at once."""
        from rq.exceptions import DuplicateJobError

        code = model.normalise_code(code) or code  # Every server derives the same job id.
        entry = self.store.entry(code, entry_id)
        if entry.status not in _WAITING:
            return
        if leaderboard.done_twin(self.store, code, entry) is not None:
            leaderboard.train_entry(self.store, code, entry_id)  # a copy of a result: instant
            return
        job = self._job(code, entry.config_key)
        if self._state(job) in ("waiting", "running"):
            return
        if job is not None:  # Ended (or lost) without a result for this entry: train anew.
            self.connection.delete(heartbeat_key(job.id))
            job.delete()
        try:
            self.queue.enqueue_call(
                train_config_job, args=("", code, entry.config_key, entry_id, self.heartbeat_seconds),
                job_id=job_id(code, entry.config_key), unique=True, timeout=JOB_TIMEOUT_SECONDS,
                ttl=JOB_RECORD_SECONDS, result_ttl=JOB_RECORD_SECONDS, failure_ttl=JOB_RECORD_SECONDS,
                description=f"cnnviz leaderboard: class {code}, configuration {entry.config_key[:8]}")
        except DuplicateJobError:
            pass  # Another server enqueued the same configuration a moment ago: shared.

    def refresh(self, code: str) -> None:
        """Entries whose job's worker died (heartbeat gone) or whose job failed become "failed"
        with a message; waiting entries of a finished job get its result; entries with no job
        (e.g. lost with a restarted Redis) are submitted; with no worker at all, queued entries say so."""
        code = model.normalise_code(code) or code
        groups: dict[str, list[Entry]] = {}
        for entry in self.store.entries(code):
            if entry.status in _WAITING:
                groups.setdefault(entry.config_key, []).append(entry)
        if not groups:
            return
        workers: int | None = None
        for config_key, waiting in groups.items():
            job = self._job(code, config_key)
            state = self._state(job)
            if state in ("lost", "failed"):
                reason = self._failure_reason(job) if state == "failed" and job is not None else ""
                message = FAILED_MESSAGE.format(reason=reason) if reason else LOST_MESSAGE
                for entry in waiting:
                    self.store.update_entry(code, entry.entry_id, status="failed", message=message)
            elif state in ("finished", "none"):
                self.submit(code, waiting[0].entry_id)
                for entry in waiting[1:]:
                    self.submit(code, entry.entry_id)
            elif state == "waiting":
                if workers is None:
                    workers = self.workers()
                for entry in waiting:
                    wanted = NO_WORKER_MESSAGE if workers == 0 else ""
                    if entry.status == "queued" and entry.message != wanted:
                        self.store.update_entry(code, entry.entry_id, status="queued", message=wanted)

    def workers(self) -> int:
        """How many workers listen on the training queue (a killed one counts until RQ's record of
        it expires)."""
        from rq import Worker

        return int(Worker.count(connection=self.connection, queue=self.queue))

    def close(self) -> None:
        self.connection.close()


def _load_tensorflow() -> None:
    """Import TensorFlow and Keras once, before the first job: every job then finds them loaded
    (a `SimpleWorker` keeps its process), and no job's heartbeat waits on the slow import."""
    import keras
    import tensorflow

    del keras, tensorflow


def run_worker(redis_url: str | None, *, burst: bool = False, name: str | None = None) -> int:
    """`python -m cnnviz worker`: an RQ `SimpleWorker` on `QUEUE_NAME` at `redis_url` until it is
    stopped (Ctrl+C or SIGTERM: the job in hand finishes first), or with `burst` until the queue
    is empty. Returns the exit status: 2 with a message when there is no usable Redis."""
    if not redis_url:
        print("No Redis to take training jobs from: set CNNVIZ_REDIS_URL (e.g. redis://localhost:6379/0) "
              "to the Redis the cnnviz servers use, and run `python -m cnnviz worker` again.", file=sys.stderr)
        return 2
    import redis
    from rq import Queue, SimpleWorker

    global _worker_redis_url
    connection = redis.Redis.from_url(redis_url, socket_connect_timeout=5)
    try:
        connection.ping()
    except redis.RedisError as error:
        print(f"Cannot reach the Redis at CNNVIZ_REDIS_URL ({type(error).__name__}: {error}); start it or fix "
              "the URL, and run `python -m cnnviz worker` again.", file=sys.stderr)
        return 2
    _load_tensorflow()
    _worker_redis_url = redis_url
    worker = SimpleWorker([Queue(QUEUE_NAME, connection=connection)],
                          connection=connection, name=name or worker_name())
    print(f"cnnviz training worker {worker.name} on queue {QUEUE_NAME!r}"
          f"{' (burst: until the queue is empty)' if burst else ''}", file=sys.stderr, flush=True)
    try:
        worker.work(burst=burst, logging_level="INFO")
    except redis.RedisError as error:
        print(f"The worker stopped: it lost its Redis ({type(error).__name__}: {error}).", file=sys.stderr)
        return 1
    return 0


# Redis's own errors (server down, timeout) from a trainer's calls reach the page as the store's
# `ClassroomUnavailable` message, never as a traceback.
for _name in ("submit", "refresh", "workers"):
    setattr(RQEntryTrainer, _name, _unavailable(getattr(RQEntryTrainer, _name)))


__all__ = ["QUEUE_NAME", "RQEntryTrainer", "job_id", "run_worker", "train_config_job"]
