"""A class opening the training page at once: N browser sessions press Train together.

For each N (default 1, 8, 16, 32) a fresh `streamlit run app.py` server starts (empty disk cache,
offline data, `CNNVIZ_MAX_TRAINING_JOBS` as given, default 2). N headless-Chromium sessions open
the training page with a small configuration from its shareable link, each with a DIFFERENT seed
so that each really trains; for N > 1 the last session shares session 1's configuration (one
shared job, two viewers). All press Train within a fraction of a second, and then twice more while
they wait (as a class does; every click reruns the page); the bench then polls
every page until each shows its results (completion), an error or traceback (failure), or the
time limit passes.

Reported per N: completions and failures, wall time from the first click to the last result, the
server's peak RSS (VmHWM of the server process, psutil for its current RSS), the most trainings
seen running at the same moment and the most sessions seen waiting in the queue (as the pages
show them: "Epoch x/y · batch ..." vs "Waiting for a free training slot (place k ...)"; counted
per distinct configuration, since the two sessions sharing one watch the same job), how many
trainings the server started (its log's "started job cnnviz-train-" lines: one per distinct
configuration when identical requests share one job), and the ratios of wall time and peak RSS
against N = 1 measured in the same run.

Usage: python bench/concurrency.py [--sessions 1 8 16 32] [--max-jobs 2] [--train 2000 --test 500 --epochs 2]
Traffic goes only to the server this script starts on 127.0.0.1; every loop is bounded in time.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from measure import peak_rss_mb, start_app_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
EXCEPTION = '[data-testid="stException"]'
RESULT = '[data-testid="stMetricLabel"]:has-text("Test accuracy")'
WAITING = re.compile(r"Waiting for a free training slot \(place (\d+) in the queue\)")
TRAINING = re.compile(r"Epoch \d+/\d+ · batch")


def start_server(cache_dir: str, max_jobs: int, log) -> tuple[subprocess.Popen, str]:
    return start_app_server(log, CNNVIZ_OFFLINE="1", CNNVIZ_CACHE_DIR=cache_dir,
                            CNNVIZ_MAX_TRAINING_JOBS=str(max_jobs), TF_CPP_MIN_LOG_LEVEL="2")


@dataclass
class Session:
    seed: int
    page: object
    done_at: float | None = None
    failed: str = ""


@dataclass
class Round:
    sessions: int
    distinct_configs: int
    completions: int = 0
    failures: int = 0
    wall_seconds: float = 0.0
    peak_rss_mb: float = 0.0
    idle_rss_mb: float = 0.0
    max_training: int = 0
    max_waiting: int = 0
    max_queue_place: int = 0
    trainings_started: int = 0
    failure_reasons: list = field(default_factory=list)


def wait_idle(page, timeout_ms: int = 120_000) -> None:
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout_ms)
    page.wait_for_function(
        """() => {
            const app = document.querySelector('[data-testid="stApp"]');
            return app && app.getAttribute('data-test-script-state') === 'notRunning';
        }""", timeout=timeout_ms)


def run_round(browser, sessions: int, *, max_jobs: int, train: int, test: int, epochs: int,
              seed_base: int, time_limit: float) -> Round:
    import psutil

    seeds = [seed_base + i for i in range(sessions)]
    if sessions > 1:
        seeds[-1] = seeds[0]  # The shared configuration: same settings as session 1.
    record = Round(sessions=sessions, distinct_configs=len(set(seeds)))
    with tempfile.TemporaryDirectory(prefix="cnnviz-bench-cache-") as cache_dir, \
            tempfile.NamedTemporaryFile("w", prefix="cnnviz-bench-server-", suffix=".log", delete=False) as log:
        process, url = start_server(cache_dir, max_jobs, log)
        contexts = []
        try:
            # A first visit lets the server register its pages before deep links arrive.
            warm = browser.new_context(viewport={"width": 1280, "height": 720})
            warm_page = warm.new_page()
            warm_page.goto(url)
            wait_idle(warm_page)
            warm.close()
            record.idle_rss_mb = psutil.Process(process.pid).memory_info().rss / 2**20

            runs = []
            for seed in seeds:
                context = browser.new_context(viewport={"width": 1280, "height": 720})
                contexts.append(context)
                page = context.new_page()
                page.set_default_timeout(int(time_limit * 1000))
                query = (f"train_limit_train={train}&train_limit_test={test}&train_epochs={epochs}"
                         f"&train_batch_size=64&train_seed={seed}")
                page.goto(f"{url}/train?{query}")
                runs.append(Session(seed, page))
            for run in runs:
                wait_idle(run.page)
                run.page.locator(".st-key-train_start button").wait_for()

            start = time.monotonic()
            for run in runs:
                run.page.locator(".st-key-train_start button").click()
            for _ in range(2):  # impatient students click again while they wait
                for run in runs:
                    if not run.page.locator(RESULT).count():
                        try:
                            run.page.locator(".st-key-train_start button").click(timeout=2_000)
                        except Exception:  # noqa: BLE001 - a disabled or redrawn button: that click is lost
                            pass
            deadline = start + time_limit
            while time.monotonic() < deadline and any(r.done_at is None and not r.failed for r in runs):
                training, waiting = set(), set()
                for run in runs:
                    if run.done_at is not None or run.failed:
                        continue
                    page = run.page
                    if page.locator(EXCEPTION).count():
                        run.failed = "traceback"
                        continue
                    if page.get_by_text("Training failed").count():
                        run.failed = "training failed"
                        continue
                    if page.locator(RESULT).count():
                        run.done_at = time.monotonic() - start
                        continue
                    text = page.locator('[data-testid="stMain"]').inner_text(timeout=10_000)
                    place = WAITING.search(text)
                    if place:
                        waiting.add(run.seed)
                        record.max_queue_place = max(record.max_queue_place, int(place.group(1)))
                    elif TRAINING.search(text):
                        training.add(run.seed)
                record.max_training = max(record.max_training, len(training))
                record.max_waiting = max(record.max_waiting, len(waiting))
                time.sleep(0.2)
            for run in runs:
                if run.done_at is None and not run.failed:
                    run.failed = f"no result within {time_limit:.0f} s"
            record.completions = sum(r.done_at is not None for r in runs)
            record.failures = sum(bool(r.failed) for r in runs)
            record.failure_reasons = sorted({r.failed for r in runs if r.failed})
            record.wall_seconds = max((r.done_at for r in runs if r.done_at is not None), default=float("nan"))
            record.peak_rss_mb = peak_rss_mb(process.pid)
            log.flush()
            record.trainings_started = Path(log.name).read_text().count("started job cnnviz-train-")
        finally:
            for context in contexts:
                context.close()
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 8, 16, 32])
    parser.add_argument("--max-jobs", type=int, default=2, help="CNNVIZ_MAX_TRAINING_JOBS of the server")
    parser.add_argument("--train", type=int, default=2000, help="training images per session")
    parser.add_argument("--test", type=int, default=500, help="test images per session")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--time-limit", type=float, default=420.0, help="seconds per round before giving up")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        sys.exit("Needs Debian chromium at /usr/bin/chromium (apt-get install chromium).")
    from playwright.sync_api import sync_playwright

    print(f"Training page, {args.train} training / {args.test} test images, {args.epochs} epochs, batch 64, "
          f"CNNVIZ_MAX_TRAINING_JOBS={args.max_jobs}; fresh server and empty disk cache per round.")
    rounds = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            for index, sessions in enumerate(args.sessions):
                record = run_round(browser, sessions, max_jobs=args.max_jobs, train=args.train, test=args.test,
                                   epochs=args.epochs, seed_base=1000 * (index + 1), time_limit=args.time_limit)
                rounds.append(record)
                print(f"N={sessions}: {record.completions}/{sessions} completed, {record.failures} failed"
                      f"{' (' + ', '.join(record.failure_reasons) + ')' if record.failure_reasons else ''}, "
                      f"{record.distinct_configs} distinct configs, {record.trainings_started} trainings "
                      f"started, wall {record.wall_seconds:.1f} s, "
                      f"server peak RSS {record.peak_rss_mb:.0f} MB (idle {record.idle_rss_mb:.0f} MB), "
                      f"max trainings seen at once {record.max_training}, max jobs seen waiting "
                      f"{record.max_waiting} (highest queue place {record.max_queue_place})", flush=True)
        finally:
            browser.close()
    reference = rounds[0]
    print(f"\nRatios against N={reference.sessions} (same run):")
    for record in rounds:
        print(f"  N={record.sessions}: wall time x{record.wall_seconds / reference.wall_seconds:.2f}, "
              f"peak RSS x{record.peak_rss_mb / reference.peak_rss_mb:.2f}, "
              f"wall time per distinct config x"
              f"{(record.wall_seconds / record.distinct_configs) / (reference.wall_seconds / reference.distinct_configs):.2f}")


if __name__ == "__main__":
    main()
