"""Small helpers the benchmark scripts share: timing, a free port, the app server, its health, peak memory."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def cpu_seconds() -> float:
    """CPU time (user + system) this process has used so far, over all its threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(function):
    """(seconds, value) of calling `function()`."""
    start = time.perf_counter()
    value = function()
    return time.perf_counter() - start, value


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set size (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("VmHWM not found")


def wait_for_health(url: str, process: subprocess.Popen | None = None, timeout: float = 120) -> None:
    """Poll a Streamlit server's health endpoint until it answers (or the process dies)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"streamlit exited early with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(url)


PROJECT_ROOT = Path(__file__).resolve().parent.parent


def start_app_server(log, *, launcher: list[str] | None = None, **env: str) -> tuple[subprocess.Popen, str]:
    """`streamlit run app.py` headless on a free loopback port, with `env` added to this process's
    environment and its output in `log`; returns (process, base URL) once its health endpoint answers.
    `launcher` replaces `python -m streamlit` (a script that wraps Streamlit's command line)."""
    port = free_port()
    process = subprocess.Popen(
        [*(launcher or [sys.executable, "-m", "streamlit"]), "run", "app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1",
         "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=PROJECT_ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_for_health(url, process)
    return process, url
