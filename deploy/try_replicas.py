"""Try the several-servers setup on one machine (README.md, "Deploying on several servers").

Starts a private redis-server, two `streamlit run app.py` replicas on 127.0.0.1:8601 and :8602
(one shared `server.cookieSecret`, the same CNNVIZ_REDIS_URL), `--workers` training workers
(`python -m cnnviz worker`) and nginx with deploy/nginx.conf on 127.0.0.1:8600; then, in headless
Chromium (Playwright):

1. three fresh browsers open the proxy: which replica each one lands on (the `X-Cnnviz-Replica`
   header), and whether each browser's later requests stay on its replica (sticky cookie);
2. a lecturer starts a class through the proxy (replica A); a student opens the join link on the
   *other* replica (B) directly, and joins; the lecturer sends a question: A's page lists the
   student, B's page shows the question;
3. the student submits a leaderboard entry (a preset) on B; a worker trains it; the lecturer's
   board on A shows it "done" with its test accuracy.

Prints what it saw, and stops every process it started (also on failure).
Usage: python deploy/try_replicas.py [--workers 1]   (needs nginx, redis-server, chromium)
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))
PROXY, REPLICAS = "http://127.0.0.1:8600", ("http://127.0.0.1:8601", "http://127.0.0.1:8602")
CHROMIUM = "/usr/bin/chromium"


def wait_until(what: str, check, timeout: float = 180.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except SystemExit:
            raise
        except Exception:  # noqa: BLE001 - not up yet
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.2)


def health(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=3) as response:
        return response.status == 200


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="cnnviz-replicas-"))
    processes: list[subprocess.Popen] = []

    def start(name: str, command: list[str], env: dict | None = None) -> subprocess.Popen:
        log = (folder / f"{name}.log").open("w")
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env or os.environ.copy(), stdout=log,
                                   stderr=subprocess.STDOUT)
        processes.append(process)
        return process

    try:
        port = 6399
        start("redis", [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1",
                        "--save", "", "--appendonly", "no", "--dir", str(folder)])
        url = f"redis://127.0.0.1:{port}/0"
        env = {**os.environ, "CNNVIZ_REDIS_URL": url, "CNNVIZ_CACHE_DIR": str(folder / "cache")}
        # One cookie secret for every replica (Streamlit takes it from its config file or this
        # variable, not from the command line).
        replica_env = {**env, "STREAMLIT_SERVER_COOKIE_SECRET": secrets.token_urlsafe(32)}
        for i, replica in enumerate(REPLICAS):
            start(f"replica{i + 1}", [sys.executable, "-m", "streamlit", "run", "app.py",
                                      "--server.port", replica.rsplit(":", 1)[1], "--server.address", "127.0.0.1",
                                      "--server.headless", "true", "--server.fileWatcherType", "none",
                                      "--browser.gatherUsageStats", "false"], replica_env)
        for i in range(args.workers):
            start(f"worker{i + 1}", [sys.executable, "-m", "cnnviz", "worker"], env)
        nginx_dir = folder / "nginx"
        nginx_dir.mkdir()
        start("nginx", ["nginx", "-p", str(nginx_dir), "-c", str(PROJECT_ROOT / "deploy" / "nginx.conf"),
                        "-g", "daemon off;"])
        for replica in (*REPLICAS, PROXY):
            def up(replica: str = replica) -> bool:
                if exited := [p.args[0] for p in processes if p.poll() is not None]:
                    raise SystemExit(f"exited early: {exited}; logs in {folder}")
                return health(replica)
            wait_until(f"{replica} healthy", up)
        print(f"up: redis {url}, replicas {', '.join(REPLICAS)}, proxy {PROXY}, {args.workers} worker(s)")
        return drive(url)
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        print(f"stopped {len(processes)} processes; logs in {folder}")


def drive(url: str) -> int:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            # 1. Sticky sessions: three browsers through the proxy.
            landed = []
            for _ in range(3):
                context = browser.new_context()
                page = context.new_page()
                first = page.goto(f"{PROXY}/", wait_until="domcontentloaded")
                replica = first.headers.get("x-cnnviz-replica") if first else None
                again = {page.request.get(f"{PROXY}/_stcore/health").headers.get("x-cnnviz-replica") for _ in range(5)}
                landed.append((replica, again))
                context.close()
            for replica, again in landed:
                print(f"sticky: first request on {replica}; 5 later requests on {sorted(again)}")

            # 2. A class started on one replica, joined on the other.
            lecturer = browser.new_context().new_page()
            response = lecturer.goto(f"{PROXY}/classroom", wait_until="domcontentloaded")
            replica_a = response.headers.get("x-cnnviz-replica") if response else ""
            lecturer.get_by_role("button", name="Start a class").click(timeout=60_000)
            link_text = lecturer.get_by_text(re.compile(r"class=[A-Z0-9]{12}")).first.inner_text(timeout=60_000)
            code = re.search(r"class=([A-Z0-9]{12})", link_text).group(1)
            other = next(r for r in REPLICAS if not r.endswith(replica_a.rsplit(":", 1)[-1]))
            print(f"lecturer started class {code} through the proxy on replica {replica_a}; "
                  f"the student opens {other} directly")
            student = browser.new_context().new_page()
            student.goto(f"{other}/classroom?class={code}", wait_until="domcontentloaded")
            student.get_by_label("Your name (optional: shown to the lecturer)").fill("Ada", timeout=60_000)
            student.get_by_role("button", name="Join").click()
            student.get_by_text("You are in as").wait_for(timeout=60_000)
            # The lecturer sends a question (a rerun of the lecturer's page on A): the roster shows the
            # student who joined on B, and B's page shows the question.
            lecturer.get_by_role("button", name="Send to the class").click(timeout=60_000)
            lecturer.get_by_text("Who joined").first.wait_for(timeout=60_000)
            student.get_by_text("Question 1").first.wait_for(timeout=60_000)
            print("the student joined on the other replica: the lecturer's page (A) lists 'Who joined'; "
                  "the question sent on A appears on the student's page (B)")

            # 3. A leaderboard entry submitted on B, trained by a worker, shown on A.
            student.get_by_text("A preset").first.click(timeout=60_000)
            student.get_by_role("button", name="Submit to the leaderboard").click(timeout=60_000)
            started = time.monotonic()
            # The grids' accessible cells (the roster's and the board's) on the lecturer's page.
            cells = lecturer.locator('[data-testid="stDataFrame"] [role="gridcell"]')

            def board_row() -> list[str]:
                return [text.strip() for text in cells.all_text_contents()]

            try:
                seen = wait_until("the entry done on the lecturer's board",
                                  # A rank is given to trained entries only; the grid draws only the
                                  # columns in view (accuracy and status may be off to the right).
                                  lambda: (row := board_row()) and row[:2] == ["1", "Ada"] and row,
                                  timeout=300)
            finally:
                from cnnviz.classroom import RedisStore

                store = RedisStore(url)
                print("the store says:", [(e.name, e.status, e.accuracy, e.message) for e in store.entries(code)])
                print("the lecturer's board shows:", board_row())
                store.close()
            print(f"the lecturer's board (replica {replica_a}) shows the entry done after "
                  f"{time.monotonic() - started:.1f} s: {' | '.join(seen)}")
            import redis

            with redis.Redis.from_url(url, decode_responses=True) as client:
                jobs = client.zcard("rq:finished:cnnviz-training")
            print(f"RQ finished jobs on cnnviz-training: {jobs}")
            return 0
        finally:
            browser.close()


if __name__ == "__main__":
    sys.exit(main())
