"""The leaderboard on RQ workers (issue 18): a real `redis-server` and two real `python -m cnnviz worker`
subprocesses; the pages' side is `RQEntryTrainer` (what `trainers.open_trainer` gives with a Redis URL).

Oracles: the entries as a second, independent store reads them (another server's view); RQ's own
record of how many times each job ran; the worker processes' exit status after a SIGKILL. Every wait
is a poll against a deadline (never a sleep that a timing assertion relies on).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cnnviz import __main__ as cli
from cnnviz.classroom import RedisStore, leaderboard, trainers, workers
from cnnviz.classroom.model import Entry

PROJECT_ROOT = Path(__file__).resolve().parents[2]
HEARTBEAT_SECONDS = 4.0
DEADLINE_SECONDS = 240.0  # The first job of each worker imports TensorFlow (slow on a loaded machine).
# A tiny budget: a few hundred images, one epoch.
BUDGET = leaderboard.LeaderboardBudget(max_parameters=50_000, max_epochs=1, train_images=256, test_images=200)


def _wait_for(what: str, check: Callable[[], object], timeout: float = DEADLINE_SECONDS, every: float = 0.05) -> object:
    """Poll `check` until it returns something truthy; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)  # Polling interval only: no assertion depends on it.


@pytest.fixture(scope="module")
def worker_url(redis_url: str) -> str:
    """A database of the session's redis-server that only this module uses (others flush theirs)."""
    import redis

    url = redis_url.rsplit("/", 1)[0] + "/5"
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    return url


