"""The training queue: a cap on concurrent jobs, first come first served, with positions."""

from __future__ import annotations

import threading

import pytest

from cnnviz.training.queue import QueueCancelled, TrainingQueue, capacity_from_environment


def test_capacity_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("CNNVIZ_MAX_TRAINING_JOBS", "3")
    assert capacity_from_environment() == 3
    for bad in ("0", "-1", "many", ""):
        monkeypatch.setenv("CNNVIZ_MAX_TRAINING_JOBS", bad)
        assert capacity_from_environment() == 2
    with pytest.raises(ValueError):
        TrainingQueue(0)


def test_jobs_beyond_capacity_wait_in_arrival_order_and_see_their_position():
    queue = TrainingQueue(capacity=1)
    release_first = threading.Event()
    first_running = threading.Event()
    order: list[str] = []
    positions: dict[str, list[int]] = {"second": [], "third": []}
    waiting_events = {"second": threading.Event(), "third": threading.Event()}

    def first():
        with queue.slot():
            order.append("first")
            first_running.set()
            release_first.wait(timeout=30)

    def waiter(name: str):
        def on_wait(position: int):
            positions[name].append(position)
            waiting_events[name].set()
        with queue.slot(on_wait=on_wait, poll_seconds=0.05):
            order.append(name)

    threads = [threading.Thread(target=first)]
    threads[0].start()
    assert first_running.wait(timeout=30)
    second = threading.Thread(target=waiter, args=("second",))
    second.start()
    assert waiting_events["second"].wait(timeout=30)
    third = threading.Thread(target=waiter, args=("third",))
    third.start()
    assert waiting_events["third"].wait(timeout=30)
    assert queue.running == 1 and queue.waiting == 2
    release_first.set()
    for thread in (threads[0], second, third):
        thread.join(timeout=30)
    assert order == ["first", "second", "third"]
    assert positions["second"][0] == 1
    assert positions["third"][0] == 2
    assert queue.running == 0 and queue.waiting == 0


def test_a_waiting_job_can_leave_the_queue():
    queue = TrainingQueue(capacity=1)
    release = threading.Event()
    holding = threading.Event()

    def holder():
        with queue.slot():
            holding.set()
            release.wait(timeout=30)

    thread = threading.Thread(target=holder)
    thread.start()
    assert holding.wait(timeout=30)
    with pytest.raises(QueueCancelled):
        with queue.slot(on_wait=lambda position: False, poll_seconds=0.05):
            pass  # pragma: no cover - never admitted
    assert queue.waiting == 0
    release.set()
    thread.join(timeout=30)
    with queue.slot():
        assert queue.running == 1
