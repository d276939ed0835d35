"""Shared fixtures: offline settings, the shared data folder, a live app server and a real browser."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
ARTIFACTS = PROJECT_ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

# The whole test session is offline (no dataset downloads) and uses a private disk cache, so that
# tests never depend on what an earlier run or a developer left in ~/.cache/cnnviz. Set at import
# time so that subprocesses (the app server, the no-TensorFlow checks) inherit it.
os.environ["CNNVIZ_OFFLINE"] = "1"
# TensorFlow's oneDNN kernels are off for the tests (before anything imports TensorFlow): on an AMD
# Zen 5 VM with AVX-512 (CPU family 26, 2026-12-02) TensorFlow 2.21's oneDNN conv gradients of
# residual-block models crashed (segmentation fault, abort) in 3 of 3 runs of tests/test_explain.py
# and gave wrong gradient norms against a GradientTape oracle with the ISA capped at AVX2; with
# oneDNN off (Eigen kernels) the same tests pass. A developer can override it to test oneDNN.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
# Under pytest-xdist every worker has a cache of its own (the workers inherit the controller's
# environment, so a worker replaces the folder the controller chose).
if os.environ.get("PYTEST_XDIST_WORKER") or "CNNVIZ_CACHE_DIR" not in os.environ:
    os.environ["CNNVIZ_CACHE_DIR"] = tempfile.mkdtemp(prefix="cnnviz-test-cache-")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The full offline datasets beside the project (`../shared/data`), or a clean skip."""
    if not (SHARED_DATA / "fashion-mnist").is_dir():
        pytest.skip(f"the offline datasets are not present at {SHARED_DATA}")
    return SHARED_DATA


# The tiny models of the pages whose key figure needs training (the train page's curves, the whole
# LeNet/ReLU comparison, which the page shows once all six models are on disk, and the transfer
# page's pre-trained feature space), for the browser tests that open those pages with the tiny
# settings of `tests/browser/test_presenter_browser.py`'s TINY_SETTINGS.
WARM_UP_TINY_MODELS = """
import sys
from cnnviz.training import warmup
items = [*warmup.page_items("train", tiny=True), *warmup.page_items("lenet_vs_relu", tiny=True),
         warmup.page_items("transfer", tiny=True)[0]]
records = warmup.run_warmup(items)
print(warmup.summary(records))
sys.exit(0 if all(record.ok for record in records) else 1)
"""


