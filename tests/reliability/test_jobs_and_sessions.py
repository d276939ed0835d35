"""Regression corpus, queue class: jobs belong to somebody (`training.JobRegistry`).

What issue 14 measured: a closed tab's training ran to the end holding its queue slot; the
shared job cache (8 entries) forgot running jobs, so 12 students clicking while they waited made
the server run 19 trainings for 12 configurations. Here real `Job` threads and a real
`TrainingQueue` (and, in the last tests, the real engine) stand in for the students; whether a
browser session is alive is a flag per session, as the Streamlit runtime would answer it.
"""

from __future__ import annotations

import threading
import time

import pytest

from cnnviz import training
from cnnviz.errors import CnnvizError, JobLimitError, QueueCancelled
from cnnviz.training import queue as training_queue
from cnnviz.training.jobs import JobRegistry


class Sessions:
    """Which sessions are alive (the runtime's `is_active_session`), and a clock the test moves."""

    def __init__(self) -> None:
        self.closed: set[str] = set()
        self.now = 0.0

    def is_alive(self, session: str) -> bool:
        return session not in self.closed

    def clock(self) -> float:
        return self.now


def queued_work(slots: training_queue.TrainingQueue, started: list[str], name: str,
                release: threading.Event):
    """Work that waits for a slot of `slots` (reporting while it waits), then "trains" (reporting
    every 10 ms) until `release` is set or it is asked to stop; records `name` in `started` once it
    holds a slot."""

    def work(on_progress):
        try:
            with slots.slot(lambda position: on_progress(("waiting", position)), poll_seconds=0.01):
                started.append(name)
                steps = 0
                while not release.is_set():
                    if on_progress(("train", steps)) is False:
                        return "stopped"
                    steps += 1
                    time.sleep(0.01)
                return "finished"
        except QueueCancelled:
            return "left the queue"

    return work


