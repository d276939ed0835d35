"""The whole app's memory: one student visits every page and runs every default (issue 15).

A fresh `streamlit run app.py` server (empty CNNVIZ_CACHE_DIR, CNNVIZ_OFFLINE=1, CNNVIZ_DATA_DIR as
in the environment) and ONE headless-Chromium session that opens the home page, then every page of
`cnnviz.catalogue.LESSONS` in order, and presses each page's default run button: Train on the
Train page; Run the comparison (LeNet vs ReLU); Pre-train, Retrain and Compare the strategies
(transfer); Train the variants (augmentation); the explain page then explains the model just
trained. Each run is awaited (the page's script idle with no Stop button, bounded by --time-limit).

After each step the server's current RSS (psutil, the process and its children) and its peak
(VmHWM) are printed; then RSS after a quiet --settle seconds; the last line is JSON:
{"steady_rss_mb": ..., "peak_rss_mb": ..., "steps": [...]}.

`--quick` passes smaller settings through the Train page's link (fewer images and epochs); the
other pages run their defaults either way (their links do not carry the run's size).

Measured 2026-12-01 on 2 loaded cores (load 6-13; one run each, so +-50 MB): TensorFlow's import
alone is ~560 MB RSS. Before `cnnviz.memory.trim_heap` after each job: after Train 819 MB,
after LeNet vs ReLU 1096, after the transfer comparison 1131 (peak 1263). With it: 848, 1049, 1168
(peak 1294). With it and MALLOC_ARENA_MAX=2 in the server's environment: 799, 974, 1073, after
augmentation 1090, steady after everything 1108 MB (peak 1373): still above the 1 GB goal.
Later the same day (load 18-21), with `cnnviz.memory.limit_arenas()` in app.py (two arenas, set at
run time), trim_heap collecting cycles first and Streamlit's post-run collection off: after Train
792, after Lenet vs ReLU 976, after the transfer comparison 1117, after augmentation 1181, steady
1197 MB (peak 1420): no measurable change within this bench's +-50 MB, still above 1 GB.
The same with `--env MALLOC_MMAP_THRESHOLD_=262144` (load 20-28): after Train 732, after LeNet vs
ReLU 877, after the transfer comparison 1017 MB (peak 1112); augmentation was not measured in that
run. Not adopted: with that threshold set at run time (mallopt), one epoch of the Train page's
default on 6,000 images took 8.1 and 6.9 s against 5.0 and 3.8 s without it (two alternating
pairs, load 8-11).

Usage: python bench/memory.py [--quick] [--time-limit 900] [--settle 10] [--env NAME=VALUE ...]
Traffic goes only to the server this script starts on 127.0.0.1; every wait is bounded in time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from measure import peak_rss_mb, start_app_server

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from cnnviz.catalogue import LESSONS  # noqa: E402 - after the path to the project

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
EXCEPTION = '[data-testid="stException"]'
# Each page's default run buttons (Streamlit `key=`s), pressed in order when they appear.
RUN_BUTTONS = {
    "train": ["train_start"],
    "lenet-vs-relu": ["lvr_run"],
    "transfer": ["transfer_pretrain_button", "transfer_retrain_button", "transfer_compare_button"],
    "augmentation": ["aug_fit_train"],
    "explain": ["explain_train_default"],  # Only shown when no model of this session is there.
}
QUICK_QUERY = {"train": "train_limit_train=3000&train_limit_test=500&train_epochs=1&train_batch_size=64"}


def start_server(cache_dir: str, log, extra_env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    return start_app_server(log, CNNVIZ_OFFLINE="1", CNNVIZ_CACHE_DIR=cache_dir, TF_CPP_MIN_LOG_LEVEL="2",
                            **extra_env)


def rss_mb(pid: int) -> float:
    import psutil

    process = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]) / 2**20


def script_idle(page) -> bool:
    return bool(page.evaluate(
        """() => {
            const app = document.querySelector('[data-testid="stApp"]');
            return !!app && app.getAttribute('data-test-script-state') === 'notRunning';
        }"""))


def wait_done(page, deadline: float) -> str:
    """Wait until the page's script is idle with no Stop button twice in a row; '' or a failure."""
    quiet = 0
    while time.monotonic() < deadline:
        if page.locator(EXCEPTION).count():
            return "traceback"
        busy = (page.get_by_role("button", name="Stop").count() > 0
                or page.locator('[data-testid="stSpinner"]').count() > 0)
        quiet = quiet + 1 if script_idle(page) and not busy else 0
        if quiet >= 3:
            return ""
        time.sleep(0.5)
    return "time limit"


