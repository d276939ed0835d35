"""Cold start of the cnnviz server against `import tensorflow`, measured in the same run.

Prints the seconds and peak RSS of a cold `streamlit run app.py` until the home page has been
served and rendered in headless Chromium (the browser is started before the clock, so its own
start-up is not counted; without Chromium the clock stops when `/` has been served, and the
output says so), the seconds and peak RSS of a bare `import tensorflow`, and their ratios. The point: the home page must not pay for TensorFlow.

Usage: python bench/startup.py [--repeat N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from measure import free_port, peak_rss_mb, wait_for_health

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")


def open_browser(stack):
    """A headless Chromium page, started before the server's clock (None without Chromium)."""
    if not CHROMIUM.exists():
        return None
    from playwright.sync_api import sync_playwright

    playwright = stack.enter_context(sync_playwright())
    browser = playwright.chromium.launch(
        executable_path=str(CHROMIUM),
        args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
    stack.callback(browser.close)
    page = browser.new_page()
    page.goto("about:blank")
    return page


def cold_server() -> tuple[float, float, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with contextlib.ExitStack() as stack:
        page = open_browser(stack)
        start = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1"],
            cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_health(url)
            if page is not None:
                page.goto(url)
                page.wait_for_selector("h1:has-text('cnnviz')", timeout=120_000)
                how = "home page rendered in Chromium"
            else:
                urllib.request.urlopen(url + "/", timeout=30).read()
                how = "home page served (no Chromium: not rendered)"
            seconds = time.perf_counter() - start
            rss = peak_rss_mb(process.pid)
        finally:
            process.terminate()
            process.wait(timeout=20)
    return seconds, rss, how


def import_tensorflow() -> tuple[float, float]:
    code = ("import time, resource, json; t = time.perf_counter(); import tensorflow; "
            "print(json.dumps([time.perf_counter() - t, "
            "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024]))")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"})
    wall = time.perf_counter() - start  # Including the interpreter's own start.
    _, rss = json.loads(out.stdout.strip().splitlines()[-1])
    return wall, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    servers = [cold_server() for _ in range(args.repeat)]
    imports = [import_tensorflow() for _ in range(args.repeat)]
    server_s = statistics.median(s for s, _, _ in servers)
    server_mb = statistics.median(m for _, m, _ in servers)
    tf_s = statistics.median(s for s, _ in imports)
    tf_mb = statistics.median(m for _, m in imports)
    print(f"cold server until {servers[0][2]}: {server_s:.2f} s, peak RSS {server_mb:.0f} MB "
          f"(median of {args.repeat})")
    print(f"python -c 'import tensorflow':      {tf_s:.2f} s, peak RSS {tf_mb:.0f} MB")
    print(f"ratio server/import-tensorflow: time {server_s / tf_s:.2f}x, memory {server_mb / tf_mb:.2f}x")


if __name__ == "__main__":
    main()
