"""Refresh the README screenshots: `python assets/screenshots/capture.py [--only home convolution ...]`.

Runs `python -m cnnviz warmup` into a temporary cache (so the training pages open with their
default results, as they do in class after a warm-up), starts `streamlit run app.py`, and saves
one 1280-wide screenshot per page with headless Debian Chromium. `--only` shoots the pages named
(their screenshot names); the warm-up is skipped when none of them trains.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT_ROOT = HERE.parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from cnnviz.catalogue import LESSONS  # noqa: E402

FILE_NAMES = {"convolution": "convolution", "calculator": "calculator", "train": "train",
              "lenet-vs-relu": "lenet-vs-relu", "transfer": "transfer", "augmentation": "augmentation"}
# Taller pages are shot taller, so that their (warmed-up) results are in the picture.
HEIGHTS = {"train": 2600, "lenet-vs-relu": 2200, "transfer": 2200}


NO_TRAINING = {"home", "convolution", "calculator"}  # Pages that show no trained model.


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="screenshot names, e.g. home convolution")
    args = parser.parse_args()
    env = dict(os.environ, CNNVIZ_CACHE_DIR=tempfile.mkdtemp(prefix="cnnviz-screens-"), TF_CPP_MIN_LOG_LEVEL="2")
    if not args.only or not set(args.only) <= NO_TRAINING:
        subprocess.run([sys.executable, "-m", "cnnviz", "warmup"], cwd=PROJECT_ROOT, env=env, check=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                               "--server.headless", "true"], cwd=PROJECT_ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            shots = [("", "home")] + [(lesson.url_path, FILE_NAMES[lesson.url_path]) for lesson in LESSONS
                                      if lesson.url_path in FILE_NAMES]
            shots = [(path, name) for path, name in shots if not args.only or name in args.only]
            for path, name in shots:
                page = browser.new_page(viewport={"width": 1280, "height": HEIGHTS.get(path, 1500)})
                page.goto(f"{url}/{path}")
                page.wait_for_selector("h1", timeout=120_000)
                page.wait_for_function("() => document.querySelector('[data-testid=\"stApp\"]')"
                                       ".getAttribute('data-test-script-state') === 'notRunning'", timeout=300_000)
                # No element still loading (Streamlit's skeletons), and every map chart drawn.
                page.wait_for_function("() => !document.querySelector('[data-testid=\"stSkeleton\"]') && "
                                       "[...document.querySelectorAll('.cnnviz-map')].every(map => map.dataset.renders)",
                                       timeout=60_000)
                time.sleep(2)  # Let plotly finish drawing; a picture, not an assertion.
                page.screenshot(path=str(HERE / f"{name}.png"))
                page.close()
                print("saved", name)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=20)


if __name__ == "__main__":
    main()