def reveal(page, button) -> bool:
    """Make `button` visible, opening the page's tabs one after another if needed (True once visible)."""
    if button.is_visible():
        return True
    tabs = page.get_by_role("tab")
    for index in range(tabs.count()):
        tabs.nth(index).click()
        time.sleep(0.5)
        if button.is_visible():
            return True
    return False


def run(args) -> dict:
    from playwright.sync_api import sync_playwright

    steps = []
    with tempfile.TemporaryDirectory(prefix="cnnviz-memory-cache-") as cache_dir, \
            tempfile.NamedTemporaryFile("w", prefix="cnnviz-memory-server-", suffix=".log", delete=False) as log, \
            sync_playwright() as playwright:
        process, url = start_server(cache_dir, log, dict(item.split("=", 1) for item in args.env))
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        start = time.monotonic()

        def record(name: str, seconds: float, failure: str = "") -> None:
            step = {"step": name, "seconds": round(seconds, 1), "rss_mb": round(rss_mb(process.pid)),
                    "peak_rss_mb": round(peak_rss_mb(process.pid)), "failure": failure}
            steps.append(step)
            print(f"{name:<34} {step['seconds']:>7.1f} s  RSS {step['rss_mb']:>5} MB  peak {step['peak_rss_mb']:>5} MB"
                  f"{'  FAILED: ' + failure if failure else ''}", flush=True)

        try:
            record("server started", 0.0)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_default_timeout(60_000)
            page.goto(url)
            failure = wait_done(page, time.monotonic() + 120)
            record("home", time.monotonic() - start, failure)
            for lesson in LESSONS:
                began = time.monotonic()
                query = QUICK_QUERY.get(lesson.url_path, "") if args.quick else ""
                page.goto(f"{url}/{lesson.url_path}" + (f"?{query}" if query else ""))
                failure = wait_done(page, time.monotonic() + 180)
                record(f"visit {lesson.url_path}", time.monotonic() - began, failure)
                for key in RUN_BUTTONS.get(lesson.url_path, []):
                    button = page.locator(f".st-key-{key} button")
                    if not button.count() or button.first.is_disabled():
                        continue
                    began = time.monotonic()
                    if not reveal(page, button.first):
                        record(f"  run {key}", 0.0, "button not visible in any tab")
                        continue
                    button.first.click(timeout=30_000)
                    time.sleep(1.0)
                    failure = wait_done(page, began + args.time_limit)
                    record(f"  run {key}", time.monotonic() - began, failure)
            time.sleep(args.settle)
            record(f"after {args.settle:g} s quiet", time.monotonic() - start)
        finally:
            browser.close()
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
    return {"quick": args.quick, "env": args.env, "steady_rss_mb": steps[-1]["rss_mb"], "peak_rss_mb": steps[-1]["peak_rss_mb"],
            "failures": [f"{s['step']}: {s['failure']}" for s in steps if s["failure"]], "steps": steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller Train-page settings through its link")
    parser.add_argument("--time-limit", type=float, default=900.0, help="seconds per run before giving up")
    parser.add_argument("--env", nargs="*", default=[], metavar="NAME=VALUE",
                        help="extra environment of the server, e.g. MALLOC_ARENA_MAX=2")
    parser.add_argument("--settle", type=float, default=10.0, help="quiet seconds before the last measure")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        sys.exit("Needs Debian chromium at /usr/bin/chromium (apt-get install chromium).")
    summary = run(args)
    print(f"\nSteady RSS after every page and default: {summary['steady_rss_mb']} MB "
          f"(peak {summary['peak_rss_mb']} MB; goal < 1024 MB)")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