def _eventually(condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def test_twelve_students_clicking_while_waiting_start_one_training_per_configuration():
    # 12 students, 4 distinct configurations, 1 training slot; each student clicks Train 5 times
    # while waiting (every click is an `attach`, as every rerun of the page is).
    slots = training_queue.TrainingQueue(capacity=1)
    started: list[str] = []
    release = threading.Event()
    registry = JobRegistry(keep_ended=2)  # fewer than the configurations: running jobs must stay
    made: list[str] = []

    def click(student: int) -> None:
        config = f"config-{student % 4}"

        def start():
            made.append(config)
            return training.Job(queued_work(slots, started, config, release), name=config).start()

        for _ in range(5):
            registry.attach(config, start, session=f"student-{student}", slot="train")

    students = [threading.Thread(target=click, args=(i,)) for i in range(12)]
    for thread in students:
        thread.start()
    for thread in students:
        thread.join(30)
    assert sorted(made) == [f"config-{i}" for i in range(4)]
    assert registry.started == 4 and len(registry.running()) == 4
    release.set()
    for i in range(4):
        assert registry.get(f"config-{i}").wait(30)
    # Each configuration trained once, one after another through the single slot.
    assert sorted(started) == [f"config-{i}" for i in range(4)]


def test_a_running_job_is_never_forgotten_however_many_jobs_start():
    registry = JobRegistry(keep_ended=1, per_session=100)
    release = threading.Event()
    slots = training_queue.TrainingQueue(capacity=100)
    jobs = {f"job-{i}": registry.attach(
        f"job-{i}", lambda i=i: training.Job(queued_work(slots, [], str(i), release), name=str(i)).start(),
        session=f"s{i}", slot="train") for i in range(20)}
    assert all(registry.get(key) is job for key, job in jobs.items())
    release.set()
    for job in jobs.values():
        assert job.wait(30)
    registry.attach("one-more", lambda: training.Job(lambda report: "done", name="x").start(),
                    session="s0", slot="other")
    registry.get("one-more").wait(10)
    registry.attach("and-another", lambda: training.Job(lambda report: "done", name="y").start(),
                    session="s0", slot="third")
    # Ended jobs are the only ones pruned: at most `keep_ended` of them stay.
    ended = [key for key in list(jobs) + ["one-more", "and-another"] if registry.get(key) is not None
             and registry.get(key).done]
    assert len(ended) <= 1


def test_a_closed_tabs_job_stops_after_the_grace_and_frees_its_slot_for_the_next_student():
    sessions = Sessions()
    registry = JobRegistry(grace_seconds=5.0, is_alive=sessions.is_alive, clock=sessions.clock)
    slots = training_queue.TrainingQueue(capacity=1)
    started: list[str] = []
    release = threading.Event()
    first = registry.attach("a", lambda: training.Job(queued_work(slots, started, "a", release), name="a").start(),
                            session="tab-1", slot="train")
    _eventually(lambda: started == ["a"], "the first job to hold the slot")
    second = registry.attach("b", lambda: training.Job(queued_work(slots, started, "b", release), name="b").start(),
                             session="tab-2", slot="train")
    _eventually(lambda: second.latest == ("waiting", 1), "the second job to wait in place 1")

    sessions.closed.add("tab-1")  # the first student closes the tab
    sessions.now = 4.9  # within the grace (a reconnect would still find the job running)
    time.sleep(0.1)
    assert not first.done and not first.stop_requested
    sessions.now = 5.1
    assert first.wait(10) and first.orphaned and first.result == "stopped"
    _eventually(lambda: started == ["a", "b"], "the waiting student's job to get the slot")
    assert not second.stop_requested
    release.set()
    assert second.wait(10) and second.result == "finished"
    # Asking again for the orphaned configuration trains anew (it is not handed out as "stopped").
    again = registry.attach("a", lambda: training.Job(lambda report: "fresh", name="a2").start(),
                            session="tab-3", slot="train")
    assert again is not first and again.wait(10) and again.result == "fresh"


def test_a_job_held_by_any_live_session_keeps_running():
    sessions = Sessions()
    registry = JobRegistry(grace_seconds=1.0, is_alive=sessions.is_alive, clock=sessions.clock)
    slots = training_queue.TrainingQueue(capacity=1)
    release = threading.Event()
    job = registry.attach("shared", lambda: training.Job(queued_work(slots, [], "s", release), name="s").start(),
                          session="tab-1", slot="train")
    assert registry.attach("shared", lambda: pytest.fail("identical requests share one job"),
                           session="tab-2", slot="train") is job
    sessions.closed.add("tab-1")
    sessions.now = 100.0
    time.sleep(0.1)
    assert not job.stop_requested  # tab-2 still watches it
    sessions.closed.add("tab-2")
    sessions.now = 101.5
    assert job.wait(10) and job.orphaned


def test_asking_for_another_configuration_releases_the_previous_job():
    sessions = Sessions()
    registry = JobRegistry(grace_seconds=2.0, is_alive=sessions.is_alive, clock=sessions.clock)
    slots = training_queue.TrainingQueue(capacity=2)
    release = threading.Event()
    old = registry.attach("ten-epochs", lambda: training.Job(queued_work(slots, [], "10", release), name="10").start(),
                          session="tab", slot="train")
    registry.attach("three-epochs", lambda: training.Job(queued_work(slots, [], "3", release), name="3").start(),
                    session="tab", slot="train")
    time.sleep(0.1)
    assert not old.stop_requested  # within the grace, sliding back would find it again
    sessions.now = 2.5
    assert old.wait(10) and old.orphaned
    release.set()


def test_a_session_may_hold_at_most_two_running_or_waiting_jobs():
    registry = JobRegistry(per_session=2)
    release = threading.Event()
    slots = training_queue.TrainingQueue(capacity=1)

    def start(name):
        return lambda: training.Job(queued_work(slots, [], name, release), name=name).start()

    registry.attach("train", start("train"), session="tab", slot="train page")
    registry.attach("lenet", start("lenet"), session="tab", slot="comparison page")
    with pytest.raises(JobLimitError, match="already have 2 trainings") as refused:
        registry.attach("augmentation", start("augmentation"), session="tab", slot="augmentation page")
    assert isinstance(refused.value, CnnvizError)  # pages show it as a message
    assert registry.get("augmentation") is None and registry.started == 2
    # Watching a job somebody else started costs nothing; another student is not limited by "tab".
    registry.attach("elsewhere", start("elsewhere"), session="other", slot="train page")
    assert registry.attach("elsewhere", start("never"), session="tab", slot="augmentation page") \
        is registry.get("elsewhere")
    # Replacing the job of the same slot is not one more job.
    registry.attach("train-again", start("train-again"), session="tab", slot="train page")
    release.set()
    for key in ("train", "lenet", "elsewhere", "train-again"):
        assert registry.get(key).wait(10)
    registry.attach("augmentation", start("augmentation"), session="tab", slot="augmentation page")
