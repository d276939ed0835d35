"""cnnviz.training.jobs: work in a background thread that pages watch, stop and collect."""

from __future__ import annotations

import threading
import time

from cnnviz import training
from cnnviz.training import queue as training_queue
from cnnviz.training.jobs import JobRegistry


def test_background_job_can_be_stopped_and_reports_live_points(tiny_data, tiny_config):
    job = training.training_job(tiny_config(epochs=200, batch_size=8), data=tiny_data).start()
    deadline = time.monotonic() + 60
    while not job.live_points and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.live_points and not job.done
    job.request_stop()
    assert job.wait(60)
    assert job.error is None and job.result.stopped_reason == "stopped" and not job.finished
    assert job.result.epochs_completed < 200


def test_background_job_hands_over_errors(tiny_data, tiny_config):
    job = training.training_job(tiny_config(batch_size=100_000), data=tiny_data).start()
    assert job.wait(60)
    assert isinstance(job.error, ValueError) and job.result is None


def test_a_job_runs_any_work_and_its_stop_reaches_the_work():
    started = threading.Event()

    def work(on_progress):
        started.set()
        step = 0
        while on_progress(step) is not False:
            step += 1
            time.sleep(0.01)
        return f"stopped at {step}"

    job = training.Job(work, name="cnnviz-test-job").start()
    assert started.wait(10)
    job.request_stop()
    assert job.wait(10) and job.stop_requested
    assert job.error is None and job.result.startswith("stopped at") and job.finished
    assert isinstance(job.latest, int) and not job.live_points


def test_an_orphaned_real_training_stops_and_leaves_the_engines_queue(tiny_data, tiny_config, monkeypatch):
    # The real engine and its real queue (one slot): a long training whose tab closes, and a
    # second student's training waiting behind it.
    monkeypatch.setattr(training_queue, "training_queue", training_queue.TrainingQueue(capacity=1))
    closed: set[str] = set()
    registry = JobRegistry(grace_seconds=0.0, is_alive=lambda session: session not in closed, clock=time.monotonic)
    long_run = registry.attach(
        "long", lambda: training.training_job(tiny_config(epochs=200, batch_size=8), data=tiny_data).start(),
        session="tab-1", slot="train")
    deadline = time.monotonic() + 120
    while not long_run.live_points:
        assert time.monotonic() < deadline and not long_run.done, "the long training should start"
        time.sleep(0.05)
    waiting = registry.attach(
        "next", lambda: training.training_job(tiny_config(epochs=1, seed=5), data=tiny_data).start(),
        session="tab-2", slot="train")
    while not (waiting.latest is not None and waiting.latest.phase == "waiting"):
        assert time.monotonic() < deadline and not waiting.done, "the second training should wait for the slot"
        time.sleep(0.05)
    closed.add("tab-1")
    assert long_run.wait(60) and long_run.orphaned
    assert long_run.result.stopped_reason == "stopped" and long_run.result.epochs_completed < 200
    assert waiting.wait(120) and waiting.error is None and waiting.result.stopped_reason == "finished"
    assert training_queue.training_queue.running == 0