@pytest.fixture(scope="session")
def tiny_models() -> None:
    """Those tiny models in this session's disk cache, trained once per session in a subprocess
    (a few seconds), so that the test process and the browser tests never load TensorFlow."""
    done = subprocess.run([sys.executable, "-c", WARM_UP_TINY_MODELS], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where browser tests save screenshots (git-ignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_health(url: str, process: subprocess.Popen, timeout: float) -> None:
    """Poll the server's health endpoint until it answers, the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited early with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"streamlit did not answer on {url} within {timeout:.0f} s")


@dataclasses.dataclass(frozen=True)
class StreamlitServer:
    """A running `streamlit run app.py`: its base URL, the server process's pid and its log file."""

    url: str
    pid: int
    log_path: Path


@contextlib.contextmanager
def streamlit_server(log_path: Path, *, env: Mapping[str, str] | None = None) -> Iterator[StreamlitServer]:
    """Run `streamlit run app.py` headless on a free port until the block ends.

    `env` is added to (and overrides) this process's environment. Only the health endpoint is
    polled before the server is handed out: the app's script has not run yet, so the caller's
    first page request is the server's first.
    """
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1",
             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
            cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
        )
    try:
        _wait_for_health(url, process, timeout=90)
        yield StreamlitServer(url, process.pid, log_path)
    except Exception:
        print(log_path.read_text()[-5000:])
        raise
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


@contextlib.contextmanager
def running_streamlit(log_path: Path) -> Iterator[str]:
    """`streamlit_server` with this process's environment; yields only the base URL."""
    with streamlit_server(log_path) as server:
        yield server.url


@pytest.fixture(scope="session")
def streamlit_app(tmp_path_factory) -> Iterator[str]:
    """One app server shared by the browser tests of the session (warm after the first page)."""
    with running_streamlit(tmp_path_factory.mktemp("streamlit") / "server.log") as url:
        yield url


@pytest.fixture
def fresh_streamlit_app(tmp_path) -> Iterator[str]:
    """An app server of this test's own that has not served a page yet."""
    with running_streamlit(tmp_path / "server.log") as url:
        yield url


@pytest.fixture(scope="module")
def isolated_streamlit_server(tmp_path_factory) -> Iterator[StreamlitServer]:
    """A server of the test module's own: fresh (no page served yet), offline, an empty disk cache of
    its own (CNNVIZ_CACHE_DIR), so that its memory and its cache hold only what the module did."""
    folder = tmp_path_factory.mktemp("isolated-streamlit")
    (folder / "cache").mkdir()
    with streamlit_server(folder / "server.log",
                          env={"CNNVIZ_CACHE_DIR": str(folder / "cache"), "CNNVIZ_OFFLINE": "1"}) as server:
        yield server


@pytest.fixture
def one_slot_streamlit_server(tmp_path) -> Iterator[StreamlitServer]:
    """A fresh server of this test's own with ONE training slot (CNNVIZ_MAX_TRAINING_JOBS=1), offline,
    with an empty disk cache: what a class meets when one training already runs."""
    (tmp_path / "cache").mkdir()
    with streamlit_server(tmp_path / "server.log", env={
            "CNNVIZ_MAX_TRAINING_JOBS": "1", "CNNVIZ_CACHE_DIR": str(tmp_path / "cache"),
            "CNNVIZ_OFFLINE": "1"}) as server:
        yield server


@pytest.fixture
def no_data_streamlit_server(tmp_path) -> Iterator[StreamlitServer]:
    """A fresh server of this test's own with no dataset anywhere but the bundled sample: offline,
    an empty CNNVIZ_DATA_DIR and an empty Keras cache (what a laptop without internet meets)."""
    for folder in ("cache", "data", "keras"):
        (tmp_path / folder).mkdir()
    with streamlit_server(tmp_path / "server.log", env={
            "CNNVIZ_CACHE_DIR": str(tmp_path / "cache"), "CNNVIZ_DATA_DIR": str(tmp_path / "data"),
            "KERAS_HOME": str(tmp_path / "keras"), "CNNVIZ_OFFLINE": "1"}) as server:
        yield server


@pytest.fixture(scope="session")
def _chromium():
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed at /usr/bin/chromium (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright Python package is not installed (requirements-dev.txt)")
    user_data = tempfile.mkdtemp(prefix="cnnviz-chromium-")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS + [
            "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync",
        ])
        try:
            yield browser
        finally:
            browser.close()
            shutil.rmtree(user_data, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    """Groups for pytest-xdist's `--dist loadgroup`, when it is used (`pytest -n 2 --dist loadgroup`;
    not yet the README's command: two tests failed that way on a loaded machine): the tests of one
    file stay on one worker, so that its module fixtures start once, and every browser test runs on
    one worker, one after another: they share the session's server and browser, and their waits
    assume one browser at a time. A test that names its own group keeps it. Without xdist the
    marks do nothing."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            group = "browser" if item.get_closest_marker("browser") else item.nodeid.split("::")[0]
            item.add_marker(pytest.mark.xdist_group(group))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Remember each phase's outcome on the test item, so fixtures can react to a failure."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def browser(_chromium, request):
    """A fresh Playwright page (1280x720) in headless Debian chromium.

    When the test fails, the page as it was is saved to test-artifacts/failed-<test>.png.
    """
    context = _chromium.new_context(viewport={"width": 1280, "height": 720})
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        yield page
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            ARTIFACTS.mkdir(exist_ok=True)
            try:
                page.screenshot(path=str(ARTIFACTS / f"failed-{request.node.name[:80]}.png"), full_page=True)
            except Exception as error:  # The page may be gone; the test's own failure is what matters.
                print(f"could not save a failure screenshot: {error}")
        context.close()


def wait_for_streamlit_idle(page, timeout_ms: int = 120_000) -> None:
    """Wait until the Streamlit app has rendered and its script run has finished.

    After a click, wait for an element the rerun produces instead: the run may not have started yet.
    """
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout_ms)
    page.wait_for_function(
        """() => {
            const app = document.querySelector('[data-testid="stApp"]');
            return app && app.getAttribute('data-test-script-state') === 'notRunning';
        }""",
        timeout=timeout_ms,
    )


@pytest.fixture
def wait_idle():
    """`wait_idle(page)` waits for the current Streamlit script run to finish."""
    return wait_for_streamlit_idle