@pytest.fixture(scope="module")
def two_workers(worker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, subprocess.Popen]]:
    """Two `python -m cnnviz worker` processes on `worker_url` (own disk cache), killed at the end."""
    from rq import Worker

    folder = tmp_path_factory.mktemp("workers")
    env = {**os.environ, "CNNVIZ_REDIS_URL": worker_url, "CNNVIZ_CACHE_DIR": str(folder / "cache"),
           "CNNVIZ_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    processes: dict[int, subprocess.Popen] = {}
    logs = []
    try:
        for number in (1, 2):
            log = (folder / f"worker{number}.log").open("w")
            logs.append(log)
            process = subprocess.Popen([sys.executable, "-m", "cnnviz", "worker"], cwd=PROJECT_ROOT, env=env,
                                       stdout=log, stderr=subprocess.STDOUT)
            processes[process.pid] = process
        trainer = workers.RQEntryTrainer(worker_url)
        try:
            _wait_for("two registered workers", lambda: all(p.poll() is None for p in processes.values())
                      and Worker.count(connection=trainer.connection, queue=trainer.queue) >= 2
                      or _dead(processes, folder), timeout=120)
        finally:
            trainer.close()
        yield processes
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.terminate()  # A warm shutdown: the job in hand finishes first.
        for process in processes.values():
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in logs:
            log.close()


def _dead(processes: dict[int, subprocess.Popen], folder: Path) -> bool:
    for process in processes.values():
        if process.poll() is not None:
            logs = "\n".join(path.read_text()[-1500:] for path in folder.glob("worker*.log"))
            raise AssertionError(f"a worker exited early ({process.returncode}):\n{logs}")
    return False


@pytest.fixture
def trainer(worker_url: str) -> Iterator[workers.RQEntryTrainer]:
    made = workers.RQEntryTrainer(worker_url, heartbeat_seconds=HEARTBEAT_SECONDS)
    yield made
    made.close()
    made.store.close()


def _class(store: RedisStore, budget: leaderboard.LeaderboardBudget = BUDGET) -> tuple[str, list[str]]:
    new = store.create_class("workers")
    store.set_budget(new.code, new.lecturer_secret, budget.to_mapping())
    return new.code, [store.join(new.code, name).student_id for name in ("Ada", "Alan", "Grace")]


def _settled(trainer: workers.RQEntryTrainer, code: str, entry_ids: list[int], *statuses: str) -> Callable[[], bool]:
    def check() -> bool:
        trainer.refresh(code)
        found = {e.entry_id: e.status for e in trainer.store.entries(code)}
        return all(found[i] in statuses for i in entry_ids)
    return check


@pytest.mark.slow
def test_entries_of_two_students_train_on_the_workers_once_per_configuration(
        two_workers: dict[int, subprocess.Popen], trainer: workers.RQEntryTrainer, worker_url: str) -> None:
    from rq.job import Job

    code, (ada, alan, _) = _class(trainer.store)
    small = leaderboard.preset_entry_config("bottleneck_cnn", BUDGET)
    relu = leaderboard.preset_entry_config("fashion_relu_cnn", BUDGET)
    submitted = [trainer.store.submit_entry(code, ada, small), trainer.store.submit_entry(code, alan, small),
                 trainer.store.submit_entry(code, alan, relu)]
    for entry in submitted:
        trainer.submit(code, entry.entry_id)
    ids = [entry.entry_id for entry in submitted]
    _wait_for("every entry trained", _settled(trainer, code, ids, "done", "failed"))

    other_server = RedisStore(worker_url)  # What a second Streamlit replica reads.
    try:
        seen: list[Entry] = other_server.entries(code)
        board = other_server.leaderboard(code)
    finally:
        other_server.close()
    assert [e.status for e in seen] == ["done", "done", "done"], [e.message for e in seen]
    assert seen[0].accuracy == seen[1].accuracy and seen[0].parameters == seen[1].parameters == 6496
    assert seen[2].parameters == 38254
    assert sorted(row.entry.entry_id for row in board) == ids
    # RQ ran one job per configuration, each once: the identical entries shared one training.
    jobs = {key: Job.fetch(workers.job_id(code, key), connection=trainer.connection, serializer=trainer.queue.serializer)
            for key in {e.config_key for e in seen}}
    assert len(jobs) == 2
    # The entries are reported from inside the job; RQ records the job's result only after it
    # returns (a CI run counted before that): wait for RQ's own "finished" first.
    _wait_for("RQ's record of every job", lambda: all(job.get_status(refresh=True).value == "finished"
                                                       for job in jobs.values()), timeout=30)
    assert all(len(job.results()) == 1 for job in jobs.values())
    assert trainer.queue.count == 0


@pytest.mark.slow
def test_a_worker_killed_mid_job_fails_its_entry_with_a_message_and_the_queue_goes_on(
        two_workers: dict[int, subprocess.Popen], trainer: workers.RQEntryTrainer) -> None:
    budget = leaderboard.LeaderboardBudget(max_parameters=50_000, max_epochs=1, train_images=320, test_images=200)
    code, (ada, alan, grace) = _class(trainer.store, budget)
    doomed = trainer.store.submit_entry(code, ada, leaderboard.preset_entry_config("fashion_relu_cnn", budget))
    trainer.submit(code, doomed.entry_id)
    beat = workers.heartbeat_key(workers.job_id(code, doomed.config_key))
    name = _wait_for("the job's heartbeat", lambda: trainer.connection.get(beat), every=0.005)
    victim = two_workers[int(name.decode().rsplit("-", 1)[1])]
    os.kill(victim.pid, signal.SIGKILL)
    assert victim.wait(timeout=30) == -signal.SIGKILL

    failed = _wait_for("the killed job's entry to fail", lambda: (trainer.refresh(code), trainer.store.entry(
        code, doomed.entry_id))[1].status == "failed", timeout=10 * HEARTBEAT_SECONDS + 30)
    assert failed
    entry = trainer.store.entry(code, doomed.entry_id)
    assert entry.message == workers.LOST_MESSAGE and "Retry" in entry.message

    # The other worker keeps going: a later entry trains...
    later = trainer.store.submit_entry(code, grace, leaderboard.preset_entry_config("bottleneck_cnn", budget))
    trainer.submit(code, later.entry_id)
    # ... and a Retry (the page sets the entry back to "queued") trains the lost one.
    trainer.store.update_entry(code, doomed.entry_id, status="queued")
    trainer.submit(code, doomed.entry_id)
    _wait_for("the later entry and the retried one", _settled(trainer, code, [later.entry_id, doomed.entry_id],
                                                                "done", "failed"))
    statuses = {e.entry_id: (e.status, e.message) for e in trainer.store.entries(code)}
    assert statuses[later.entry_id] == ("done", "")
    assert statuses[doomed.entry_id] == ("done", "")
    survivors = [p for p in two_workers.values() if p is not victim]
    assert len(survivors) == 1 and survivors[0].poll() is None
    del alan


def test_queued_entries_say_when_no_worker_is_running(redis_url: str) -> None:
    import redis

    url = redis_url.rsplit("/", 1)[0] + "/6"  # No worker listens here.
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    trainer = workers.RQEntryTrainer(url)
    try:
        code, (ada, *_) = _class(trainer.store)
        entry = trainer.store.submit_entry(code, ada, leaderboard.preset_entry_config("bottleneck_cnn", BUDGET))
        trainer.submit(code, entry.entry_id)
        trainer.submit(code, entry.entry_id)  # Once more (another server): still one job.
        assert trainer.queue.job_ids == [workers.job_id(code, entry.config_key)]
        trainer.refresh(code)
        assert trainer.store.entry(code, entry.entry_id).message == workers.NO_WORKER_MESSAGE
        assert isinstance(trainers.open_trainer(trainer.store, redis_url=url), workers.RQEntryTrainer)
        assert isinstance(trainers.open_trainer(trainer.store), trainers.LocalEntryTrainer)
    finally:
        trainer.close()
        trainer.store.close()


def test_a_job_fetched_while_queued_and_started_since_is_running_not_lost(redis_url: str) -> None:
    # The race CI once hit: a board's refresh fetched the job while it was queued, a worker started
    # it before the refresh read its status, and its heartbeat did not exist yet. The stale fetch
    # had no start time, so the job looked lost and its waiting twin was failed.
    import datetime

    import redis
    from rq.job import Job, JobStatus

    url = redis_url.rsplit("/", 1)[0] + "/7"  # No worker listens here.
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    trainer = workers.RQEntryTrainer(url, heartbeat_seconds=HEARTBEAT_SECONDS)
    try:
        code, (ada, *_) = _class(trainer.store)
        entry = trainer.store.submit_entry(code, ada, leaderboard.preset_entry_config("bottleneck_cnn", BUDGET))
        trainer.submit(code, entry.entry_id)
        stale = trainer._job(code, entry.config_key)  # Fetched while queued.
        assert stale is not None and trainer._state(stale) == "waiting"
        started = Job.fetch(stale.id, connection=trainer.connection, serializer=trainer.queue.serializer)
        started.started_at = datetime.datetime.now(datetime.UTC)  # What a worker writes when it starts.
        started.save()
        started.set_status(JobStatus.STARTED)
        assert trainer._state(stale) == "running"
        started.started_at = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=3 * HEARTBEAT_SECONDS)
        started.save()
        assert trainer._state(stale) == "lost"  # Started long ago, still no heartbeat: lost.
    finally:
        trainer.close()
        trainer.store.close()


