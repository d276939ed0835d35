"""How quiet is an idle server started the README's way (`streamlit run app.py` with .venv inside)?

For each file-watcher setting given (default: the project's own config, then "auto" as a
comparison) a fresh `streamlit run app.py` starts in the project folder, a headless Chromium opens
the home page and stays on it, and after a short settling time the server process's CPU time
(psutil `cpu_times`, user + system, threads included) is measured over `--seconds` (default 60).
Reported per setting: CPU used as a fraction of one core, the number of inotify watches the server
holds (the `inotify wd:` lines of its file descriptors in /proc, i.e. folders watched) and the
number of log lines mentioning "Inotify" (watchdog's "Inotify queue overflowed" flood).

Usage: python bench/idle_server.py [--watchers project auto poll none] [--seconds 60]
"project" runs with .streamlit/config.toml as it is; any other value is passed as
`--server.fileWatcherType`. Traffic goes only to the server this script starts on 127.0.0.1.
The machine's other work adds noise: compare the settings within one run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from measure import free_port, wait_for_health

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")


def inotify_watches(pid: int) -> int:
    """How many inotify watches the process holds (one per watched folder)."""
    count = 0
    fdinfo = Path(f"/proc/{pid}/fdinfo")
    for entry in fdinfo.iterdir():
        try:
            count += entry.read_text().count("inotify wd:")
        except OSError:
            continue
    return count


def measure(watcher: str, seconds: float, browser, settle: float) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "streamlit", "run", "app.py",
               "--server.port", str(port), "--server.address", "127.0.0.1"]
    if watcher != "project":
        command += ["--server.fileWatcherType", watcher]
    env = dict(os.environ, CNNVIZ_OFFLINE="1", TF_CPP_MIN_LOG_LEVEL="2")
    with tempfile.TemporaryFile(mode="w+") as log:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        page = None
        try:
            wait_for_health(url, process)
            page = browser.new_page()
            page.goto(url)
            page.wait_for_selector("h1:has-text('cnnviz')", timeout=120_000)
            time.sleep(settle)
            server = psutil.Process(process.pid)
            before, start = server.cpu_times(), time.monotonic()
            time.sleep(seconds)
            after, elapsed = server.cpu_times(), time.monotonic() - start
            watches = inotify_watches(process.pid)
        finally:
            if page is not None:
                page.close()
            process.terminate()
            process.wait(timeout=30)
        log.seek(0)
        inotify_lines = sum("inotify" in line.lower() for line in log)
    cpu = (after.user - before.user) + (after.system - before.system)
    return {"watcher": watcher, "cores": cpu / elapsed, "watches": watches, "inotify_lines": inotify_lines}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watchers", nargs="+", default=["project", "auto"])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--settle", type=float, default=10.0, help="seconds after the page loads")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            for watcher in args.watchers:
                row = measure(watcher, args.seconds, browser, args.settle)
                print(f"fileWatcherType={row['watcher']:8s} idle CPU {row['cores']:.3f} of a core over "
                      f"{args.seconds:.0f} s · {row['watches']} inotify watches · "
                      f"{row['inotify_lines']} 'Inotify' log lines", flush=True)
        finally:
            browser.close()
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
