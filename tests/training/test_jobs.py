"""cnnviz.training.jobs: work in a background thread that pages watch, stop and collect."""

from __future__ import annotations

import threading
import time

from cnnviz import training


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