def test_the_worker_command_needs_a_usable_redis(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
                                                 redis_url: str) -> None:
    monkeypatch.delenv("CNNVIZ_REDIS_URL", raising=False)
    assert cli.main(["worker", "--burst"]) == 2
    assert "set CNNVIZ_REDIS_URL" in capsys.readouterr().err
    monkeypatch.setenv("CNNVIZ_REDIS_URL", "http://localhost:6379")
    assert cli.main(["worker", "--burst"]) == 2
    assert "is not a Redis URL" in capsys.readouterr().err
    closed = redis_url.rsplit(":", 1)[0] + ":1/0"  # Nothing listens on port 1.
    monkeypatch.setenv("CNNVIZ_REDIS_URL", closed)
    assert cli.main(["worker", "--burst"]) == 2
    assert "Cannot reach the Redis" in capsys.readouterr().err
    # A worker that runs is the `two_workers` fixture's (it imports TensorFlow first: not here).


def test_a_finished_jobs_heartbeat_outlives_the_job(worker_url: str) -> None:
    """The task stops beating but leaves the key to expire: deleted at the end of the task, a board's
    refresh between that moment and RQ marking the job finished saw "started, no heartbeat" and
    failed the entry that had just been trained."""
    import redis

    with redis.Redis.from_url(worker_url) as client:
        key = workers.heartbeat_key("cnnviz-entry-probe")
        beat = workers._Heartbeat(client, key, 2.0, "probe")
        beat.stop()
        assert client.exists(key)  # Still there after the task ended ...
        assert 0 < client.pttl(key) <= 2000  # ... and gone by itself within one lifetime.


def test_a_job_carries_no_redis_url(worker_url: str) -> None:
    """A job carries no URL: the worker reports to its own CNNVIZ_REDIS_URL, so a password in a URL
    never sits in a job, and a replica's "localhost" never sends a remote worker elsewhere."""
    import redis

    store = RedisStore(worker_url)
    try:
        new = store.create_class("json jobs")
        store.set_budget(new.code, new.lecturer_secret, BUDGET.to_mapping())
        student = store.join(new.code, "Ada")
        config = leaderboard.preset_entry_config(leaderboard.preset_choices(BUDGET)[0][0], BUDGET)
        entry = store.submit_entry(new.code, student.student_id, config)
        trainer = workers.RQEntryTrainer(worker_url, store=store)
        trainer.submit(new.code, entry.entry_id)
        with redis.Redis.from_url(worker_url) as client:
            data = client.hget(f"rq:job:{workers.job_id(new.code, entry.config_key)}", "data")
        assert data is not None
        payload = zlib.decompress(data)  # RQ compresses the serialized payload (read as bytes, never unpickled).
        assert b"train_config_job" in payload and b"redis://" not in payload and worker_url.encode() not in payload
        trainer.queue.empty()
        trainer.close()
    finally:
        store.close()
